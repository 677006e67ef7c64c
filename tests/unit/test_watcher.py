import os
from datetime import UTC, datetime

from streams.watcher import (
    CompleteUpload,
    FolderWatcher,
    Rejected,
    is_candidate,
    scan,
    sha256_of,
)


def _write(path, data=b"\xff\xd8\xff jpeg"):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def test_is_candidate_takes_images_and_skips_temp_hidden_and_other_files():
    assert is_candidate("IMG_0001.JPG")
    assert is_candidate("snap.png")
    assert not is_candidate("snap.jpg.part")
    assert not is_candidate(".snap.jpg")
    assert not is_candidate("snap.tmp")
    assert not is_candidate("notes.txt")


def test_scan_finds_nested_files_per_camera(tmp_path):
    _write(tmp_path / "front_door" / "2026" / "a.jpg")
    _write(tmp_path / "driveway" / "b.png")
    _write(tmp_path / "driveway" / "b.png.part")
    found = sorted((f.camera_id, f.path.name) for f in scan(tmp_path))
    assert found == [("driveway", "b.png"), ("front_door", "a.jpg")]


def test_scan_rejects_symlink_out_of_root(tmp_path):
    outside = _write(tmp_path / "outside" / "secret.jpg")
    root = tmp_path / "cams"
    (root / "cam1").mkdir(parents=True)
    os.symlink(outside, root / "cam1" / "link.jpg")
    [result] = list(scan(root))
    assert isinstance(result, Rejected)
    assert result.camera_id == "cam1"
    assert "outside the camera root" in result.reason


def test_scan_ignores_camera_dirs_with_unsafe_names(tmp_path):
    _write(tmp_path / ".hidden" / "a.jpg")
    _write(tmp_path / "ok-cam" / "a.jpg")
    assert [f.camera_id for f in scan(tmp_path)] == ["ok-cam"]


def test_upload_reported_once_stable(tmp_path):
    path = _write(tmp_path / "cam" / "a.jpg")
    watcher = FolderWatcher(tmp_path, stable_s=2.0)
    assert watcher.poll(now=0.0) == ([], [])
    assert watcher.poll(now=1.0) == ([], [])
    uploads, _ = watcher.poll(now=2.5)
    assert [(u.camera_id, u.path) for u in uploads] == [("cam", path)]
    assert isinstance(uploads[0], CompleteUpload)
    assert len(uploads[0].sha256) == 64
    assert watcher.poll(now=10.0) == ([], [])


def test_growing_file_waits_until_it_stops_changing(tmp_path):
    path = _write(tmp_path / "cam" / "a.jpg", b"\xff\xd8\xff part")
    watcher = FolderWatcher(tmp_path, stable_s=2.0)
    watcher.poll(now=0.0)
    with open(path, "ab") as handle:
        handle.write(b" more bytes")
    assert watcher.poll(now=2.5) == ([], [])  # changed since first seen: clock restarts
    uploads, _ = watcher.poll(now=5.0)
    assert [u.size for u in uploads] == [path.stat().st_size]


def test_same_content_twice_in_one_camera_is_reported_once(tmp_path):
    _write(tmp_path / "cam" / "a.jpg")
    _write(tmp_path / "cam" / "copy-of-a.jpg")
    _write(tmp_path / "other" / "a.jpg")
    watcher = FolderWatcher(tmp_path, stable_s=0)
    uploads, _ = watcher.poll(now=0.0)
    assert sorted((u.camera_id, u.path.name) for u in uploads) == [
        ("cam", "a.jpg"),
        ("other", "a.jpg"),
    ]


def test_rejection_reported_once(tmp_path):
    outside = _write(tmp_path / "outside.jpg")
    (tmp_path / "cams" / "cam").mkdir(parents=True)
    os.symlink(outside, tmp_path / "cams" / "cam" / "x.jpg")
    watcher = FolderWatcher(tmp_path / "cams", stable_s=0)
    assert len(watcher.poll(now=0.0)[1]) == 1
    assert watcher.poll(now=1.0)[1] == []


def test_upload_that_could_not_be_published_is_reported_again(tmp_path):
    _write(tmp_path / "cam" / "a.jpg")
    watcher = FolderWatcher(tmp_path, stable_s=0)
    [upload], _ = watcher.poll(now=0.0)
    assert watcher.poll(now=1.0) == ([], [])
    watcher.retry_later(upload)
    again, _ = watcher.poll(now=2.0)
    assert [(u.path, u.sha256) for u in again] == [(upload.path, upload.sha256)]


def test_a_restarted_watcher_that_recalls_the_announcements_reports_only_new_content(tmp_path):
    old = _write(tmp_path / "cam" / "a.jpg")
    _write(tmp_path / "cam" / "b.jpg", b"\xff\xd8\xff other")
    os.utime(old, ns=(1_700_000_000_000_000_000, 1_700_000_000_000_000_000))
    restarted = FolderWatcher(tmp_path, stable_s=0)
    assert restarted.oldest_file() == datetime.fromtimestamp(1_700_000_000, UTC)
    # What the images topic says was announced: a.jpg of this camera, and the same bytes
    # from another camera (which does not count for this one).
    announced = [("cam", sha256_of(old)), ("other", sha256_of(old))]
    assert restarted.recall(announced) == 2
    assert restarted.recall(announced) == 0
    uploads, _ = restarted.poll(now=0.0)
    assert [u.path.name for u in uploads] == ["b.jpg"]


def test_an_empty_camera_root_has_no_oldest_file(tmp_path):
    (tmp_path / "cam").mkdir()
    _write(tmp_path / "cam" / "notes.txt")
    assert FolderWatcher(tmp_path, stable_s=0).oldest_file() is None
