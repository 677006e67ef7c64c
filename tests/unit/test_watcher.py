import os
from datetime import UTC, datetime

from streams.watcher import (
    CompleteUpload,
    FolderWatcher,
    Rejected,
    find,
    is_candidate,
    scan,
)
from tests.factories import image_file_bytes
from tests.support import metric, sha256_of


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


def test_a_whole_image_is_reported_at_once_and_a_cut_one_only_after_incomplete_s(tmp_path):
    whole = image_file_bytes(seed=1)
    _write(tmp_path / "cam" / "whole.jpg", whole)
    cut = _write(tmp_path / "cam" / "cut.jpg", image_file_bytes(seed=2)[:200])
    watcher = FolderWatcher(tmp_path, stable_s=2.0, incomplete_s=30.0)
    uploads, _ = watcher.poll(now=0.0)
    assert [(u.path.name, u.size) for u in uploads] == [("whole.jpg", len(whole))]
    assert watcher.poll(now=29.0) == ([], [])
    uploads, _ = watcher.poll(now=30.0)
    assert [u.path for u in uploads] == [cut]


def test_an_upload_in_pieces_is_reported_when_its_last_piece_lands(tmp_path):
    data = image_file_bytes(seed=4)
    path = tmp_path / "cam" / "upload.jpg"
    path.parent.mkdir()
    watcher = FolderWatcher(tmp_path, stable_s=2.0, incomplete_s=30.0)
    pieces = [data[i : i + len(data) // 5 + 1] for i in range(0, len(data), len(data) // 5 + 1)]
    with open(path, "wb") as handle:
        for second, piece in enumerate(pieces):
            assert watcher.poll_changed([path], now=float(second)) == ([], [])
            handle.write(piece)
            handle.flush()
            os.utime(path, ns=(second * 10**9, second * 10**9))  # mtime moves on each piece
    uploads, _ = watcher.poll_changed([path], now=float(len(pieces)))
    assert [(u.path, u.size) for u in uploads] == [(path, len(data))]


def test_a_file_whose_end_cannot_be_told_waits_for_stable_s(tmp_path):
    _write(tmp_path / "cam" / "scan.tif", b"II*\x00" + bytes(100))
    watcher = FolderWatcher(tmp_path, stable_s=2.0, incomplete_s=30.0)
    assert watcher.poll(now=0.0) == ([], [])
    assert [u.path.name for u in watcher.poll(now=2.0)[0]] == ["scan.tif"]


def test_find_looks_only_at_the_paths_given_and_walks_new_folders(tmp_path):
    _write(tmp_path / "cam" / "old.jpg")
    new = _write(tmp_path / "cam" / "2026" / "12" / "new.jpg")
    hidden = _write(tmp_path / "cam" / ".thumbs" / "t.jpg")
    partial = _write(tmp_path / "cam" / "up.jpg.part")
    stray = _write(tmp_path / "not a camera" / "x.jpg")
    outside = _write(tmp_path.parent / f"{tmp_path.name}-elsewhere.jpg")
    found = find(tmp_path, [tmp_path / "cam" / "2026", hidden, partial, stray, outside, tmp_path])
    assert [(f.camera_id, f.path) for f in found] == [("cam", new)]


def test_poll_changed_rejects_a_link_out_of_the_root_once(tmp_path):
    outside = _write(tmp_path / "outside.jpg")
    (tmp_path / "cams" / "cam").mkdir(parents=True)
    link = tmp_path / "cams" / "cam" / "x.jpg"
    os.symlink(outside, link)
    watcher = FolderWatcher(tmp_path / "cams", stable_s=0)
    [rejected] = watcher.poll_changed([link], now=0.0)[1]
    assert rejected.path == link
    assert watcher.poll_changed([link], now=1.0) == ([], [])


def _watched(outcome: str) -> float:
    from vigil.metrics import exposition

    return metric(exposition()[0].decode(), "vigil_watcher_files_total", outcome=outcome)


def test_the_watchers_decisions_are_counted(tmp_path):
    before = {o: _watched(o) for o in ("reported", "duplicate", "refused")}
    outside = _write(tmp_path / "outside.jpg", b"\xff\xd8\xff other")
    _write(tmp_path / "cams" / "cam" / "a.jpg")
    _write(tmp_path / "cams" / "cam" / "copy-of-a.jpg")
    _write(tmp_path / "cams" / "cam" / "notes.txt", b"not a candidate")
    os.symlink(outside, tmp_path / "cams" / "cam" / "x.jpg")
    watcher = FolderWatcher(tmp_path / "cams", stable_s=0)
    watcher.poll(now=0.0)
    watcher.poll(now=1.0)  # nothing new: nothing counted again
    moved = {o: _watched(o) - before[o] for o in before}
    assert moved == {"reported": 1, "duplicate": 1, "refused": 1}
