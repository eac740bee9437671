"""The held-frame detector: synthetic cases at 1920x1080, real encodes, cuts, overrides, the log."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import vapoursynth as vs

from vsflavr.heldframes import DEFAULT_THRESHOLD, HeldFrames
from vsflavr.heldframes import held_difference as held_difference_of_luma

core = vs.core
CROPS = Path(__file__).parent / "data" / "held_crops.npz"
"""Full-resolution crops of the shared footage, decoded YUV 4:2:0 (see tools/held_crops.py)."""

rng = np.random.default_rng(0)


def footage_like(height: int = 1080, width: int = 1920) -> np.ndarray:
    """A (3, H, W) frame in 0..1: smooth gradients and fine texture, quantised to 8 bits."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    base = np.stack([0.5 + 0.3 * np.sin(x / 37 + y / 53), 0.45 + 0.25 * np.cos(y / 41), 0.4 + 0.2 * np.sin(x / 29)])
    return to_8bit(base + rng.normal(0, 0.02, base.shape))


def to_8bit(frame: np.ndarray) -> np.ndarray:
    return (np.clip(frame, 0, 1) * 255).round().astype(np.float32) / 255


def held_difference(a: np.ndarray, b: np.ndarray) -> float:
    """The detector's difference of two (3, H, W) RGB frames, on their BT.709 luma as the detector reads RGB."""
    weights = np.array([0.2126, 0.7152, 0.0722], np.float32)[:, None, None]
    return held_difference_of_luma((weights * a).sum(axis=0), (weights * b).sum(axis=0))


def is_duplicate(a: np.ndarray, b: np.ndarray) -> bool:
    return held_difference(a, b) <= DEFAULT_THRESHOLD


def test_exact_repeat_is_a_duplicate() -> None:
    frame = footage_like()
    assert held_difference(frame, frame.copy()) == 0.0


def test_repeat_with_noise_and_8bit_rounding_is_a_duplicate() -> None:
    frame = footage_like()
    noisy = to_8bit(frame + rng.normal(0, 1.5 / 255, frame.shape).astype(np.float32))
    assert is_duplicate(frame, noisy), held_difference(frame, noisy) * 255


@pytest.mark.parametrize("dy", range(0, 8, 3))
@pytest.mark.parametrize("dx", range(8))
def test_a_6x6_change_of_48_anywhere_is_a_new_drawing(dx: int, dy: int) -> None:
    """A blink-sized change at every offset modulo the window stride, with noise on the new frame."""
    frame = footage_like()
    for top, left in ((8 * 60 + dy, 8 * 100 + dx), (1080 - 6, 1920 - 6), (0, 0)):
        changed = frame + rng.normal(0, 1.5 / 255, frame.shape).astype(np.float32)
        changed[:, top : top + 6, left : left + 6] += 48 / 255
        assert not is_duplicate(frame, to_8bit(changed)), (top, left, held_difference(frame, changed) * 255)


