"""The clip as it comes: any format in, the same format out, source frames untouched, only FLAVR's frames converted."""

from __future__ import annotations

import logging
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import torch
import vapoursynth as vs
from conftest import BIKES, BIKES_CUTS_INTO
from test_dedup import LinearBackend
from test_heldframes import crop_clip

import vsflavr
from vsflavr.formats import FULL, LIMITED, Coding, coding_of, from_network, guess_matrix, luma, to_network
from vsflavr.heldframes import HeldFrames
from vsflavr.scenes import mark_scene_changes
from vsflavr.schedule import Schedule
from vsflavr.weights import resolve_checkpoint

core = vs.core
SET_BY_VSFLAVR = {"_DurationNum", "_DurationDen", "_SceneChangeNext", "_SceneChangePrev"}
FORMATS = [vs.YUV420P8, vs.YUV420P10, vs.YUV422P10, vs.YUV444P16, vs.YUV444PS, vs.GRAY8, vs.RGB24, vs.RGBS]


def bikes_as(fmt: int, length: int | None = None) -> vs.VideoNode:
    """The test footage as BestSource decodes it (YUV420P8, props of the file), converted to ``fmt`` if asked."""
    clip = core.bs.VideoSource(str(BIKES))
    clip = clip[:length] if length else clip
    if fmt == clip.format.id:
        return clip
    if core.get_video_format(fmt).color_family == vs.RGB:
        return clip.resize.Bicubic(format=fmt, matrix_in_s="709")
    return clip.resize.Bicubic(format=fmt)


def planes_equal(a: vs.VideoFrame, b: vs.VideoFrame) -> bool:
    return all(bytes(a[p]) == bytes(b[p]) for p in range(a.format.num_planes))


def source_props(frame: vs.VideoFrame) -> dict[str, object]:
    return {k: v for k, v in frame.props.items() if k not in SET_BY_VSFLAVR and not k.startswith("FLAVR")}


@pytest.mark.parametrize("mode", ["multi2", "fps60", "dedup"])
@pytest.mark.parametrize("fmt", FORMATS, ids=lambda f: core.get_video_format(f).name)
def test_source_frames_come_out_bit_exact_with_their_props(fmt: int, mode: str) -> None:
    src = bikes_as(fmt, 8)
    kwargs = {"multi2": {"multi": 2}, "fps60": {"fps_num": 60000, "fps_den": 1001}, "dedup": {"dedup": True}}[mode]
    out = vsflavr.flavr(src, weights="builtin", device="cpu", **kwargs)
    assert (out.format.id, out.width, out.height) == (src.format.id, src.width, src.height)
    ratio = Fraction(out.fps) / Fraction(src.fps)
    grid = resolve_checkpoint("builtin", 2 if mode == "multi2" else None).architecture.multi  # 2x, else 8x
    schedule = Schedule(src.num_frames, ratio, grid)
    made = 0
    for n, f in enumerate(out.frames()):
        # The source frame shown, or the one before the interpolated frame (bikes holds no drawing: dedup's
        # drawings are its frames); an interpolated frame has the props of the nearer of the two.
        i = int(f.props["FLAVRDrawing"]) if mode == "dedup" else schedule.position(n).source
        s = src.get_frame(i + (f.props["FLAVRPhase"] >= 0.5))
        if f.props["FLAVRInterpolated"]:
            made += 1
            assert not planes_equal(f, src.get_frame(i)), n
        else:
            assert planes_equal(f, s), n
        assert source_props(f) == source_props(s), n  # interpolated: the props of the nearest source frame
    assert made > 0


@pytest.fixture
def seen(monkeypatch: pytest.MonkeyPatch) -> list[torch.Tensor]:
    frames: list[torch.Tensor] = []
    monkeypatch.setattr(vsflavr, "select_backend", lambda *a, **k: LinearBackend(passes=[0], seen=frames))
    return frames


def still(fmt: int, length: int = 4, **coding: object) -> vs.VideoNode:
    """A still clip (every frame equal) of smooth colour ramps and waves, coded as ``fmt`` with ``coding``
    (resize's output arguments: range, chromaloc, matrix), props set as the resizer sets them."""
    y, x = np.mgrid[0:48, 0:64].astype(np.float32)
    rgb = np.stack([0.5 + 0.3 * np.sin(x / 5), 0.5 + 0.3 * np.cos(y / 4), 0.2 + 0.6 * x / 64]).clip(0.05, 0.95)
    blank = core.std.BlankClip(width=64, height=48, format=vs.RGBS, length=length, fpsnum=24)

    def fill(n: int, f: vs.VideoFrame) -> vs.VideoFrame:
        out = f.copy()
        for p in range(3):
            np.copyto(np.asarray(out[p]), rgb[p])
        return out

    clip = blank.std.ModifyFrame(blank, fill)
    family = core.get_video_format(fmt).color_family
    if family == vs.RGB:
        return clip.resize.Point(format=fmt, **coding)
    return clip.resize.Bicubic(format=fmt, matrix=1, **coding)


