"""Pure: held drawings at even times, and what each output frame shows.

Anime is drawn "on twos" or "on threes": each drawing is held for 2 or 3 source frames.
Given the held runs of one shot (a *drawing* is a run: its first source frame, the *key*,
and its *hold*, the number of frames it is shown), this module gives every drawing a time
and every output frame either an exact source frame or FLAVR's frame between two drawings:

- A drawing held at most ``max_hold`` frames is one timeline node at its key (``anchor="start"``)
  or at the middle of its hold (``anchor="center"``).  Drawings are therefore evenly spaced
  when the cadence is regular, and the picture moves at every output frame.
- A longer run is a *still* (a pause in the acting, not cadence): it stays exactly as drawn
  and only its last ``c`` frames move to the next drawing, ``c`` being the previous
  drawing's hold (else the next one's) capped at ``max_hold``.
- Output frame ``n`` is shown at source time ``t = n / ratio``.  Between nodes ``A`` and
  ``B`` at fraction ``s`` of the way, the phase ``p = round(s * grid)`` of the checkpoint's
  grid is used: ``p = 0`` is ``A``'s key bit for bit, ``p = grid`` is ``B``'s, anything else is
  FLAVR's output ``p`` for the window of four drawings ``(before A, A, B, after B)``.
- Windows stay inside the shot (a cut is never crossed; edge drawings are replicated) and
  a neighbour whose spacing differs from the pair's by more than :data:`IRREGULAR` is
  replaced by the edge drawing as at a cut, since FLAVR reads its four inputs as equally
  spaced in time.  After a shot's last drawing (and before the first, with the centre
  anchor), the output is that drawing.

No VapourSynth, no torch: everything here is integers and fractions.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from fractions import Fraction
from functools import cached_property

from .schedule import Schedule

__all__ = [
    "ANCHORS",
    "IRREGULAR",
    "Copy",
    "DrawingTimeline",
    "Retime",
    "Shot",
    "Tween",
    "holds_from_flags",
]

ANCHORS = ("start", "center")
"""Where a drawing sits in time: on its first frame, or in the middle of its hold."""

IRREGULAR = Fraction(3, 2)
"""A window neighbour is replicated from the edge drawing when its spacing and the pair's differ by more than this."""


@dataclass(frozen=True)
class Shot:
    """The held runs of one shot: it starts at source frame ``start``; run ``j`` lasts ``holds[j]`` frames."""

    start: int
    holds: tuple[int, ...]

    def __post_init__(self) -> None:
        if self.start < 0 or not self.holds or min(self.holds) < 1:
            raise ValueError(f"a shot needs start >= 0 and holds >= 1, got start={self.start}, holds={self.holds}")

    @property
    def end(self) -> int:
        """One past the shot's last source frame."""
        return self.start + sum(self.holds)

    @property
    def keys(self) -> list[int]:
        """The first source frame of every drawing."""
        keys, key = [], self.start
        for hold in self.holds:
            keys.append(key)
            key += hold
        return keys


def holds_from_flags(duplicate: Sequence[bool]) -> tuple[int, ...]:
    """Run lengths of one shot from per-frame flags (True: the frame repeats the one before); frame 0 starts a run."""
    holds: list[int] = []
    for i, dup in enumerate(duplicate):
        if dup and i:
            holds[-1] += 1
        else:
            holds.append(1)
    return tuple(holds)


@dataclass(frozen=True)
class Copy:
    """The output frame is source frame ``source`` bit for bit: the key of a drawing held ``hold`` frames."""

    source: int
    hold: int

    @property
    def drawing(self) -> int:
        return self.source


@dataclass(frozen=True)
class Tween:
    """FLAVR's output ``phase`` (1 .. grid - 1) of the gap between ``window[1]`` and ``window[2]``.

    ``window`` holds the keys of four drawings (I-1, I0, I1, I2), edges replicated; ``hold``
    is the hold of drawing ``window[1]``.
    """

    window: tuple[int, int, int, int]
    phase: int
    hold: int

    @property
    def drawing(self) -> int:
        return self.window[1]


@dataclass(frozen=True)
class _Node:
    time: Fraction
    key: int
    hold: int


