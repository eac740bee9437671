"""Odd clips and properties, generated from a seed: each is handled with correct counts and frames, or refused.

Cases: 1-3 frames, 1-px and odd sizes, RGBS and RGBH, NaN and infinite pixels, scene-change
properties of the wrong type (float, str, bytes, arrays) and vsflavr's own properties already
on the clip (a clip filtered twice), multi 2/4/8 or a target rate; output frames are requested
in a random order.  A case passes when ``flavr()`` refuses it with a ``vs.Error``, or when the
output has the right number of frames, every source frame comes out bit-identical, every
interpolated frame is finite and in 0..1, a frame next to a bad property is a ``vs.Error``
naming it, and the random order gives the same frames as the natural one.
"""

from __future__ import annotations

import math
import random
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
import vapoursynth as vs

import vsflavr

core = vs.core
SEED = 16
CASES = 60

BAD_SCENE_PROPS: list[object] = ["1", b"yes", [1, 0], [0.0, 1.0]]
"""Values of _SceneChangeNext/_SceneChangePrev that are not a number: each must be an error naming it."""
GOOD_SCENE_PROPS: list[object] = [0, 1, 0.0, 1.0, 2, -1]
"""Numbers: nonzero is a cut, as VapourSynth's own filters read them."""


@dataclass
class Case:
    width: int
    height: int
    length: int
    fmt: int
    multi: int | None = 2
    fps: tuple[int, int] | None = None
    sc: bool = True
    special: dict[int, str] = field(default_factory=dict)  # frame -> "nan", "inf", "-inf"
    props: dict[int, dict[str, object]] = field(default_factory=dict)  # frame -> props to set


def random_case(rng: random.Random) -> Case:
    side = [1, 2, 3, 7, 8, 9, 16, 17, 31, 40]
    case = Case(
        width=rng.choice(side),
        height=rng.choice(side),
        length=rng.choice([1, 1, 2, 2, 3, 5]),
        fmt=rng.choice([vs.RGBS, vs.RGBH]),
        sc=rng.random() < 0.5,
    )
    if rng.random() < 0.2:
        case.multi, case.fps = None, rng.choice([(50, 1), (60000, 1001), (75, 1)])
    else:
        case.multi = rng.choice([2, 2, 4, 8])
    for n in range(case.length):
        roll = rng.random()
        if roll < 0.15:
            case.special[n] = rng.choice(["nan", "inf", "-inf"])
        elif roll < 0.35:
            name = rng.choice(["_SceneChangeNext", "_SceneChangePrev"])
            case.props[n] = {name: rng.choice(BAD_SCENE_PROPS + GOOD_SCENE_PROPS)}
        elif roll < 0.5:  # vsflavr's own properties, as on a clip that went through flavr() before
            case.props[n] = {
                "FLAVRInterpolated": rng.choice([1, "x", 0.5]),
                "FLAVRPhase": rng.choice([0.5, "half", [1, 2]]),
                "FLAVRSceneDiff": rng.choice([0.9, "big"]),
            }
    return case