def max_code_difference(a: vs.VideoFrame, b: vs.VideoFrame) -> float:
    return max(
        float(np.abs(np.asarray(a[p], np.float64) - np.asarray(b[p], np.float64)).max()) for p in range(a.format.num_planes)
    )


ROUND_TRIPS = [
    (fmt, {"range": r})
    for fmt in (vs.YUV420P8, vs.YUV420P10, vs.YUV420P16, vs.YUV444P8, vs.GRAY8, vs.GRAY16, vs.RGB24, vs.RGB30)
    for r in (LIMITED, FULL)
] + [(vs.YUV420P10, {"chromaloc": c}) for c in (0, 1, 2)] + [(vs.YUV422P10, {"chromaloc": 1})]


@pytest.mark.parametrize(("fmt", "coding"), ROUND_TRIPS, ids=str)
def test_still_clip_round_trip_within_one_code_value(fmt: int, coding: dict[str, int], seen: list) -> None:
    src = still(fmt, **coding)
    out = vsflavr.flavr(src, multi=2, weights="builtin", device="cpu", sc=False)
    tween = out.get_frame(1)
    assert tween.props["FLAVRInterpolated"] == 1
    assert max_code_difference(tween, src.get_frame(0)) <= 1
    if "chromaloc" in coding:  # FLAVR read the chroma at its stated location, not half a pixel off
        c = coding["chromaloc"]
        rgb = seen[0][0, 1].numpy()
        for location, same in ((c, True), (2 if c != 2 else 0, False)):
            unsaid = src.std.RemoveFrameProps("_ChromaLocation")  # a frame property would win over chromaloc_in
            expected = unsaid.resize.Point(format=vs.RGBS, chromaloc_in=location).get_frame(0)
            expected = np.stack([np.asarray(expected[p]) for p in range(3)])
            assert (float(np.abs(rgb - expected).max()) < 1e-6) == same, location


@pytest.mark.parametrize("fmt", [vs.YUV444PS, vs.RGBS, vs.GRAYS])
def test_still_float_clip_round_trip_within_1e5(fmt: int, seen: list) -> None:
    src = still(fmt)
    tween = vsflavr.flavr(src, multi=2, weights="builtin", device="cpu", sc=False).get_frame(1)
    assert tween.props["FLAVRInterpolated"] == 1
    assert max_code_difference(tween, src.get_frame(0)) <= 1e-5


@pytest.mark.parametrize(
    ("size", "matrix"),
    [
        ((640, 480), 6),
        ((720, 486), 6),
        ((160, 68), 6),
        ((720, 576), 5),
        ((1024, 576), 5),
        ((1280, 720), 1),
        ((1920, 1080), 1),
        ((3840, 2160), 1),
        ((720, 1280), 1),  # a portrait phone clip is HD, width and height each compared
        ((1100, 400), 1),
    ],
)
def test_matrix_guessed_from_the_frame_size(size: tuple[int, int], matrix: int) -> None:
    assert guess_matrix(*size).matrix == matrix


def test_a_guess_is_one_log_line_naming_it_and_how_to_state_it(caplog: pytest.LogCaptureFixture) -> None:
    clip = core.std.BlankClip(format=vs.YUV420P10, width=1920, height=1080, length=2)
    with caplog.at_level(logging.WARNING, logger="vsflavr"):
        assert coding_of(clip) == Coding(1, LIMITED, 0)
    (line,) = [r.getMessage() for r in caplog.records]
    assert "_Matrix=1 (709, for frames over 1024x576 (HD and UHD) at 1920x1080)" in line and "_Range=0 (limited)" in line
    assert "clip = core.std.SetFrameProps(clip, _Matrix=1, _Range=0, _ChromaLocation=0)" in line
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="vsflavr"):
        stated = clip.std.SetFrameProps(_Matrix=9, _Range=1, _ChromaLocation=2)
        assert coding_of(stated) == Coding(9, FULL, 2)
    assert not caplog.records


def test_range_read_from_range_or_the_older_colorrange() -> None:
    clip = core.std.BlankClip(format=vs.YUV444P8, width=32, height=32, length=1)
    assert coding_of(clip.std.SetFrameProps(_Range=1)).range == FULL
    with pytest.warns(DeprecationWarning):  # _ColorRange numbers the other way: 0 is full
        assert coding_of(clip.std.SetFrameProps(_ColorRange=0)).range == FULL


