"""Where an imported model comes from: a folder, any fsspec URL, or the Hugging Face hub.

A source is copied into a local staging folder before anything else looks at it, and only
the files a model needs travel: safetensors weights, JSON configs, tokenizer files. Pickle
weights (``*.bin``, ``*.pt``…) can run code when loaded, so a folder with only those is
refused, and next to safetensors they are left behind. The size is summed from the
listing and checked before the first byte is copied.

A GGUF file (llama.cpp's format, quantised) is dequantised by transformers into a float32
safetensors folder: what is served and fine-tuned is that folder, and the file's own
sha256 is kept in the version's lineage.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from fsspec import AbstractFileSystem
from fsspec.core import url_to_fs

from tuneserve.errors import InvalidRequest, NotFound, PayloadTooLarge
from tuneserve.registry import files_sha256
from tuneserve.tasks.handlers.gguf import dequantise

# what a model folder may bring along: weights, configs, tokenizers, templates, cards
WANTED = re.compile(
    r"""(.*\.safetensors|.*\.json|.*\.jinja|.*\.txt|.*\.model|.*\.tiktoken|merges\.txt
    |vocab\..*|README\.md|LICENSE.*)""",
    re.X,
)
PICKLED = (".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt", ".h5", ".msgpack", ".joblib")
HUB_SCHEME = "hf://"
HUB_TIMEOUT_S = 10.0  # of the hub's metadata call: an unreachable hub is refused at once
_HUB_ID = re.compile(r"^[\w.-]+/[\w.-]+$")


@dataclass(frozen=True)
class Fetched:
    """A source as a model folder under the staging folder: its size, what was left out."""

    folder: Path
    bytes: int  # of the source
    skipped: list[str]  # pickled weights next to safetensors, not copied
    source_sha256: str | None = None  # of a single-file source (GGUF)


def fetch(source: str, staging: Path, max_bytes: int) -> Fetched:
    """Copy the model at ``source`` into a new folder under the empty folder ``staging``."""
    into = staging / "model"
    into.mkdir()
    if source.startswith(HUB_SCHEME):
        return _fetch_hub(source.removeprefix(HUB_SCHEME), into, max_bytes)
    fs, root = _filesystem(source)
    if root.endswith(".gguf"):
        return _fetch_gguf(fs, root, source, staging, into, max_bytes)
    try:  # one level: a model folder is flat (and "/" is not walked)
        listing = fs.ls(root, detail=True) if fs.isdir(root) else []
    except (FileNotFoundError, PermissionError, NotADirectoryError) as error:
        raise NotFound(f"source {source!r}: {type(error).__name__}", param="source") from None
    files = {
        PurePosixPath(info["name"]).name: int(info.get("size") or 0)
        for info in listing
        if info["type"] == "file"
    }
    if not files:
        raise NotFound(f"source {source!r} is not a folder with files", param="source")
    chosen, skipped = _select(files, source)
    size = sum(files[name] for name in chosen)
    _check_size(size, max_bytes, source)
    for name in chosen:
        fs.get_file(f"{root.rstrip('/')}/{name}", str(into / name))
    return Fetched(into, size, skipped)


def _filesystem(source: str) -> tuple[AbstractFileSystem, str]:
    try:
        return url_to_fs(source)
    except (ValueError, ImportError) as error:
        raise InvalidRequest(f"cannot read source {source!r}: {error}", param="source") from None


def _fetch_gguf(
    fs: AbstractFileSystem, path: str, source: str, staging: Path, into: Path, max_bytes: int
) -> Fetched:
    """Download a GGUF file and dequantise it into a float32 safetensors folder."""
    if not fs.isfile(path):
        raise NotFound(f"source {source!r} is not a file", param="source")
    size = int(fs.size(path))
    _check_size(size, max_bytes, source)
    local = staging / "source" / PurePosixPath(path).name
    local.parent.mkdir()
    fs.get_file(path, str(local))
    try:
        dequantise(local, into)
    except Exception as error:
        reason = str(error).replace(str(local.parent), "<source>").splitlines()[0][:300]
        raise InvalidRequest(
            f"the GGUF file could not be dequantised by transformers (causal language models "
            f"of the architectures it knows): {type(error).__name__}: {reason}",
            param="source",
        ) from None
    source_sha256 = files_sha256([local])  # the folder is what serves; this goes to lineage
    local.unlink()
    return Fetched(into, size, [], source_sha256)


def _select(files: dict[str, int], source: str) -> tuple[list[str], list[str]]:
    """The files to copy and the pickled weights left behind; refuse what cannot serve."""
    top = [name for name in files if "/" not in name]  # a hub repo lists its subfolders too
    weights = [name for name in top if name.endswith(".safetensors")]
    pickled = [name for name in top if name.endswith(PICKLED)]
    if not weights:
        what = f"only pickled weights ({', '.join(sorted(pickled))})" if pickled else "no weights"
        raise InvalidRequest(
            f"source {source!r} has {what}: only safetensors are imported (pickle files can "
            "run code when loaded); convert with `save_pretrained(safe_serialization=True)`",
            param="source",
        )
    if "config.json" not in top:
        raise InvalidRequest(f"source {source!r} has no config.json", param="source")
    return sorted(name for name in top if WANTED.fullmatch(name)), sorted(pickled)


def _check_size(size: int, max_bytes: int, source: str) -> None:
    if size > max_bytes:
        raise PayloadTooLarge(
            f"source {source!r} is {size} bytes; models up to {max_bytes} bytes are "
            "imported (limits.max_import_bytes)",
            param="source",
        )


def _fetch_hub(reference: str, into: Path, max_bytes: int) -> Fetched:
    """``org/name@revision`` from the hub: the revision must be pinned, so that a version
    always means the same weights."""
    repo, _, revision = reference.partition("@")
    if not _HUB_ID.fullmatch(repo) or not revision:
        raise InvalidRequest(
            f"hub source 'hf://{reference}': write hf://<org>/<name>@<revision> (a pinned "
            "commit or tag)",
            param="source",
        )
    from huggingface_hub import HfApi, hf_hub_download
    from huggingface_hub.errors import HfHubHTTPError

    try:
        info = HfApi().model_info(
            repo, revision=revision, files_metadata=True, timeout=HUB_TIMEOUT_S
        )
    except HfHubHTTPError as error:
        raise NotFound(f"hub source 'hf://{reference}': {error}", param="source") from None
    except Exception as error:  # no route to the hub (a transport error): refused at once
        raise InvalidRequest(
            f"the Hugging Face hub is unreachable from this cluster ({type(error).__name__}): "
            "copy the model to a folder or bucket the service can read and import that",
            param="source",
        ) from None
    files = {s.rfilename: int(s.size or 0) for s in info.siblings or []}
    chosen, skipped = _select(files, f"hf://{reference}")
    size = sum(files[name] for name in chosen)
    _check_size(size, max_bytes, f"hf://{reference}")
    for name in chosen:
        hf_hub_download(repo, name, revision=info.sha, local_dir=into)
    return Fetched(into, size, skipped)
