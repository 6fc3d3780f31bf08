"""Artifact store: model directories under one fsspec URL, and local copies of remote ones."""

from __future__ import annotations

import hashlib
import os
import shutil
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from fsspec import AbstractFileSystem
from fsspec.core import url_to_fs
from fsspec.implementations.local import LocalFileSystem

from tuneserve.errors import ArtifactCorrupt, Conflict, InvalidRequest, NotFound

# Object stores cannot rename a directory atomically, so a remote artifact counts as
# complete only once this marker, written after every other file, exists.
COMPLETE_MARKER = ".tuneserve-complete"
_CHUNK = 1 << 20


def weights_sha256(model_dir: Path) -> str:
    """sha256 over the bytes of every ``*.safetensors`` file in ``model_dir``, sorted by name.

    For a single-file model this equals ``sha256sum model.safetensors``, so anyone can check it.
    """
    files = sorted(model_dir.glob("*.safetensors"), key=lambda path: path.name)
    if not files:
        raise FileNotFoundError(f"no *.safetensors files in {model_dir}")
    return files_sha256(files)


def files_sha256(files: list[Path]) -> str:
    """sha256 over the bytes of ``files``, one after the other, read in chunks."""
    digest = hashlib.sha256()
    for path in files:
        with path.open("rb") as handle:
            while chunk := handle.read(_CHUNK):
                digest.update(chunk)
    return digest.hexdigest()


@dataclass(frozen=True)
class Footprint:
    """What an artifact takes up: its bytes, and when it last changed (POSIX seconds)."""

    bytes: int
    modified: float


class ArtifactStore:
    """Write-once model directories under ``url`` (a local folder, ``s3://…``, ``memory://…``).

    Readers ask for ``local_path(uri)``: a local artifact is used in place, a remote one is
    downloaded once into ``cache_dir`` and reused.
    """

    def __init__(self, url: str, cache_dir: Path):
        self._fs, self._root = url_to_fs(url)
        self.cache_dir = Path(cache_dir)

    def put_dir(self, local_dir: Path, key: str) -> str:
        """Upload the tree ``local_dir`` under ``key`` and return its artifact URI.

        A key is written once: an existing key is a Conflict. Local stores get an absolute
        path as URI, remote stores a full URL.
        """
        if not local_dir.is_dir():
            raise NotFound(f"artifact source {local_dir} is not a directory", param="local_dir")
        target = self._path_of(key)
        if self._fs.exists(target):
            raise Conflict(f"artifact key '{key}' already exists; choose a new key", param="key")
        if isinstance(self._fs, LocalFileSystem):
            _put_local(local_dir, Path(target))
        else:
            _put_remote(self._fs, local_dir, target)
        return self.uri_for(key)

    def put_file(self, local: Path, key: str) -> str:
        """Upload one local file under ``key`` (write-once) and return its URI."""
        target = self._path_of(key)
        if self._fs.exists(target):
            raise Conflict(f"artifact key '{key}' already exists; choose a new key", param="key")
        parent = target.rsplit("/", 1)[0]
        self._fs.makedirs(parent, exist_ok=True)
        staging = f"{parent}/.{uuid.uuid4().hex}.partial"
        self._fs.put_file(str(local), staging)
        self._fs.mv(staging, target)
        return self.uri_for(key)

    def local_file(self, uri: str) -> Path:
        """A local path of the file ``uri``: in place when local, else downloaded once."""
        fs, path = url_to_fs(uri)
        if isinstance(fs, LocalFileSystem):
            if not Path(path).is_file():
                raise NotFound(f"artifact {uri} not found", param="uri")
            return Path(path)
        cached = self.cache_dir / hashlib.sha256(uri.encode()).hexdigest()
        if not cached.is_file():
            if not fs.exists(path):
                raise NotFound(f"artifact {uri} not found", param="uri")
            self.cache_dir.mkdir(parents=True, exist_ok=True)
            partial = cached.with_name(f".{cached.name}.{uuid.uuid4().hex}")
            fs.get_file(path, str(partial))
            os.replace(partial, cached)
        return cached

    def delete(self, uri: str) -> None:
        """Remove an artifact file or directory (a deleted upload, say); missing is fine."""
        fs, path = url_to_fs(uri)
        if fs.exists(path):
            fs.rm(path, recursive=True)

    def entries(self, uri: str) -> list[tuple[str, bool]]:
        """What lies directly in the folder ``uri``: (URI, is a folder) each; [] if none.

        Listed afresh: a remote listing cached earlier may still name deleted things.
        """
        fs, path = url_to_fs(uri)
        fs.invalidate_cache(path)
        try:
            found = fs.ls(path, detail=True)
        except FileNotFoundError:
            return []
        own = path.rstrip("/")
        return [
            (_uri_in(fs, info["name"].rstrip("/")), info["type"] == "directory")
            for info in found
            if info["name"].rstrip("/") != own
        ]

    def footprint(self, uri: str) -> Footprint | None:
        """The bytes under ``uri`` and when anything there last changed; None if nothing is.

        A store that gives no times makes the artifact count as changed now (never old).
        """
        fs, path = url_to_fs(uri)
        fs.invalidate_cache(path)
        try:
            infos = {path: fs.info(path)} | fs.find(path, detail=True, withdirs=True)
        except FileNotFoundError:
            return None
        stamps = [stamp for info in infos.values() if (stamp := _modified(info)) is not None]
        size = sum(info.get("size") or 0 for info in infos.values() if info["type"] == "file")
        return Footprint(bytes=size, modified=max(stamps) if stamps else time.time())

    def uri_for(self, key: str) -> str:
        """The artifact URI that ``put_dir(..., key)`` returns (or returned)."""
        target = self._path_of(key)
        return (
            target if isinstance(self._fs, LocalFileSystem) else self._fs.unstrip_protocol(target)
        )

    def _path_of(self, key: str) -> str:
        return f"{self._root.rstrip('/')}/{_checked_key(key)}"

    def adopt(self, uri: str, drop: tuple[str, ...] = ()) -> str:
        """Make a directory another writer finished (a Ray Train checkpoint) an artifact.

        ``drop`` names entries removed first (training state a served version never reads);
        a remote directory then gets the completion marker readers wait for.
        """
        fs, path = url_to_fs(uri)
        for name in drop:
            if fs.exists(f"{path}/{name}"):
                fs.rm(f"{path}/{name}", recursive=True)
        if not isinstance(fs, LocalFileSystem):
            fs.pipe_file(f"{path}/{COMPLETE_MARKER}", b"")
        return uri

    def exists(self, uri: str) -> bool:
        """Whether ``uri`` names a complete artifact."""
        fs, path = url_to_fs(uri)
        if isinstance(fs, LocalFileSystem):
            return Path(path).is_dir()
        return fs.exists(f"{path}/{COMPLETE_MARKER}")

    def local_path(self, uri: str) -> Path:
        """A local directory holding the artifact ``uri``, downloading it on first use."""
        fs, path = url_to_fs(uri)
        if isinstance(fs, LocalFileSystem):
            if not Path(path).is_dir():
                raise NotFound(f"artifact {uri} not found", param="artifact_uri")
            return Path(path)
        cached = self.cache_dir / hashlib.sha256(uri.encode()).hexdigest()
        if cached.is_dir():
            return cached
        if not fs.exists(f"{path}/{COMPLETE_MARKER}"):
            raise NotFound(f"artifact {uri} not found or incomplete", param="artifact_uri")
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        with _staging(cached) as staging:
            _download(fs, path, staging)
            _publish(staging, cached, exists_ok=True)
        return cached

    def verified_path(self, uri: str, sha256: str) -> Path:
        """``local_path`` whose weights match the sha256 the registry recorded for them. A
        cached copy that does not (a broken download, a disk fault) is fetched once more;
        an artifact that still does not is refused: other weights must never serve silently.
        """
        path = self.local_path(uri)
        if weights_sha256(path) == sha256:
            return path
        if path.resolve().is_relative_to(self.cache_dir.resolve()):  # a downloaded copy
            shutil.rmtree(path, ignore_errors=True)
            path = self.local_path(uri)
            if weights_sha256(path) == sha256:
                return path
        raise ArtifactCorrupt(
            f"the weights of artifact {uri} do not match the sha256 recorded for them "
            f"({sha256[:16]}…): restore the artifact, or register its weights as a new version"
        )


