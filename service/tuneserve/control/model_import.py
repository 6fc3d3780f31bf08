"""Importing a model a user already has: fetch it, inspect it, load it once, register it.

Every check runs before anything is registered, in the order that costs least: the
source's files and size (``model_sources``), then its config (task, label map, tokenizer,
chat template, no custom code), then a dry load with one warm-up inference through the
task's own handler, exactly as a replica would load it. A model that fails any of them is
refused with the reason, and nothing is left in the artifact store or the registry.
"""

from __future__ import annotations

import json
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

from tuneserve.api.imports import ImportedModel, ImportModelRequest
from tuneserve.control.model_sources import Fetched, fetch
from tuneserve.errors import InvalidRequest, NotFound
from tuneserve.registry import ArtifactStore, ModelInfo, Registry, connect, weights_sha256
from tuneserve.settings import Settings
from tuneserve.tasks.catalog import TaskCatalog
from tuneserve.tasks.spec import BASE_ENCODER, TaskSpec

PLACEHOLDER_LABEL = re.compile(r"LABEL_\d+")  # what transformers writes when none were given
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "spiece.model")


@dataclass(frozen=True)
class Inspection:
    """What an imported folder is: its task, its architecture, the labels of its head.

    A plain encoder (no head) has no spec: it is registered as a base to fine-tune from.
    """

    spec: TaskSpec | None
    architecture: str
    labels: list[str]

    @property
    def task(self) -> str:
        return self.spec.name if self.spec is not None else BASE_ENCODER


def inspect(folder: Path, catalog: TaskCatalog, task: str | None) -> Inspection:
    """The task the folder's config shows (checked against ``task`` when one is given)."""
    config = _json_object(folder / "config.json")
    if "auto_map" in config:
        raise InvalidRequest(
            "the model needs code of its own (config.auto_map), and remote code is never run "
            "here: import a model whose architecture transformers ships",
            param="source",
        )
    named = config.get("architectures")
    architectures = [str(name) for name in named] if isinstance(named, list) else []
    shown = [
        spec
        for spec in catalog
        if any(name.endswith(tuple(spec.architectures)) for name in architectures)
    ]
    if task in (None, BASE_ENCODER) and not shown:
        return _plain_encoder(folder, config, architectures)
    spec = catalog.get(task) if task is not None else shown[0]
    if spec not in shown:
        looks = ", ".join(s.name for s in shown) or "no task of this service"
        raise InvalidRequest(
            f"config.architectures {architectures} is not a {spec.name} model (it looks like "
            f"{looks})",
            param="task",
        )
    _check_tokenizer(folder)
    if spec.streams and not _has_chat_template(folder):
        raise InvalidRequest(
            "a chat model needs a chat template (tokenizer_config.json chat_template or "
            "chat_template.jinja)",
            param="source",
        )
    return Inspection(spec, architectures[0], _labels(config, spec))


def _check_tokenizer(folder: Path) -> None:
    if not any((folder / name).is_file() for name in TOKENIZER_FILES):
        raise InvalidRequest("the model has no tokenizer files", param="source")


def _plain_encoder(folder: Path, config: dict, architectures: list[str]) -> Inspection:
    """A bare encoder (``BertModel``): a model type transformers puts masked-LM and token
    heads on. It serves nothing, but a job with ``labels`` starts a model from it."""
    from transformers.models.auto.modeling_auto import (
        MODEL_FOR_MASKED_LM_MAPPING_NAMES,
        MODEL_FOR_TOKEN_CLASSIFICATION_MAPPING_NAMES,
    )

    model_type = config.get("model_type")
    bare = bool(architectures) and all(name.endswith("Model") for name in architectures)
    encoder = model_type in MODEL_FOR_MASKED_LM_MAPPING_NAMES
    if not (bare and encoder and model_type in MODEL_FOR_TOKEN_CLASSIFICATION_MAPPING_NAMES):
        raise InvalidRequest(
            f"cannot tell the task from config.architectures {architectures} (model_type "
            f"{model_type!r}): it has no task head, and it is not a plain encoder either",
            param="task",
        )
    _check_tokenizer(folder)
    return Inspection(None, architectures[0], [])


def _json_object(path: Path) -> dict:
    """A config file of the model, which must hold one JSON object (a 400 naming it else)."""
    try:
        found = json.loads(path.read_text())
    except (ValueError, UnicodeDecodeError) as error:
        raise InvalidRequest(f"{path.name} is not JSON: {error}", param="source") from None
    if not isinstance(found, dict):
        raise InvalidRequest(f"{path.name} is not a JSON object", param="source")
    return found


def _labels(config: dict, spec: TaskSpec) -> list[str]:
    """The head's labels in id order, for tasks whose outputs are labels."""
    if spec.label_kind is None:
        return []
    id2label = config.get("id2label") or {}
    try:
        labels = [str(id2label[key]) for key in sorted(id2label, key=int)]
    except (TypeError, ValueError, AttributeError):
        raise InvalidRequest(
            "config.id2label is not a map of ids to labels", param="source"
        ) from None
    if not labels or all(PLACEHOLDER_LABEL.fullmatch(label) for label in labels):
        raise InvalidRequest(
            f"the model has no label map (config.id2label is {labels or 'missing'}): a "
            f"{spec.name} model must name its {spec.label_kind}",
            param="source",
        )
    return labels


