"""`cpm_core.sources`, the one reader of frames from files, on real files: a small video written with OpenCV, a
folder holding one corrupt image, a video whose header lies, missing and corrupt media. No mocks of cv2."""

import struct

import cv2
import numpy as np
import pytest

from cpm_core.sources import (
    FolderReader,
    ImageReader,
    SourceError,
    VideoReader,
    open_media,
)

N = 12


def _frame(i: int) -> np.ndarray:
    """Frame `i`: one flat grey level per frame, far enough apart to tell frames apart after lossy coding."""
    return np.full((48, 64, 3), 10 + 20 * i, np.uint8)


def _video(path, fourcc: str = "mp4v", n: int = N, fps: float = 10.0):
    w = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), fps, (64, 48))
    assert w.isOpened()
    for i in range(n):
        w.write(_frame(i))
    w.release()
    return path


def _which(image: np.ndarray) -> int:
    """The frame index a decoded image shows."""
    return int(round((float(image.mean()) - 10) / 20))


def test_video_streams_every_frame_with_its_index_rate_and_count(tmp_path):
    with open_media(_video(tmp_path / "clip.mp4")) as media:
        assert isinstance(media, VideoReader) and media.kind == "video"
        assert media.fps == pytest.approx(10.0) and media.frame_count == N
        frames = list(media)
        assert media.end_note() is None  # as many frames as the header says
    assert [f.index for f in frames] == list(range(N))
    assert all(f.error is None and f.image.shape == (48, 64, 3) and f.image.dtype == np.uint8 for f in frames)
    assert [_which(f.image) for f in frames] == list(range(N))  # the right picture at each index
    assert {f.source for f in frames} == {str(tmp_path / "clip.mp4")}


def test_every_nth_frame_keeps_the_video_indexes(tmp_path):
    with open_media(_video(tmp_path / "clip.mp4")) as media:
        picked = list(media.frames(every=5))
    assert [f.index for f in picked] == [0, 5, 10]
    assert [_which(f.image) for f in picked] == [0, 5, 10]


def test_seek_back_to_the_start_reads_the_first_frame_again(tmp_path):
    with VideoReader(_video(tmp_path / "clip.mp4")) as reader:
        for _ in range(4):
            reader.read()
        reader.seek(0)
        assert reader.index == 0
        again = reader.read()
    assert again.index == 0 and _which(again.image) == 0


def test_folder_skips_its_corrupt_image_with_a_reason_and_goes_on(tmp_path):
    folder = tmp_path / "frames"
    folder.mkdir()
    cv2.imwrite(str(folder / "a.png"), _frame(1))
    (folder / "b.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    cv2.imwrite(str(folder / "c.png"), _frame(3))
    (folder / "notes.txt").write_text("not an image: not listed")
    with open_media(folder) as media:
        assert isinstance(media, FolderReader) and media.kind == "folder"
        assert media.frame_count == 3 and media.fps is None
        frames = list(media)
    assert [f.index for f in frames] == [0, 1, 2]
    assert [f.source for f in frames] == [str(folder / n) for n in ("a.png", "b.jpg", "c.png")]
    bad = frames[1]
    assert bad.image is None and "b.jpg" in bad.error and "not a readable image" in bad.error
    assert np.array_equal(frames[0].image, _frame(1)) and np.array_equal(frames[2].image, _frame(3))


def test_a_folder_without_images_is_one_clear_error(tmp_path):
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(SourceError, match="folder holds no images"):
        open_media(tmp_path)


def test_single_image_is_one_frame(tmp_path):
    cv2.imwrite(str(tmp_path / "one.png"), _frame(2))
    with open_media(tmp_path / "one.png") as media:
        assert isinstance(media, ImageReader) and media.frame_count == 1 and media.fps is None
        frames = list(media)
        media.seek(0)
        assert media.read().index == 0  # a still can be shown again
    assert len(frames) == 1 and frames[0].index == 0 and np.array_equal(frames[0].image, _frame(2))


def test_missing_media_is_one_clear_error(tmp_path):
    with pytest.raises(SourceError, match=r"missing\.mp4: no such file"):
        open_media(tmp_path / "missing.mp4")
    with pytest.raises(SourceError, match=r"missing\.png: no such file"), open_media(tmp_path / "missing.png") as m:
        list(m)  # a single image is read (and found missing or unreadable) on its first frame


def test_corrupt_media_is_one_clear_error(tmp_path):
    (tmp_path / "bad.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 8)
    with pytest.raises(SourceError, match=r"bad\.mp4: (cannot open as a video|video has no decodable frames)"):
        with open_media(tmp_path / "bad.mp4") as media:
            list(media)
    (tmp_path / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    with pytest.raises(SourceError, match=r"bad\.png: not a readable image"), open_media(tmp_path / "bad.png") as m:
        list(m)


def test_a_video_shorter_than_its_header_says_is_noted_after_its_frames(tmp_path):
    path = _video(tmp_path / "lying.avi", "MJPG")
    raw = bytearray(path.read_bytes())  # the AVI headers claim 2 * N frames; N are there
    struct.pack_into("<I", raw, raw.find(b"avih") + 8 + 16, 2 * N)  # dwTotalFrames
    struct.pack_into("<I", raw, raw.find(b"strh") + 8 + 32, 2 * N)  # dwLength
    path.write_bytes(bytes(raw))
    with open_media(path) as media:
        assert media.frame_count == 2 * N  # the header's count: a hint
        frames = list(media)
        note = media.end_note()
    assert [f.index for f in frames] == list(range(N))
    assert note is not None and "lying.avi" in note and f"only {N} of the {2 * N} frames" in note
