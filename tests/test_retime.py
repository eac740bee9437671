"""The pure planner of held drawings: even times, exact keys, counts, cuts, stills, window guards.

``python -m pytest tests/test_retime.py -k table -s`` prints the implied-motion table of docs/anime-dedup.md.
"""

from __future__ import annotations

import math
import random
from fractions import Fraction

import numpy as np
import pytest

from vsflavr.retime import Copy, DrawingTimeline, Retime, Shot, Tween, holds_from_flags
from vsflavr.schedule import Schedule

RATES = {"2x": Fraction(2), "24->60": Fraction(5, 2), "1x": Fraction(1)}


def timeline(holds: tuple[int, ...], start: int = 0, grid: int = 8, **kwargs: object) -> DrawingTimeline:
    options = {"max_hold": 3, "anchor": "start", **kwargs}
    return DrawingTimeline(Shot(start, holds), grid=grid, **options)


def shown(item: Copy | Tween, grid: int) -> Fraction:
    """Where the picture of an output frame lies on the source timeline, between its drawings' keys."""
    if isinstance(item, Copy):
        return Fraction(item.source)
    a, b = item.window[1], item.window[2]
    return a + Fraction(item.phase, grid) * (b - a)


def cv(positions: list[Fraction]) -> float:
    """std / mean of the per-frame displacement: 0 for even motion."""
    steps = np.diff(np.array(positions, dtype=float))
    return float(steps.std() / steps.mean())


