"""Camera folder watcher: finds complete uploads under CAMERA_ROOT/<camera_id>/.

The scanning and the upload-complete decision are plain code with an injected
clock; the Faust timer in `streams.app` only calls `FolderWatcher.poll` and
publishes what it returns.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections import OrderedDict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp", ".gif", ".tif", ".tiff"})
_TEMP_SUFFIXES = (".tmp", ".part", ".partial", ".filepart", ".crdownload", ".swp", "~")
CAMERA_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")


def is_candidate(name: str) -> bool:
    """An image file name that is not an upload's temporary name or a hidden file."""
    lowered = name.lower()
    if lowered.startswith((".", "~")) or lowered.endswith(_TEMP_SUFFIXES):
        return False
    return Path(lowered).suffix in IMAGE_SUFFIXES


@dataclass(frozen=True)
class FoundFile:
    camera_id: str
    path: Path
    size: int
    mtime_ns: int


@dataclass(frozen=True)
class Rejected:
    """A path that must not be read, with the reason (it is dead-lettered, not dropped)."""

    camera_id: str
    path: Path
    reason: str


@dataclass(frozen=True)
class CompleteUpload:
    camera_id: str
    path: Path
    size: int
    sha256: str
    modified_at: datetime


def scan(root: Path) -> Iterator[FoundFile | Rejected]:
    """Every candidate image file under root/<camera_id>/, at any depth.

    Symbolic links are resolved and anything resolving outside `root` is
    rejected; directories are never followed through links.
    """
    root = root.resolve()
    if not root.is_dir():
        return
    for camera_dir in sorted(root.iterdir()):
        if (
            camera_dir.is_symlink()
            or not camera_dir.is_dir()
            or not CAMERA_ID.match(camera_dir.name)
        ):
            continue
        for dirpath, dirnames, filenames in os.walk(camera_dir, followlinks=False):
            dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
            for name in sorted(filenames):
                if not is_candidate(name):
                    continue
                path = Path(dirpath) / name
                resolved = path.resolve()
                if not resolved.is_relative_to(root):
                    yield Rejected(
                        camera_dir.name, path, f"{path} resolves outside the camera root"
                    )
                    continue
                try:
                    stat = resolved.stat()
                except FileNotFoundError:
                    continue  # removed between listing and stat
                if not resolved.is_file():
                    continue
                yield FoundFile(camera_dir.name, path, stat.st_size, stat.st_mtime_ns)


def sha256_of(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


class FolderWatcher:
    """Tracks files across polls and reports each complete upload once.

    A file is complete once its size and mtime have not changed for
    `stable_s` seconds. Content already reported for the same camera is not
    reported again (a re-dropped or copied file); `remember` bounds that memory, and
    `recall` fills it with what was reported before this watcher started.
    """

    def __init__(self, root: Path, stable_s: float, remember: int = 100_000) -> None:
        self.root = root
        self.stable_s = stable_s
        self._remember = remember
        self._pending: dict[Path, tuple[int, int, float]] = {}
        self._done: dict[Path, tuple[int, int]] = {}
        self._seen: OrderedDict[tuple[str, str], None] = OrderedDict()
        self._rejected: set[Path] = set()

    def poll(self, now: float) -> tuple[list[CompleteUpload], list[Rejected]]:
        uploads: list[CompleteUpload] = []
        rejected: list[Rejected] = []
        present: set[Path] = set()
        for found in scan(self.root):
            present.add(found.path)
            if isinstance(found, Rejected):
                if found.path not in self._rejected:
                    self._rejected.add(found.path)
                    rejected.append(found)
                continue
            upload = self._observe(found, now)
            if upload is not None:
                uploads.append(upload)
        self._forget_missing(present)
        return uploads, rejected

    def _observe(self, found: FoundFile, now: float) -> CompleteUpload | None:
        signature = (found.size, found.mtime_ns)
        if self._done.get(found.path) == signature:
            return None
        pending = self._pending.get(found.path)
        if pending is None or pending[:2] != signature:
            self._pending[found.path] = (*signature, now)
            if self.stable_s > 0:
                return None
            pending = self._pending[found.path]
        if now - pending[2] < self.stable_s:
            return None
        del self._pending[found.path]
        self._done[found.path] = signature
        try:
            digest = sha256_of(found.path)
        except FileNotFoundError:
            return None
        key = (found.camera_id, digest)
        if key in self._seen:
            self._seen.move_to_end(key)
            return None
        self._seen[key] = None
        self._forget_oldest_seen()
        return CompleteUpload(
            camera_id=found.camera_id,
            path=found.path,
            size=found.size,
            sha256=digest,
            modified_at=datetime.fromtimestamp(found.mtime_ns / 1e9, UTC),
        )

    def oldest_file(self) -> datetime | None:
        """When the oldest candidate file now in the camera folders was last written (None:
        there is none): nothing before it can have been announced of what is there."""
        oldest = min(
            (found.mtime_ns for found in scan(self.root) if isinstance(found, FoundFile)),
            default=None,
        )
        return None if oldest is None else datetime.fromtimestamp(oldest / 1e9, UTC)

    def recall(self, announced: Iterable[tuple[str, str]]) -> int:
        """Count the (camera_id, sha256) pairs of `announced` as reported already (what the
        images topic holds from before this watcher started); how many were new to it."""
        added = 0
        for key in announced:
            if key not in self._seen:
                self._seen[key] = None
                added += 1
        self._forget_oldest_seen()
        return added

    def _forget_oldest_seen(self) -> None:
        while len(self._seen) > self._remember:
            self._seen.popitem(last=False)

    def retry_later(self, upload: CompleteUpload) -> None:
        """Report `upload` again on a later poll (publishing it failed)."""
        self._done.pop(upload.path, None)
        self._seen.pop((upload.camera_id, upload.sha256), None)

    def _forget_missing(self, present: set[Path]) -> None:
        for table in (self._pending, self._done):
            for path in [p for p in table if p not in present]:
                del table[path]
        self._rejected &= present
