"""Pure frame arithmetic: which source frames and which phase each output frame needs.

Output frame ``j`` is shown at time ``j / target_fps``.  Source frame ``i`` starts at its
timestamp ``t_i`` (``i / source_fps`` at a constant rate; the sum of the durations before it
at a variable one) and lasts until ``t_(i+1)``.  The frame at time ``t`` lies in the *gap*
between source frames ``i`` and ``i + 1`` where ``t_i <= t < t_(i+1)``, at fraction
``(t - t_i) / (t_(i+1) - t_i)``: its *source position* ``p`` is ``i`` plus that fraction.  That fraction
is rounded to the nearest phase ``k / grid`` of the model's grid (``grid`` = the
checkpoint's multi: 2, 4 or 8), so the timing error of an interpolated frame is at
most ``1 / (2 * grid)`` of a source frame interval.  Phase 0 is the source frame
itself, copied bit for bit.

No VapourSynth, no torch: everything here is integers and fractions.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from fractions import Fraction

__all__ = ["Position", "Schedule", "window"]


@dataclass(frozen=True)
class Position:
    """Where an output frame lies: source frame ``source`` plus ``phase / grid`` of the gap after it.

    ``phase == 0`` means the output frame is source frame ``source`` itself.
    """

    source: int
    phase: int

    @property
    def is_source(self) -> bool:
        return self.phase == 0


@dataclass(frozen=True)
class Schedule:
    """Maps output frames to source positions, at a constant or a variable source rate.

    Args:
        num_frames: frames in the source clip (>= 1).
        ratio: output frames per unit of source time.  Constant rate (``times=None``, the unit is
            one source frame): target rate / source rate, >= 1 (2 for ``multi=2``; 5/2 for 23.976
            -> 59.94).  Variable rate: the target rate in frames per unit of ``times`` (seconds).
        grid: phases per gap the model produces (its multi); >= 1.
        times: when source frame ``i`` starts, for ``i`` in ``0..num_frames`` (the last value is when
            the last frame ends), increasing from 0; ``None``: frame ``i`` starts at ``i``.
    """

    num_frames: int
    ratio: Fraction
    grid: int
    times: Sequence[Fraction] | None = None

    def __post_init__(self) -> None:
        if self.num_frames < 1:
            raise ValueError(f"num_frames must be >= 1, got {self.num_frames}")
        if self.times is None and self.ratio < 1:
            raise ValueError(f"ratio must be >= 1, got {self.ratio}")
        if self.ratio <= 0:
            raise ValueError(f"ratio must be > 0, got {self.ratio}")
        if self.grid < 1:
            raise ValueError(f"grid must be >= 1, got {self.grid}")
        if self.times is not None and (
            len(self.times) != self.num_frames + 1
            or self.times[0] != 0
            or any(b <= a for a, b in zip(self.times, self.times[1:], strict=False))
        ):
            raise ValueError(f"times must be {self.num_frames + 1} increasing values from 0")

    @property
    def _times(self) -> Sequence[Fraction | int]:
        return range(self.num_frames + 1) if self.times is None else self.times

    @property
    def output_frames(self) -> int:
        """``ceil(duration * ratio)`` (``ceil(num_frames * ratio)`` at a constant rate): the output lasts as long
        as the source."""
        return math.ceil(self._times[-1] * self.ratio)

    def source_time(self, n: int) -> Fraction:
        """Output frame ``n``'s exact source position: ``i`` plus the fraction of the gap after frame ``i`` it
        lies at (after the last frame's start, the fraction of that frame's duration)."""
        if not 0 <= n < self.output_frames:
            raise IndexError(f"output frame {n} outside 0..{self.output_frames - 1}")
        t = Fraction(n) / self.ratio
        times = self._times
        i = min(bisect.bisect_right(times, t) - 1, self.num_frames - 1)
        return i + (t - times[i]) / (times[i + 1] - times[i])

    def position(self, n: int) -> Position:
        """The source position of output frame ``n``, rounded to the nearest phase of the grid.

        Times past the last source frame map to that frame (the clip's tail is filled with
        copies of it, so the duration matches the audio).
        """
        exact = self.source_time(n)
        source = math.floor(exact)
        phase = math.floor((exact - source) * self.grid + Fraction(1, 2))  # round half up
        if phase == self.grid:
            source, phase = source + 1, 0
        if source >= self.num_frames - 1:
            return Position(self.num_frames - 1, 0)
        return Position(source, phase)


def window(gap: int, num_frames: int, cut_after: Callable[[int], bool]) -> tuple[int, int, int, int]:
    """The four source frames (I-1, I0, I1, I2) FLAVR reads to fill the gap after frame ``gap``.

    Indices are clamped to the clip, and the window never reaches across a scene cut:
    a cut between ``gap - 1`` and ``gap`` replaces I-1 by I0; a cut between ``gap + 1``
    and ``gap + 2`` replaces I2 by I1.  ``cut_after(i)`` tells whether a cut lies between
    source frames ``i`` and ``i + 1``; it is asked only about the two outer pairs.
    """
    last = num_frames - 1
    i0, i1 = min(gap, last), min(gap + 1, last)
    before = max(gap - 1, 0)
    after = min(gap + 2, last)
    if before < i0 and cut_after(before):
        before = i0
    if after > i1 and cut_after(i1):
        after = i1
    return before, i0, i1, after