def build(case: Case) -> vs.VideoNode:
    """Frames that move (a diagonal ramp shifting one pixel a frame), with the case's odd pixels and properties."""
    blank = core.std.BlankClip(
        width=case.width, height=case.height, format=case.fmt, length=case.length, fpsnum=25, keep=True
    )
    y, x = np.mgrid[: case.height, : case.width].astype(np.float32)

    def fill(n: int, f: vs.VideoFrame) -> vs.VideoFrame:
        out = f.copy()
        for p in range(3):
            plane = 0.5 + 0.4 * np.sin((x + n + 3 * p) / 3.0) * np.cos(y / 5.0)
            if n in case.special:
                plane[plane.shape[0] // 2, plane.shape[1] // 2] = float(case.special[n])
            np.copyto(np.asarray(out[p]), plane, casting="unsafe")
        for name, value in case.props.get(n, {}).items():
            out.props[name] = value
        return out

    return core.std.ModifyFrame(blank, blank, fill)


def _bad_scene_prop(case: Case, n: int) -> bool:
    return any(
        name.startswith("_SceneChange") and not isinstance(value, int | float)
        for name, value in case.props.get(n, {}).items()
    )


def frames_of(clip: vs.VideoNode, order: list[int]) -> dict[int, np.ndarray | str]:
    """Each requested frame's planes (float64), or the vs.Error message it gave."""
    result: dict[int, np.ndarray | str] = {}
    for n in order:
        try:
            frame = clip.get_frame(n)
        except vs.Error as exc:
            result[n] = str(exc)
            continue
        planes = np.stack([np.asarray(frame[p]).astype(np.float64) for p in range(3)])
        result[n] = planes
        result[-1 - n] = np.array([frame.props["FLAVRInterpolated"], frame.props["FLAVRPhase"]])
    return result


def check(case: Case, weights: Path, rng: random.Random) -> str:
    """Run one case; returns its outcome ("refused", "handled", "handled, with errors on bad properties")."""
    clip = build(case)
    rate = {"fps_num": case.fps[0], "fps_den": case.fps[1]} if case.fps else {}

    def call() -> vs.VideoNode:
        return vsflavr.flavr(clip, case.multi, **rate, weights=weights, device="cpu", precision="fp32", sc=case.sc)

    try:
        out = call()
    except vs.Error as exc:
        assert str(exc).startswith("flavr: "), (case, str(exc))
        return "refused"
    ratio = case.multi if case.multi else case.fps[0] / case.fps[1] / 25
    assert out.num_frames == math.floor(case.length * ratio + 1e-9) or out.num_frames == math.ceil(
        case.length * ratio - 1e-9
    ), case
    assert (out.width, out.height, out.format.id) == (case.width, case.height, case.fmt), case
    order = list(range(out.num_frames))
    rng.shuffle(order)
    shuffled = frames_of(out, order)
    natural = frames_of(call(), list(range(out.num_frames)))
    source = {
        i: np.stack([np.asarray(clip.get_frame(i)[p]).astype(np.float64) for p in range(3)]) for i in range(case.length)
    }
    errors = 0
    for n in range(out.num_frames):
        a, b = shuffled[n], natural[n]
        if isinstance(a, str):
            assert a == b, (case, n, a, b)
            assert "flavr: frame property _SceneChange" in a and "must be a number" in a, (case, n, a)
            errors += 1
            continue
        assert not isinstance(b, str), (case, n, b)
        np.testing.assert_array_equal(a, b, err_msg=f"{case} frame {n}: the order of requests changed it")
        interpolated, phase = shuffled[-1 - n]
        if interpolated:
            assert np.isfinite(a).all() and a.min() >= 0 and a.max() <= 1, (case, n)
            assert 0 < phase < 1, (case, n, phase)
        else:
            assert phase == 0, (case, n)
            assert any(np.array_equal(a, s, equal_nan=True) for s in source.values()), (case, n)
    if case.multi:  # source frame i is output frame i * multi, unchanged
        for i in range(case.length):
            if not isinstance(shuffled[i * case.multi], str):
                np.testing.assert_array_equal(shuffled[i * case.multi], source[i], err_msg=f"{case} source {i}")
    bad = any(_bad_scene_prop(case, n) for n in range(case.length))
    assert errors == 0 or bad, case
    return "handled, with errors on bad properties" if errors else "handled"


@pytest.fixture(scope="module")
def weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from conftest import make_checkpoint

    return make_checkpoint(tmp_path_factory.mktemp("clips") / "tiny_8x.pth", 7, seed=3)


def test_odd_clips_and_properties_are_handled_or_refused(weights: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rng = random.Random(SEED)
    cases = [random_case(rng) for _ in range(CASES)]
    outcomes: Counter[str] = Counter()
    for case in cases:
        outcomes[check(case, weights, rng)] += 1
    with capsys.disabled():  # the case counts show in CI's log
        print(f"\nclip fuzz: {len(cases)} cases, {dict(outcomes)}")
    assert outcomes["handled"] > CASES // 2


@pytest.mark.parametrize("value", BAD_SCENE_PROPS)
def test_a_scene_change_property_that_is_not_a_number_is_an_error_naming_it(value: object, weights: Path) -> None:
    case = Case(width=16, height=8, length=3, fmt=vs.RGBS, props={1: {"_SceneChangeNext": value}})
    out = vsflavr.flavr(build(case), weights=weights, device="cpu", precision="fp32", sc_threshold=None)
    out.get_frame(0)
    with pytest.raises(
        vs.Error, match=r"flavr: frame property _SceneChangeNext must be a number \(1: a cut, 0: none\), got "
    ):
        out.get_frame(3)


@pytest.mark.parametrize("special", ["nan", "inf", "-inf"])
def test_non_finite_pixels_do_not_spread_into_interpolated_frames(special: str, weights: Path) -> None:
    case = Case(width=16, height=8, length=4, fmt=vs.RGBS, special={1: special})
    out = vsflavr.flavr(build(case), weights=weights, device="cpu", precision="fp32", sc=False)
    for n in (1, 3, 5):  # gaps whose window holds the frame
        frame = out.get_frame(n)
        assert frame.props["FLAVRInterpolated"] == 1
        assert all(np.isfinite(np.asarray(frame[p])).all() for p in range(3)), n