class DrawingTimeline:
    """The drawings of one shot at their even times; :meth:`at` says what a time shows.

    Args:
        shot: the shot's held runs.
        grid: phases per gap of the checkpoint (its multi: 2, 4 or 8).
        max_hold: the longest run that is one drawing of the cadence (>= 2); longer runs are stills.
        anchor: ``"start"`` or ``"center"`` (see :data:`ANCHORS`).
    """

    def __init__(self, shot: Shot, *, grid: int, max_hold: int, anchor: str) -> None:
        if grid < 1 or max_hold < 2 or anchor not in ANCHORS:
            raise ValueError(f"need grid >= 1, max_hold >= 2 and anchor in {ANCHORS}")
        self.shot = shot
        self.grid = grid
        center = anchor == "center"
        nodes: list[_Node] = []
        holds, keys = shot.holds, shot.keys
        for j, (key, hold) in enumerate(zip(keys, holds, strict=True)):
            if hold <= max_hold:
                nodes.append(_Node(key + Fraction(hold - 1, 2) * center, key, hold))
                continue
            neighbour = holds[j - 1] if j else holds[j + 1] if j + 1 < len(holds) else 2
            moving = min(neighbour, max_hold)
            nodes.append(_Node(Fraction(key), key, hold))
            nodes.append(_Node(key + hold - moving + Fraction(moving - 1, 2) * center, key, hold))
        self._nodes = nodes
        self._times = [node.time for node in nodes]

    def at(self, t: Fraction) -> Copy | Tween:
        """What source time ``t`` (inside the shot, or after its end) shows."""
        nodes = self._nodes
        a = max(bisect.bisect_right(self._times, t) - 1, 0)
        first = nodes[a]
        if a + 1 == len(nodes) or t <= first.time:
            return Copy(first.key, first.hold)
        second = nodes[a + 1]
        if second.key == first.key:  # inside a still
            return Copy(first.key, first.hold)
        span = second.time - first.time
        phase = math.floor((t - first.time) / span * self.grid + Fraction(1, 2))  # round half up
        if phase == 0:
            return Copy(first.key, first.hold)
        if phase == self.grid:
            return Copy(second.key, second.hold)
        before = nodes[a - 1] if a else first
        after = nodes[a + 2] if a + 2 < len(nodes) else second
        left = before.key if _regular(first.time - before.time, span) else first.key
        right = after.key if _regular(after.time - second.time, span) else second.key
        return Tween((left, first.key, second.key, right), phase, first.hold)


def _regular(spacing: Fraction, span: Fraction) -> bool:
    return spacing > 0 and max(spacing, span) <= IRREGULAR * min(spacing, span)


@dataclass(frozen=True)
class Retime:
    """Output frames of a whole clip: their count, their source time, and the shot each falls in.

    The count, rate and times are those of the plain schedule (``ceil(duration * ratio)`` at the
    target rate; ``ratio`` and ``times`` as for :class:`~vsflavr.schedule.Schedule`), so ``dedup``
    never changes a clip's duration.  Drawings are timed in source frames: at a variable rate a
    hold counts frames, not seconds.
    """

    num_frames: int
    ratio: Fraction
    times: Sequence[Fraction] | None = None

    @cached_property
    def _schedule(self) -> Schedule:
        return Schedule(self.num_frames, self.ratio, 1, self.times)

    @property
    def output_frames(self) -> int:
        return self._schedule.output_frames

    def time(self, n: int) -> Fraction:
        """Output frame ``n``'s time in source frames (``n / ratio`` at a constant rate)."""
        return self._schedule.source_time(n)

    def source(self, n: int) -> int:
        """The source frame at or before output frame ``n``'s time: its shot is the one that decides the frame."""
        return min(math.floor(self.time(n)), self.num_frames - 1)

    def frame(self, n: int, timeline_of: Callable[[int], DrawingTimeline]) -> Copy | Tween:
        """What output frame ``n`` shows; ``timeline_of(i)`` gives the timeline of the shot holding source frame ``i``."""
        return timeline_of(self.source(n)).at(self.time(n))