def test_detectors_find_the_same_cuts_and_holds_on_yuv_as_on_rgbs() -> None:
    yuv = bikes_as(vs.YUV420P8).std.SetFrameProps(_Matrix=1)
    rgbs = yuv.resize.Bicubic(format=vs.RGBS)
    flagged = [
        [n + 1 for n, f in enumerate(mark_scene_changes(c).frames()) if f.props.get("_SceneChangeNext")]
        for c in (yuv, rgbs)
    ]
    assert flagged[0] == flagged[1] == list(BIKES_CUTS_INTO)
    shots = []
    for as_rgbs in (False, True):
        clip, _ = crop_clip("bigbuckbunny", rgbs=as_rgbs)
        shots.append(HeldFrames(clip, 3 / 255, use_cuts=True).shots)
    assert shots[0] == shots[1] and any(max(s.holds) > 1 for s in shots[0])
    lumas = [np.asarray(luma(c, coding_of(c)).get_frame(5)[0]) for c in (yuv, rgbs)]
    assert float(np.abs(lumas[0] - lumas[1]).max()) < 1e-5  # the same luma, read without conversion from YUV


def test_matrix_6_converts_with_170m_and_hdr_keeps_its_props(seen: list) -> None:
    for matrix, name, props in ((6, "170m", {}), (9, "2020ncl", {"_Transfer": 16, "_Primaries": 9})):
        seen.clear()
        src = still(vs.YUV420P10).std.SetFrameProps(_Matrix=matrix, **props)
        out = vsflavr.flavr(src, multi=2, weights="builtin", device="cpu", sc=False)
        assert out.format.id == vs.YUV420P10
        for f in out.frames():
            assert source_props(f) == source_props(src.get_frame(0))
        rgb = seen[0][0, 1].numpy()
        unsaid = src.std.RemoveFrameProps("_Matrix")
        for read_as, same in ((name, True), ("709", False)):
            ref = unsaid.resize.Point(format=vs.RGBS, matrix_in_s=read_as).get_frame(0)  # coded values: no transfer
            assert (float(np.abs(rgb - np.stack([np.asarray(ref[p]) for p in range(3)])).max()) < 1e-6) == same


def test_agrees_with_the_manual_conversion_around_the_rgbs_path() -> None:
    """The same conversions written by hand around an RGBS call: 99.9 % of code values equal, none off by more than 1
    except where the RGBS path clamps out-of-gamut colours to 0..1."""
    src = bikes_as(vs.YUV420P8, 29).std.SetFrameProps(_Matrix=1)
    ours = vsflavr.flavr(src, multi=2, weights="builtin", device="cpu")
    rgbs = src.resize.Point(format=vs.RGBS)
    by_hand = vsflavr.flavr(rgbs, multi=2, weights="builtin", device="cpu").resize.Point(format=vs.YUV420P8, matrix=1)
    diffs = [
        np.abs(np.asarray(ours.get_frame(n)[p], np.int16) - np.asarray(by_hand.get_frame(n)[p], np.int16)).ravel()
        for n in range(1, 56, 2)
        for p in range(3)
    ]
    every = np.concatenate(diffs)
    assert (every <= 1).mean() >= 0.999, np.bincount(every)


@pytest.mark.parametrize(
    ("clip", "message"),
    [
        (lambda: core.std.BlankClip(format=vs.YUV420P8, length=2).std.SetFrameProps(_Matrix=0), "_Matrix=0 .RGB. contradicts"),
        (lambda: core.std.BlankClip(format=vs.RGB24, length=2).std.SetFrameProps(_Matrix=1), "_Matrix=1 .a YUV matrix. contradicts"),
        (lambda: core.std.BlankClip(format=vs.YUV420P8, length=2).std.SetFrameProps(_Matrix=3), "_Matrix=3 is not a matrix"),
        (lambda: core.std.BlankClip(format=vs.YUV420P8, length=2).std.SetFrameProps(_ChromaLocation=7), "_ChromaLocation=7"),
        (lambda: core.std.BlankClip(format=vs.YUV420P8, length=2).std.SetFrameProps(_FieldBased=2), "interlaced"),
        (lambda: core.std.BlankClip(format=core.query_video_format(vs.GRAY, vs.INTEGER, 32, 0, 0).id, length=2), "resizer cannot convert Gray32"),
    ],
)
def test_bad_input_is_a_one_line_error_naming_it(clip, message: str) -> None:
    with pytest.raises(vs.Error, match=message) as error:
        vsflavr.flavr(clip(), weights="builtin", device="cpu")
    assert str(error.value).startswith("flavr: ") and "\n" not in str(error.value)


def test_a_colour_coding_that_changes_mid_clip_is_an_error_on_that_frame() -> None:
    clip = still(vs.YUV420P8, 6)
    mixed = clip[:3] + clip[3:].std.SetFrameProps(_Matrix=5)
    out = vsflavr.flavr(mixed, multi=2, weights="builtin", device="cpu", sc=False)
    out.get_frame(1)
    with pytest.raises(vs.Error, match=r"flavr: output frame 5 is made from a source frame with _Matrix=5 but the clip's first frame has _Matrix=1"):
        out.get_frame(5)