def _has_chat_template(folder: Path) -> bool:
    if (folder / "chat_template.jinja").is_file() or (folder / "chat_template.json").is_file():
        return True
    tokenizer_config = folder / "tokenizer_config.json"
    return tokenizer_config.is_file() and bool(_json_object(tokenizer_config).get("chat_template"))


def dry_load(folder: Path, spec: TaskSpec | None, max_length: int) -> None:
    """Load the folder with the task's handler and run its example once, as a replica
    would (a plain encoder: one forward pass); a failure is refused with its reason
    (paths of this machine left out)."""
    try:
        if spec is None:
            _encode_once(folder)
        else:
            handler = spec.handler_class().load(folder, max_length=max_length)
            handler.predict([spec.Item(**spec.example)])
    except Exception as error:
        reason = str(error).replace(str(folder), "<model>").splitlines()[0][:300]
        what = spec.name if spec is not None else "plain encoder"
        raise InvalidRequest(
            f"the model failed to load and answer as a {what} model: "
            f"{type(error).__name__}: {reason}",
            param="source",
        ) from None


def _encode_once(folder: Path) -> None:
    import torch
    from transformers import AutoModel, AutoTokenizer

    tokenizer, model = AutoTokenizer.from_pretrained(folder), AutoModel.from_pretrained(folder)
    with torch.inference_mode():
        model(**tokenizer(["A warm-up sentence."], return_tensors="pt"))


def redacted(source: str) -> str:
    """The source as lineage records it: no credentials from a URL's user part."""
    return re.sub(r"//[^/@]*@", "//", source)


def import_with(settings: Settings, request: ImportModelRequest) -> ImportedModel:
    """``import_model`` on the registry, store and tasks that ``settings`` name."""
    registry, store = connect(settings.registry)
    try:
        catalog = TaskCatalog.load(settings.tasks.modules)
        return import_model(request, settings, registry, store, catalog)
    finally:
        registry.engine.dispose()


@dataclass(frozen=True)
class Staged:
    """A fetched folder that passed every check, ready to register."""

    folder: Path
    found: Inspection
    fetched: Fetched
    sha256: str


def import_model(
    request: ImportModelRequest,
    settings: Settings,
    registry: Registry,
    store: ArtifactStore,
    catalog: TaskCatalog,
) -> ImportedModel:
    """Fetch, inspect, dry-load and register ``request.source`` as a new version."""
    existing = _existing(registry, request)
    imports = Path(settings.data_dir) / "imports"
    imports.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=imports) as staging:
        fetched = fetch(request.source, Path(staging), settings.limits.max_import_bytes)
        folder = fetched.folder
        found = inspect(folder, catalog, request.task)
        if existing is not None and existing.task != found.task:
            raise InvalidRequest(
                f"model {request.name!r} is a {existing.task} model; this is {found.task}",
                param="name",
            )
        dry_load(folder, found.spec, settings.limits.max_sequence_length)
        staged = Staged(folder, found, fetched, weights_sha256(folder))
        return _register(request, staged, registry, store)


def _existing(registry: Registry, request: ImportModelRequest) -> ModelInfo | None:
    """The model the import adds a version to (None: a new one); refuses an alias move
    that would change what serves without warming the replicas first."""
    try:
        model = registry.get_model(request.name)
    except NotFound:
        return None
    if request.alias and request.alias in registry.aliases(request.name):
        raise InvalidRequest(
            f"model {request.name!r} has a {request.alias} version already: import without "
            f"an alias, then promote (POST /v1/models/{request.name}/promote), which warms "
            "the version on every replica first",
            param="alias",
        )
    return model


def _register(
    request: ImportModelRequest, staged: Staged, registry: Registry, store: ArtifactStore
) -> ImportedModel:
    """Store the folder and register it; an artifact this call wrote goes if that fails."""
    key = f"{request.name}/{staged.sha256[:16]}"
    stored = store.exists(store.uri_for(key))  # the same weights, imported before
    uri = store.uri_for(key) if stored else store.put_dir(staged.folder, key)
    task, architecture = staged.found.task, staged.found.architecture
    source = redacted(request.source)
    try:
        registry.create_model(request.name, task, request.description or f"imported from {source}")
        version = registry.register_version(
            request.name,
            artifact_uri=uri,
            sha256=staged.sha256,
            metrics={},
            lineage={
                "source": "import",
                "from": source,
                "architecture": architecture,
                "left_behind": staged.fetched.skipped,
            }
            | ({"source_sha256": sha} if (sha := staged.fetched.source_sha256) else {}),
        )
        if request.alias:
            registry.move_alias(request.name, request.alias, version.version, None, "imported")
    except Exception:
        if not stored:
            store.delete(uri)
        raise
    return ImportedModel(
        model=request.name,
        version=version.version,
        task=task,
        architecture=architecture,
        labels=staged.found.labels,
        sha256=staged.sha256,
        size_bytes=staged.fetched.bytes,
        alias=request.alias,
        left_behind=staged.fetched.skipped,
    )
