"""Artifacts no record names, found by walking the folders of the store that tuneserve writes.

Those areas are ``<model>/`` of each registered model (uploaded weights), ``files/``
(uploads), ``jobs/`` (a job's split rows) and the checkpoint root (Ray Train's
``<job id>/`` folders). Nothing else in the store is looked at, nor an entry of the
checkpoint root not named like a job.

In an area, an entry stays when a record names it or something in it (the walk then goes
in), or when it is in an unfinished job's folder. Otherwise it goes: at once inside a
finished job's folder (nothing writes there any more), else only once it is older than the
grace period, since an upload or a registration may still be writing it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from fsspec.core import url_to_fs

from tuneserve.registry import ArtifactStore

JOB_FOLDER_PREFIX = "ftjob-"  # a job id's prefix: the name of its folders


def key(uri: str) -> str:
    """A URI as a path to compare: scheme dropped, no trailing slash."""
    return url_to_fs(uri)[1].rstrip("/")


@dataclass(frozen=True)
class Area:
    """A folder tuneserve writes; ``only``: consider just entries whose name starts so."""

    uri: str
    only: str | None = None


@dataclass(frozen=True)
class Orphan:
    uri: str
    bytes: int
    why: str


@dataclass(frozen=True)
class Marks:
    """What each entry is compared with, as ``key`` paths."""

    keep: frozenset[str]  # named by a record or an unfinished job's folder: all of it stays
    skip: frozenset[str]  # another rule removes it already
    prompt: frozenset[str]  # finished jobs' folders: no grace period inside
    above: frozenset[str]  # folders holding something kept or skipped: walked into

    @classmethod
    def of(cls, keep: Iterable[str], skip: Iterable[str], prompt: Iterable[str]) -> Marks:
        keep, skip = frozenset(map(key, keep)), frozenset(map(key, skip))
        above = {parent for path in keep | skip for parent in _parents(path)}
        return cls(keep, skip, frozenset(map(key, prompt)), frozenset(above))

    def kept(self, path: str) -> bool:
        """Whether ``path`` or a folder it is in is kept."""
        return path in self.keep or any(parent in self.keep for parent in _parents(path))


def _parents(path: str) -> list[str]:
    parts = path.split("/")
    return ["/".join(parts[:end]) for end in range(1, len(parts))]


def find(
    store: ArtifactStore, areas: list[Area], marks: Marks, grace_s: float, now: float
) -> list[Orphan]:
    """The orphans of every area, each the largest folder or file that holds nothing kept."""
    walk = _Walk(store, marks, grace_s, now)
    for area in areas:
        if not marks.kept(key(area.uri)):
            walk.folder(area.uri, area.only, finished=False)
    return walk.found


class _Walk:
    def __init__(self, store: ArtifactStore, marks: Marks, grace_s: float, now: float):
        self.store, self.marks, self.grace_s, self.now = store, marks, grace_s, now
        self.found: list[Orphan] = []

    def folder(self, uri: str, only: str | None, finished: bool) -> None:
        for entry, is_folder in self.store.entries(uri):
            path = key(entry)
            if only is not None and not path.rsplit("/", 1)[-1].startswith(only):
                continue
            if path in self.marks.keep or path in self.marks.skip:
                continue
            in_finished = finished or path in self.marks.prompt
            if path in self.marks.above:
                if is_folder:
                    self.folder(entry, None, in_finished)
                continue
            self.entry(entry, in_finished)

    def entry(self, uri: str, in_finished: bool) -> None:
        footprint = self.store.footprint(uri)
        if footprint is None:  # gone since it was listed
            return
        age_s = self.now - footprint.modified
        if in_finished:
            self.found.append(Orphan(uri, footprint.bytes, "left by a finished job"))
        elif age_s >= self.grace_s:
            why = f"named by no record, unchanged for {age_s / 3600:.1f} h"
            self.found.append(Orphan(uri, footprint.bytes, why))