def _uri_in(fs: AbstractFileSystem, path: str) -> str:
    """The artifact URI of ``path`` on ``fs``: local paths as they are, else a full URL."""
    return path if isinstance(fs, LocalFileSystem) else fs.unstrip_protocol(path)


def _modified(info: dict[str, Any]) -> float | None:
    """When a listed entry last changed: local files say ``mtime``, S3 ``LastModified``."""
    value = info.get("mtime", info.get("LastModified"))
    if isinstance(value, datetime):
        return value.timestamp()
    return float(value) if value is not None else None


def _checked_key(key: str) -> str:
    """``key`` itself, once known to be a relative POSIX path that stays inside the store."""
    if "\\" in key or {"", ".", ".."} & set(key.split("/")):
        raise InvalidRequest(
            f"invalid artifact key '{key}': use a relative path like 'models/name/3'", param="key"
        )
    return key


@contextmanager
def _staging(final: Path) -> Iterator[Path]:
    """A hidden sibling directory of ``final``, removed on exit unless it was renamed away."""
    path = final.parent / f".{final.name}.tmp-{uuid.uuid4().hex}"
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def _publish(staging: Path, final: Path, *, exists_ok: bool) -> None:
    """Rename ``staging`` to ``final`` atomically; a crash leaves only the hidden staging dir."""
    try:
        os.rename(staging, final)
    except OSError:
        if not (final.is_dir() and any(final.iterdir())):
            raise
        if not exists_ok:  # another writer published the same key first
            raise Conflict(
                f"artifact {final} already exists; choose a new key", param="key"
            ) from None


def _put_local(local_dir: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    with _staging(target) as staging:
        shutil.copytree(local_dir, staging)
        _publish(staging, target, exists_ok=False)


def _put_remote(fs: AbstractFileSystem, local_dir: Path, target: str) -> None:
    for path in sorted(local_dir.rglob("*")):
        if path.is_file():
            remote = f"{target}/{path.relative_to(local_dir).as_posix()}"
            fs.makedirs(remote.rsplit("/", 1)[0], exist_ok=True)
            fs.put_file(str(path), remote)
    fs.pipe_file(f"{target}/{COMPLETE_MARKER}", b"")


def _download(fs: AbstractFileSystem, path: str, dest: Path) -> None:
    """Copy the tree under ``path`` into ``dest``, leaving out the completion marker and the
    empty "directory" objects some writers (Ray Train's pyarrow) put on S3."""
    prefix = path.rstrip("/") + "/"
    found = [remote[len(prefix) :].rstrip("/") for remote in fs.find(path) if remote != path]
    folders = {
        relative.rsplit("/", depth)[0]
        for relative in found
        for depth in range(1, relative.count("/") + 1)
    }
    for relative in found:
        if not relative or relative == COMPLETE_MARKER or relative in folders:
            continue
        local = dest / relative
        local.parent.mkdir(parents=True, exist_ok=True)
        fs.get_file(prefix + relative, str(local))
    dest.mkdir(parents=True, exist_ok=True)  # an artifact may be an empty directory
