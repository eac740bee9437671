"""The pure frame schedule: output counts, positions, phases, tails and windows."""

from __future__ import annotations

import math
from fractions import Fraction

import pytest

from vsflavr.schedule import Position, Schedule, window


@pytest.mark.parametrize(("multi", "grid"), [(2, 2), (2, 8), (4, 8), (8, 8), (3, 3)])
def test_integer_multi(multi: int, grid: int) -> None:
    sched = Schedule(10, Fraction(multi), grid)
    assert sched.output_frames == 10 * multi
    for n in range(sched.output_frames):
        i, m = divmod(n, multi)
        pos = sched.position(n)
        if i == 9:  # after the last source frame: copies of it
            assert pos == Position(9, 0)
        else:
            assert pos == Position(i, m * grid // multi)


def test_23976_to_5994_count_and_timing() -> None:
    source, target = Fraction(24000, 1001), Fraction(60000, 1001)
    sched = Schedule(100, target / source, grid=8)
    assert sched.output_frames == math.ceil(100 * 5 / 2) == 250
    for n in range(sched.output_frames):
        pos = sched.position(n)
        exact = Fraction(n) * source / target  # in source frames
        shown = pos.source + Fraction(pos.phase, 8)
        if pos.source < 99:
            assert abs(shown - exact) <= Fraction(1, 16)  # half a phase step of an 8x grid
        if exact.denominator == 1:
            assert pos == Position(int(exact), 0)  # falls on a source frame: that frame
    assert [sched.position(n) for n in range(5)] == [
        Position(0, 0),
        Position(0, 3),
        Position(0, 6),
        Position(1, 2),
        Position(1, 5),
    ]


def test_rounding_up_to_the_next_source_frame() -> None:
    sched = Schedule(10, Fraction(5, 2), grid=2)  # positions 0, 0.4, 0.8, 1.2, ...
    assert sched.position(2) == Position(1, 0)  # 0.8 rounds to 1.0 on a grid of halves
    assert sched.position(1) == Position(0, 1)  # 0.4 rounds to 0.5


@pytest.mark.parametrize("num_frames", [1, 2, 3])
def test_short_clips(num_frames: int) -> None:
    sched = Schedule(num_frames, Fraction(2), 2)
    positions = [sched.position(n) for n in range(sched.output_frames)]
    assert len(positions) == 2 * num_frames
    assert positions[-1] == Position(num_frames - 1, 0)
    assert all(p.source < num_frames for p in positions)


def segments_times(*segments: tuple[int, Fraction]) -> tuple[Fraction, ...]:
    """Start times (seconds) of frames of segments of (count, rate), then the end of the last frame."""
    times = [Fraction(0)]
    for count, rate in segments:
        times += [times[-1] + (k + 1) / rate for k in range(count)]
    return tuple(times)


def test_constant_timestamps_give_the_constant_schedule() -> None:
    """The same function serves both: timestamps i / fps in seconds equal the frame-index schedule."""
    fps, target = Fraction(24000, 1001), Fraction(60000, 1001)
    vfr = Schedule(50, target, 8, segments_times((50, fps)))
    cfr = Schedule(50, target / fps, 8)
    assert vfr.output_frames == cfr.output_frames == 125
    assert [vfr.position(n) for n in range(125)] == [cfr.position(n) for n in range(125)]


@pytest.mark.parametrize("grid", [2, 8])
def test_variable_rate_timing(grid: int) -> None:
    """24000/1001 then 30000/1001 to 60000/1001: the count is the duration times the target, rounded up; each
    output frame shows time n / target to within half a phase step of the gap it falls in."""
    a, b, target = Fraction(24000, 1001), Fraction(30000, 1001), Fraction(60000, 1001)
    times = segments_times((12, a), (17, b))
    sched = Schedule(29, target, grid, times)
    assert sched.output_frames == math.ceil(times[-1] * target) == math.ceil((12 / a + 17 / b) * target) == 64
    for n in range(sched.output_frames):
        t, pos = Fraction(n) / target, sched.position(n)
        if pos.source < 28:
            gap = times[pos.source + 1] - times[pos.source]
            shown = times[pos.source] + gap * Fraction(pos.phase, grid)
            assert abs(shown - t) <= gap / (2 * grid), n
        if t in times:
            assert pos == Position(times.index(t), 0)  # a source frame at its own time: that frame
    assert sum(Fraction(n) / target in times for n in range(sched.output_frames)) == 6 + 17


def test_out_of_range_and_invalid() -> None:
    with pytest.raises(IndexError):
        Schedule(3, Fraction(2), 2).position(6)
    with pytest.raises(ValueError):
        Schedule(0, Fraction(2), 2)
    with pytest.raises(ValueError):
        Schedule(3, Fraction(1, 2), 2)
    with pytest.raises(ValueError, match="increasing"):
        Schedule(2, Fraction(60), 2, (Fraction(0), Fraction(1, 24), Fraction(1, 24)))


def never(_: int) -> bool:
    return False


def test_window_clamps_at_clip_edges() -> None:
    assert window(0, 10, never) == (0, 0, 1, 2)
    assert window(4, 10, never) == (3, 4, 5, 6)
    assert window(8, 10, never) == (7, 8, 9, 9)
    assert window(0, 2, never) == (0, 0, 1, 1)
    assert window(0, 1, never) == (0, 0, 0, 0)


def test_window_never_reaches_across_a_cut() -> None:
    cuts = {3, 6}  # cuts between 3|4 and 6|7
    cut_after = cuts.__contains__
    assert window(4, 10, cut_after) == (4, 4, 5, 6)  # I-1 = 3 is the previous shot
    assert window(5, 10, cut_after) == (4, 5, 6, 6)  # I2 = 7 is the next shot
    assert window(1, 10, cut_after) == (0, 1, 2, 3)
    assert window(2, 10, cut_after) == (1, 2, 3, 3)
    assert window(8, 10, cut_after) == (7, 8, 9, 9)


def test_window_asks_only_about_the_outer_pairs() -> None:
    asked: list[int] = []
    window(4, 10, lambda i: asked.append(i) or False)
    assert sorted(asked) == [3, 5]