def line_art(shift: float, height: int = 1080, width: int = 1920) -> np.ndarray:
    """Dark anti-aliased lines 1.5 px wide on a light flat background: a few circles, moved ``shift`` px right."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    ink = np.zeros((height, width), np.float32)
    for cx, cy, r in ((300, 300, 120), (900, 500, 260), (1500, 700, 60), (1200, 200, 30)):
        distance = np.abs(np.hypot(x - cx - shift, y - cy) - r)
        ink = np.maximum(ink, np.clip(1.25 - distance, 0, 1))
    return to_8bit(np.stack([0.9 - 0.8 * ink, 0.85 - 0.75 * ink, 0.8 - 0.7 * ink]))


def test_line_art_panning_half_a_pixel_is_a_new_drawing() -> None:
    assert not is_duplicate(line_art(0.0), line_art(0.5)), held_difference(line_art(0.0), line_art(0.5)) * 255


def test_tiny_frames_have_one_window() -> None:
    a = np.zeros((3, 5, 7), np.float32)
    b = a.copy()
    b[:, 0, 0] = 1.0
    assert held_difference(a, b) == pytest.approx((1 - 3 / 255) / 35)


def clip_of(frames: list[np.ndarray], props: dict[int, dict[str, int]] | None = None) -> vs.VideoNode:
    """An RGBS clip holding (3, H, W) arrays, with frame properties ``props[n]``."""
    height, width = frames[0].shape[1:]
    blank = core.std.BlankClip(width=width, height=height, format=vs.RGBS, length=len(frames), fpsnum=24)

    def fill(n: int, f: vs.VideoFrame) -> vs.VideoFrame:
        out = f.copy()
        for p in range(3):
            np.copyto(np.asarray(out[p]), frames[n][p])
        for key, value in (props or {}).get(n, {}).items():
            out.props[key] = value
        return out

    return blank.std.ModifyFrame(blank, fill)


def duplicates(held: HeldFrames, length: int) -> list[int]:
    """Every frame the detector takes for a held copy of the one before."""
    found, i = [], 0
    while i < length:
        shot = held.shot(i)
        for key, hold in zip(shot.keys, shot.holds, strict=True):
            found += range(key + 1, key + hold)
        i = shot.end
    return found


def test_a_cut_between_identical_frames_is_never_a_duplicate() -> None:
    frame = footage_like(64, 96)
    clip = clip_of([frame] * 4, {2: {"_SceneChangePrev": 1}})
    held = HeldFrames(clip, DEFAULT_THRESHOLD, use_cuts=True)
    assert (held.shot(1).start, held.shot(1).holds) == (0, (2,))
    assert (held.shot(3).start, held.shot(3).holds) == (2, (2,))
    assert HeldFrames(clip, DEFAULT_THRESHOLD, use_cuts=False).shot(3).holds == (4,)


def test_the_frame_property_overrides_either_way() -> None:
    a, b = footage_like(64, 96), footage_like(64, 96)
    clip = clip_of([a, a, b, b, b], {1: {"FLAVRHeld": 0}, 2: {"FLAVRHeld": 1}})
    assert HeldFrames(clip, DEFAULT_THRESHOLD, use_cuts=True).shot(0).holds == (1, 4)


def test_slow_drift_does_not_chain_into_one_hold() -> None:
    """Each step is below the threshold, but the run's first frame is compared too."""
    frame = footage_like(64, 96)
    frames = [frame.copy() for _ in range(8)]
    for n, f in enumerate(frames):
        f[:, 16:32, 16:32] += n * 2.5 / 255  # +2.5/255 per frame on a 16x16 patch: under the noise floor
    held = HeldFrames(clip_of(frames), DEFAULT_THRESHOLD, use_cuts=True)
    assert held.shot(0).holds == (3, 3, 2)  # 3 steps from a run's first frame exceed the threshold


def test_log_has_a_row_per_frame(tmp_path: Path) -> None:
    a = footage_like(32, 48)
    b = 1 - a
    log = tmp_path / "held.csv"
    HeldFrames(clip_of([a, a, b, a], {3: {"_SceneChangePrev": 1}}), DEFAULT_THRESHOLD, True, log=log)
    rows = list(csv.DictReader(log.open()))
    assert [(r["frame"], r["duplicate"], r["run"], r["shot"]) for r in rows] == [
        ("0", "0", "0", "0"),
        ("1", "1", "0", "0"),
        ("2", "0", "2", "0"),
        ("3", "0", "3", "3"),
    ]
    assert float(rows[1]["diff_previous"]) == 0.0 and float(rows[2]["diff_previous"]) > DEFAULT_THRESHOLD


def crop_clip(name: str, rgbs: bool = True) -> tuple[vs.VideoNode, int]:
    """A stretch of real footage as BestSource decoded it (YUV420P8, ``_Matrix=1``), converted to RGBS as a user
    script would unless ``rgbs=False``; and its first frame."""
    data = np.load(CROPS)
    planes = [data[f"{name}_{p}"] for p in "yuv"]
    length, height, width = planes[0].shape
    blank = core.std.BlankClip(width=width, height=height, format=vs.YUV420P8, length=length, fpsnum=25)

    def fill(n: int, f: vs.VideoFrame) -> vs.VideoFrame:
        out = f.copy()
        for p in range(3):
            np.copyto(np.asarray(out[p]), planes[p][n])
        return out

    yuv = blank.std.ModifyFrame(blank, fill).std.SetFrameProps(_Matrix=1)
    return yuv.resize.Bicubic(format=vs.RGBS) if rgbs else yuv, int(data[f"{name}_first"])


def test_real_repeats_found_on_bigbuckbunny() -> None:
    """bigbuckbunny.mp4 repeats frame 106 as 107 (a 24 -> 25 fps conversion); 118 barely moves but is new."""
    clip, first = crop_clip("bigbuckbunny")
    assert [first + n for n in duplicates(HeldFrames(clip, DEFAULT_THRESHOLD, True), clip.num_frames)] == [107]


def test_nothing_held_on_the_slowest_shot_of_bikes() -> None:
    clip, _ = crop_clip("bikes")
    assert duplicates(HeldFrames(clip, DEFAULT_THRESHOLD, True), clip.num_frames) == []
