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


def test_out_of_range_and_invalid() -> None:
    with pytest.raises(IndexError):
        Schedule(3, Fraction(2), 2).position(6)
    with pytest.raises(ValueError):
        Schedule(0, Fraction(2), 2)
    with pytest.raises(ValueError):
        Schedule(3, Fraction(1, 2), 2)


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
