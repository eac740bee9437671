"""Variable frame rate: timestamps from per-frame durations, and flavr() to a constant target rate."""

from __future__ import annotations

import math
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import vapoursynth as vs
from test_dedup import LinearBackend

import vsflavr
from vsflavr.timestamps import frame_times

core = vs.core
SEGMENTS = ((12, 24000, 1001), (17, 30000, 1001))
TARGET = Fraction(60000, 1001)


def spliced(segments: tuple[tuple[int, int, int], ...] = SEGMENTS) -> tuple[vs.VideoNode, list[Fraction]]:
    """A variable-rate GRAYS clip spliced from constant-rate segments; frame i shows its own start time / 2 s
    everywhere, so a linear blend of two frames shows the time it stands for.  Returns the clip and the start times."""
    times, parts = [Fraction(0)], []
    for count, num, den in segments:
        part = core.std.BlankClip(format=vs.GRAYS, width=16, height=8, length=count, fpsnum=num, fpsden=den)
        parts.append(part)
        times += [times[-1] + Fraction(den, num) * (k + 1) for k in range(count)]
    clip = core.std.Splice(parts, mismatch=True)

    def fill(n: int, f: vs.VideoFrame) -> vs.VideoFrame:
        out = f.copy()
        np.asarray(out[0])[:] = float(times[n] / 2)
        return out

    return clip.std.ModifyFrame(clip, fill), times


@pytest.fixture
def linear(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(vsflavr, "select_backend", lambda *a, **k: LinearBackend(passes=[0]))


def test_frame_times_sum_the_durations() -> None:
    clip, times = spliced()
    assert clip.fps == 0
    assert list(frame_times(clip)) == times


def test_spliced_24_and_30_fps_to_5994(linear: None, tiny_8x: Path) -> None:
    clip, times = spliced()
    out = vsflavr.flavr(clip, fps_num=60000, fps_den=1001, weights=tiny_8x, device="cpu", sc=False)
    assert out.fps == TARGET and out.num_frames == math.ceil(times[-1] * TARGET) == 64
    exact = 0
    for n, frame in enumerate(out.frames()):
        t = Fraction(n) / TARGET
        shown = 2 * float(np.asarray(frame[0])[0, 0])  # the time this frame stands for
        i = max(k for k in range(clip.num_frames) if times[k] <= t)
        if i < clip.num_frames - 1:
            gap = times[i + 1] - times[i]
            assert abs(shown - t) <= gap / 16 + 1e-6, n  # half a phase step of the 8x grid, of that gap
        if t in times:  # a source frame at its own time: that frame, untouched
            exact += 1
            assert frame.props["FLAVRInterpolated"] == 0
            assert bytes(frame[0]) == bytes(clip.get_frame(times.index(t))[0])
        assert (frame.props["_DurationNum"], frame.props["_DurationDen"]) == (1001, 60000)
    assert exact == 6 + 17


def test_a_frame_without_duration_is_an_error_naming_it(tiny_8x: Path) -> None:
    clip, _ = spliced()

    def drop(n: int, f: vs.VideoFrame) -> vs.VideoFrame:
        out = f.copy()
        if n == 5:
            del out.props["_DurationNum"]
        return out

    with pytest.raises(vs.Error, match=r"^flavr: the clip has a variable frame rate but source frame 5 has no"):
        vsflavr.flavr(clip.std.ModifyFrame(clip, drop), fps_num=60, weights=tiny_8x, device="cpu")


def test_a_target_below_the_average_rate_is_refused(tiny_8x: Path) -> None:
    clip, _ = spliced()
    with pytest.raises(vs.Error, match=r"^flavr: the target rate 24 is slower than the clip's average"):
        vsflavr.flavr(clip, fps_num=24, weights=tiny_8x, device="cpu")