def implied_motion(hold: int, ratio: Fraction, grid: int, length: int = 240) -> tuple[float, float]:
    """CV of the motion shown on a clip drawn on ``hold``s: (plain interpolation, dedup), up to the last drawing."""
    shot = Shot(0, (hold,) * (length // hold))
    line = DrawingTimeline(shot, grid=grid, max_hold=3, anchor="start")
    retime, plain = Retime(length, ratio), Schedule(length, ratio, grid)
    frames = [n for n in range(retime.output_frames) if retime.time(n) <= shot.keys[-1]]
    dedup = [shown(retime.frame(n, lambda i: line), grid) for n in frames]
    naive = []
    for n in frames:  # plain interpolation of the held source: the key of each source frame's drawing
        pos = plain.position(n)
        a, b = (hold * (i // hold) for i in (pos.source, pos.source + 1))
        naive.append(a + Fraction(pos.phase, grid) * (b - a))
    return cv(naive), cv(dedup)


def test_implied_motion_twos_and_threes() -> None:
    naive, dedup = implied_motion(2, Fraction(2), 8)
    assert naive == pytest.approx(1.0, abs=0.01) and dedup == 0.0
    naive, dedup = implied_motion(3, Fraction(2), 8)
    assert naive >= 1.41 and dedup <= 0.355
    assert implied_motion(2, Fraction(1), 2)[1] == 0.0  # the built-in 2x model fills twos exactly
    assert implied_motion(2, Fraction(2), 2)[1] == pytest.approx(1.0, abs=0.01)  # but at 2x only the half exists


def test_print_implied_motion_table() -> None:
    print("\n| cadence | rate | without dedup (8x grid) | dedup, 8x grid | dedup, 4x grid | dedup, 2x grid |")
    print("| --- | --- | --- | --- | --- | --- |")
    for hold, name in ((2, "twos"), (3, "threes")):
        for rate, ratio in RATES.items():
            figures = [implied_motion(hold, ratio, grid) for grid in (8, 4, 2)]
            cells = " | ".join(f"{dedup:.3f}" for _, dedup in figures)
            print(f"| {name} | {rate} | {figures[0][0]:.3f} | {cells} |")


@pytest.mark.parametrize("ratio", [Fraction(1), Fraction(2), Fraction(4), Fraction(8), Fraction(5, 2)])
def test_counts_match_the_plain_schedule(ratio: Fraction) -> None:
    assert Retime(101, ratio).output_frames == Schedule(101, ratio, 8).output_frames == math.ceil(101 * ratio)


def test_23976_to_5994_has_the_plain_count_and_keys_on_their_frames() -> None:
    ratio = Fraction(60000, 1001) / Fraction(24000, 1001)
    retime = Retime(100, ratio)
    assert retime.output_frames == 250
    line = timeline((2,) * 50)
    for n in range(0, 250, 5):  # output 5m is source time 2m, the key of drawing m
        assert retime.frame(n, lambda i: line) == Copy(2 * n // 5, 2)


def random_shot(seed: int, length: int = 120) -> tuple[int, ...]:
    rng, holds = random.Random(seed), []
    while sum(holds) < length:
        holds.append(rng.choice((1, 2, 2, 3)))
    return tuple(holds)


@pytest.mark.parametrize("seed", range(5))
def test_keys_are_exact_and_steps_even_between_keys(seed: int) -> None:
    holds = random_shot(seed)
    shot = Shot(10, holds)
    line = DrawingTimeline(shot, grid=8, max_hold=3, anchor="start")
    retime = Retime(shot.end, Fraction(4))
    items = {n: retime.frame(n, lambda i: line) for n in range(40, retime.output_frames)}
    for key, hold in zip(shot.keys, holds, strict=True):
        assert items[4 * key] == Copy(key, hold)  # a drawing's own time: its key, bit-exact
        if key != shot.keys[-1]:
            phases = [items[4 * key + m] for m in range(1, 4 * hold)]
            expected = [Fraction(m, 4 * hold) * 8 for m in range(1, 4 * hold)]
            got = [p.phase if isinstance(p, Tween) else 8 * (p.source != key) for p in phases]
            assert got == [math.floor(e + Fraction(1, 2)) for e in expected]  # nearest phase of each even step
            assert all(isinstance(p, Copy) or p.window[1:3] == (key, key + hold) for p in phases)


def test_tail_after_the_last_drawing_is_that_drawing() -> None:
    line = timeline((2, 2, 2))  # keys 0, 2, 4; shot ends at 6
    assert [line.at(Fraction(t, 2)) for t in range(8, 12)] == [Copy(4, 2)] * 4


def test_no_window_leaves_its_shot() -> None:
    """Two shots, [0, 12) and [12, 24): every window and copy stays in the shot of its time."""
    shots = [Shot(0, (2,) * 6), Shot(12, (3,) * 4)]
    lines = [DrawingTimeline(s, grid=8, max_hold=3, anchor="start") for s in shots]
    retime = Retime(24, Fraction(2))

    def line_of(i: int) -> DrawingTimeline:
        return lines[i >= 12]

    for n in range(retime.output_frames):
        item, shot = retime.frame(n, line_of), shots[retime.source(n) >= 12]
        frames = item.window if isinstance(item, Tween) else (item.source,)
        assert all(shot.start <= f < shot.end for f in frames), (n, item)
    assert retime.frame(23, lambda i: lines[0]) == Copy(10, 2)  # the gap over the cut holds the last drawing
    assert retime.frame(24, lambda i: lines[1]) == Copy(12, 3)
    assert lines[0].at(Fraction(1)).window == (0, 0, 2, 4)  # the shot's first pair replicates its left edge
    assert lines[1].at(Fraction(39, 2)).window == (15, 18, 21, 21)  # the last pair replicates its right edge


def test_irregular_neighbours_are_replicated_like_cuts() -> None:
    line = timeline((1, 1, 2, 2, 3, 2, 1))  # keys 0 1 2 4 6 9 11
    assert line.at(Fraction(5)).window == (2, 4, 6, 9)  # twos then threes: 3/2 is still regular
    assert line.at(Fraction(3)).window == (2, 2, 4, 6)  # ones before twos: spacing 1 against 2
    assert line.at(Fraction(19, 2)).window == (6, 9, 11, 11)  # the right edge of the shot
    assert line.at(Fraction(3, 2)).window == (0, 1, 2, 2)  # ones, then a drawing held twice on the right


def test_a_long_run_is_a_still_that_moves_at_its_end() -> None:
    """A 12-frame still after twos: the picture stays for 10 frames, then moves into the next drawing in 2."""
    line = timeline((2, 2, 12, 2, 2))  # keys 0, 2, 4, 16, 18
    for t in range(4, 15):
        assert line.at(Fraction(t)) == Copy(4, 12), t
    middle = line.at(Fraction(15))
    assert isinstance(middle, Tween) and middle.phase == 4 and middle.window == (4, 4, 16, 18)
    assert line.at(Fraction(16)) == Copy(16, 2)
    moving_in = line.at(Fraction(3))  # the move into the still's first frame is the cadence's
    assert isinstance(moving_in, Tween) and moving_in.window == (0, 2, 4, 4)


def test_center_anchor_moves_drawings_to_the_middle_of_their_hold() -> None:
    line = timeline((2, 2, 2), anchor="center")  # drawings at 0.5, 2.5, 4.5
    assert line.at(Fraction(0)) == Copy(0, 2)  # before the first drawing's time: that drawing
    assert line.at(Fraction(1, 2)) == Copy(0, 2)
    item = line.at(Fraction(3, 2))
    assert isinstance(item, Tween) and item.phase == 4 and item.window == (0, 0, 2, 4)


def test_on_ones_every_frame_is_its_own_drawing() -> None:
    """Nothing held: the dedup plan is the plain schedule (same windows and phases, keys as copies)."""
    line = timeline((1,) * 12)
    plain, retime = Schedule(12, Fraction(4), 8), Retime(12, Fraction(4))
    for n in range(retime.output_frames):
        item, pos = retime.frame(n, lambda i: line), plain.position(n)
        if pos.is_source:
            assert item == Copy(pos.source, 1)
        else:
            assert isinstance(item, Tween) and item.phase == pos.phase and item.window[1] == pos.source


def test_holds_from_flags() -> None:
    assert holds_from_flags([False, True, False, True, True, False]) == (2, 3, 1)
    assert holds_from_flags([True, True]) == (2,)  # a shot's first frame always starts a drawing


def test_invalid() -> None:
    with pytest.raises(ValueError):
        Shot(0, ())
    with pytest.raises(ValueError):
        timeline((2,), max_hold=1)
    with pytest.raises(ValueError):
        timeline((2,), anchor="end")
    with pytest.raises(IndexError):
        Retime(3, Fraction(2)).time(6)
