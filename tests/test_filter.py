"""vsflavr.flavr() end to end inside VapourSynth, on real footage opened with BestSource."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import vapoursynth as vs
from conftest import BIKES_CUTS_INTO, open_bikes

import vsflavr
from vsflavr.checkpoint import load_checkpoint
from vsflavr.frames import pad_to_multiple

core = vs.core


def planes(frame: vs.VideoFrame) -> np.ndarray:
    return np.stack([np.asarray(frame[p]) for p in range(3)])


def same_pixels(a: vs.VideoFrame, b: vs.VideoFrame) -> bool:
    return all(bytes(a[p]) == bytes(b[p]) for p in range(3))


def model_output(weights: Path, clip: vs.VideoNode, indices: tuple[int, int, int, int], k: int) -> np.ndarray:
    """What the network itself makes from source frames ``indices``: output ``k`` (0-based), cropped."""
    model = load_checkpoint(weights).model
    x = torch.stack([torch.from_numpy(planes(clip.get_frame(i)).astype(np.float32)) for i in indices])
    height, width = x.shape[-2:]
    with torch.inference_mode():
        out = model(pad_to_multiple(x).unsqueeze(0))[0, k, :, :height, :width]
    return out.clamp(0, 1).numpy()


def test_2x_count_rate_source_frames_and_props(tiny_2x: Path) -> None:
    src = open_bikes(28)  # one shot
    out = vsflavr.flavr(src, multi=2, weights=tiny_2x, device="cpu", precision="fp32")
    assert (out.num_frames, out.fps, out.format.id, out.width, out.height) == (56, 50, vs.RGBS, 160, 68)
    for n, f in enumerate(out.frames()):
        i = n // 2
        assert f.props["_DurationNum"] == 1 and f.props["_DurationDen"] == 50
        if n % 2 == 0 or i == 27:  # source frame (or the tail copy after the last one): bit-identical
            assert same_pixels(f, src.get_frame(i)), n
            assert f.props["FLAVRInterpolated"] == 0
        else:
            assert f.props["FLAVRInterpolated"] == 1 and f.props["FLAVRPhase"] == 0.5
            assert not same_pixels(f, src.get_frame(i))
        assert f.props["_PictType"] == src.get_frame(i + (n % 2 == 1 and i < 27)).props["_PictType"]


def test_interpolated_frames_are_the_networks_frames_edges_included(tiny_2x: Path) -> None:
    src = open_bikes(20)
    out = vsflavr.flavr(src, weights=tiny_2x, device="cpu", precision="fp32")
    # first gap (I-1 replicated), a middle gap, the last gap (I2 replicated)
    for gap, window in [(0, (0, 0, 1, 2)), (9, (8, 9, 10, 11)), (18, (17, 18, 19, 19))]:
        got = planes(out.get_frame(2 * gap + 1))
        np.testing.assert_allclose(got, model_output(tiny_2x, src, window, 0), rtol=0, atol=1e-5)


def test_scene_cuts_are_never_interpolated_across(tiny_2x: Path, bikes: vs.VideoNode) -> None:
    out = vsflavr.flavr(bikes, multi=2, weights=tiny_2x, device="cpu", precision="fp32")
    for cut in BIKES_CUTS_INTO:  # cut between cut-1 and cut
        before, first = out.get_frame(2 * cut - 1), out.get_frame(2 * cut)
        assert same_pixels(before, bikes.get_frame(cut - 1)), "the gap over a cut holds a copy of the frame before"
        assert before.props["FLAVRInterpolated"] == 0 and before.props["_SceneChangeNext"] == 1
        assert same_pixels(first, bikes.get_frame(cut)) and first.props["_SceneChangePrev"] == 1
    flagged = [n for n, f in enumerate(out.frames()) if f.props["_SceneChangePrev"]]
    assert flagged == [2 * c for c in BIKES_CUTS_INTO]
    # Windows next to the cut into 30 stop at the shot's edge.
    np.testing.assert_allclose(
        planes(out.get_frame(57)), model_output(tiny_2x, bikes, (27, 28, 29, 29), 0), rtol=0, atol=1e-5
    )
    np.testing.assert_allclose(
        planes(out.get_frame(61)), model_output(tiny_2x, bikes, (30, 30, 31, 32), 0), rtol=0, atol=1e-5
    )


def test_sc_false_interpolates_across_cuts(tiny_2x: Path) -> None:
    src = open_bikes(34)
    out = vsflavr.flavr(src, weights=tiny_2x, device="cpu", precision="fp32", sc=False)
    assert out.get_frame(59).props["FLAVRInterpolated"] == 1
    np.testing.assert_allclose(
        planes(out.get_frame(59)), model_output(tiny_2x, src, (28, 29, 30, 31), 0), rtol=0, atol=1e-5
    )


def test_external_scene_marks_with_builtin_detection_off(tiny_2x: Path) -> None:
    src = open_bikes(20)

    def mark(n: int, f: vs.VideoFrame) -> vs.VideoFrame:
        out = f.copy()
        out.props["_SceneChangePrev"] = int(n == 8)
        return out

    out = vsflavr.flavr(
        src.std.ModifyFrame(src, mark), weights=tiny_2x, device="cpu", precision="fp32", sc_threshold=None
    )
    assert same_pixels(out.get_frame(15), src.get_frame(7)) and out.get_frame(15).props["FLAVRInterpolated"] == 0
    assert out.get_frame(13).props["FLAVRInterpolated"] == 1


def test_23976_to_5994(tiny_8x: Path) -> None:
    src = open_bikes(20).std.AssumeFPS(fpsnum=24000, fpsden=1001)
    out = vsflavr.flavr(src, fps_num=60000, fps_den=1001, weights=tiny_8x, device="cpu", precision="fp32")
    assert out.num_frames == 50 and out.fps == vs.core.std.BlankClip(fpsnum=60000, fpsden=1001).fps
    for n in range(0, 50, 5):  # every 5th output frame is exactly source frame 2n/5
        assert same_pixels(out.get_frame(n), src.get_frame(2 * n // 5))
    f1 = out.get_frame(1)  # t = 0.4 source frames -> nearest phase 3/8
    assert f1.props["FLAVRPhase"] == 3 / 8 and f1.props["_DurationNum"] == 1001
    assert f1.props["_DurationDen"] == 60000
    np.testing.assert_allclose(planes(f1), model_output(tiny_8x, src, (0, 0, 1, 2), 2), rtol=0, atol=1e-5)


@pytest.mark.parametrize(("multi", "phases"), [(2, [4]), (4, [2, 4, 6])])
def test_8x_checkpoint_serves_smaller_multi(tiny_8x: Path, multi: int, phases: list[int]) -> None:
    src = open_bikes(8)
    out = vsflavr.flavr(src, multi=multi, weights=tiny_8x, device="cpu", precision="fp32")
    assert out.num_frames == 8 * multi
    for m, phase in enumerate(phases, start=1):
        f = out.get_frame(3 * multi + m)
        assert f.props["FLAVRPhase"] == phase / 8
        np.testing.assert_allclose(planes(f), model_output(tiny_8x, src, (2, 3, 4, 5), phase - 1), rtol=0, atol=1e-5)


def test_rgbh_in_rgbh_out(tiny_2x: Path) -> None:
    src = open_bikes(6).resize.Point(format=vs.RGBH)
    out = vsflavr.flavr(src, weights=tiny_2x, device="cpu", precision="fp32")
    assert out.format.id == vs.RGBH and out.num_frames == 12
    assert same_pixels(out.get_frame(4), src.get_frame(2))
    ref = model_output(tiny_2x, src, (1, 2, 3, 4), 0)
    np.testing.assert_allclose(planes(out.get_frame(5)).astype(np.float32), ref, rtol=0, atol=2e-3)


@pytest.mark.parametrize("length", [1, 2, 3])
def test_very_short_clips_work(tiny_2x: Path, length: int) -> None:
    src = open_bikes(length)
    out = vsflavr.flavr(src, weights=tiny_2x, device="cpu", precision="fp32")
    frames = list(out.frames())
    assert len(frames) == 2 * length
    assert same_pixels(frames[-1], src.get_frame(length - 1))
    assert [f.props["FLAVRInterpolated"] for f in frames] == [0, 1] * (length - 1) + [0, 0]


def test_any_size_is_padded_and_cropped_back(tiny_2x: Path) -> None:
    src = open_bikes(4).std.Crop(right=3, bottom=5)  # 157x63
    out = vsflavr.flavr(src, weights=tiny_2x, device="cpu", precision="fp32")
    assert (out.width, out.height) == (157, 63)
    np.testing.assert_allclose(planes(out.get_frame(3)), model_output(tiny_2x, src, (0, 1, 2, 3), 0), rtol=0, atol=1e-5)
