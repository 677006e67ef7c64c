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

from streams.images import Completeness, completeness
from vigil.metrics import WATCHER_FILES

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
        if _is_camera_dir(camera_dir):
            yield from _walk(root, camera_dir.name, camera_dir)


def find(root: Path, paths: Iterable[Path]) -> Iterator[FoundFile | Rejected]:
    """What `scan` reports of these paths only (a file watcher's changes): each candidate
    file among them, and every one inside those that are directories."""
    root = root.resolve()
    for path in sorted(set(paths)):
        try:
            parts = path.relative_to(root).parts
        except ValueError:
            continue
        if not parts or not _is_camera_dir(root / parts[0]):
            continue
        if any(part.startswith(".") for part in parts[1:-1]):
            continue  # inside a hidden folder, which scan does not enter
        if len(parts) > 1 and path.is_dir() and not path.is_symlink():
            if not parts[-1].startswith("."):
                yield from _walk(root, parts[0], path)
        elif len(parts) > 1 and is_candidate(path.name):
            found = _examine(root, parts[0], path)
            if found is not None:
                yield found


def _is_camera_dir(path: Path) -> bool:
    return not path.is_symlink() and path.is_dir() and bool(CAMERA_ID.match(path.name))


def _walk(root: Path, camera_id: str, directory: Path) -> Iterator[FoundFile | Rejected]:
    for dirpath, dirnames, filenames in os.walk(directory, followlinks=False):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            if is_candidate(name):
                found = _examine(root, camera_id, Path(dirpath) / name)
                if found is not None:
                    yield found


def _examine(root: Path, camera_id: str, path: Path) -> FoundFile | Rejected | None:
    resolved = path.resolve()
    if not resolved.is_relative_to(root):
        return Rejected(camera_id, path, f"{path} resolves outside the camera root")
    try:
        stat = resolved.stat()
    except FileNotFoundError:
        return None  # removed between listing and stat
    if not resolved.is_file():
        return None
    return FoundFile(camera_id, path, stat.st_size, stat.st_mtime_ns)


@dataclass(frozen=True)
class _Pending:
    size: int
    mtime_ns: int
    since: float  # when this size and mtime were first seen
    completeness: Completeness


class FolderWatcher:
    """Tracks files across polls and reports each complete upload once.

    A file is complete once its bytes hold a whole image (`streams.images.completeness`):
    then it is reported the moment it is seen. A file whose end cannot be told from its
    bytes (TIFF, or no image at all) is complete once its size and mtime have not changed
    for `stable_s` seconds; a known format cut short (an upload paused between pieces, or
    a truncated file that will never be whole) only after `incomplete_s`. Content already
    reported for the same camera is not reported again (a re-dropped or copied file);
    `remember` bounds that memory, and `recall` fills it with what was reported before
    this watcher started.
    """

    def __init__(
        self,
        root: Path,
        stable_s: float,
        incomplete_s: float | None = None,
        remember: int = 100_000,
    ) -> None:
        self.root = root
        self.stable_s = stable_s
        self.incomplete_s = stable_s if incomplete_s is None else max(incomplete_s, stable_s)
        self._remember = remember
        self._pending: dict[Path, _Pending] = {}
        self._done: dict[Path, tuple[int, int]] = {}
        self._seen: OrderedDict[tuple[str, str], None] = OrderedDict()
        self._rejected: set[Path] = set()

    def poll(self, now: float) -> tuple[list[CompleteUpload], list[Rejected]]:
        """Look at every file in the camera folders (the periodic rescan)."""
        found = list(scan(self.root))
        self._forget_missing({item.path for item in found})
        return self._report(found, now)

    def poll_changed(
        self, paths: Iterable[Path], now: float
    ) -> tuple[list[CompleteUpload], list[Rejected]]:
        """Look at these paths only: what a file-system watcher says has changed."""
        return self._report(find(self.root, paths), now)

    def _report(
        self, found: Iterable[FoundFile | Rejected], now: float
    ) -> tuple[list[CompleteUpload], list[Rejected]]:
        uploads: list[CompleteUpload] = []
        rejected: list[Rejected] = []
        for item in found:
            if isinstance(item, Rejected):
                if item.path not in self._rejected:
                    self._rejected.add(item.path)
                    rejected.append(item)
                    WATCHER_FILES.labels("refused").inc()
                continue
            upload = self._observe(item, now)
            if upload is not None:
                uploads.append(upload)
        return uploads, rejected

    def _observe(self, found: FoundFile, now: float) -> CompleteUpload | None:
        signature = (found.size, found.mtime_ns)
        if self._done.get(found.path) == signature:
            return None
        pending = self._pending.get(found.path)
        data = None
        if pending is None or (pending.size, pending.mtime_ns) != signature:
            try:
                data = found.path.read_bytes()
            except FileNotFoundError:
                return None
            pending = _Pending(*signature, since=now, completeness=completeness(data))
            self._pending[found.path] = pending
        if now - pending.since < self._wait_for(pending.completeness):
            return None
        if data is None:
            try:
                data = found.path.read_bytes()
            except FileNotFoundError:
                return None
        del self._pending[found.path]
        self._done[found.path] = signature
        digest = hashlib.sha256(data).hexdigest()
        key = (found.camera_id, digest)
        if key in self._seen:
            self._seen.move_to_end(key)
            WATCHER_FILES.labels("duplicate").inc()
            return None
        self._seen[key] = None
        self._forget_oldest_seen()
        WATCHER_FILES.labels("reported").inc()
        return CompleteUpload(
            camera_id=found.camera_id,
            path=found.path,
            size=len(data),
            sha256=digest,
            modified_at=datetime.fromtimestamp(found.mtime_ns / 1e9, UTC),
        )

    def _wait_for(self, judged: Completeness) -> float:
        if judged is Completeness.COMPLETE:
            return 0.0
        return self.incomplete_s if judged is Completeness.INCOMPLETE else self.stable_s

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
