"""Pure planning: scene cuts on the source -> shot starts on the output -> chunks of output frames.

Output frame ``n`` of a vsflavr script depends only on ``n`` (its window, phase and copies are
fixed by the schedule and the source; nothing is carried from one request to the next), so
``vspipe -s A -e B-1`` renders exactly frames ``A..B-1`` of one whole run, wherever A and B are.
Chunks are still cut at shot starts, so every chunk begins with a new picture (the encoder's
keyframe lands where a cut needs one anyway); only a shot longer than the target length is
split inside, into nearly equal parts, which stays exact for the reason above.

No VapourSynth, no torch, no Ray: integers and fractions only.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable
from dataclasses import dataclass
from fractions import Fraction

from ..schedule import Schedule

__all__ = ["Chunk", "plan_chunks", "shot_starts"]


@dataclass(frozen=True)
class Chunk:
    """Output frames ``start .. end - 1`` of the script, rendered as one task."""

    index: int
    start: int
    end: int

    @property
    def frames(self) -> int:
        return self.end - self.start

    @property
    def name(self) -> str:
        """The chunk's file stem in the work directory, e.g. ``chunk-00003``."""
        return f"chunk-{self.index:05d}"


def shot_starts(cuts_into: Iterable[int], source_frames: int, ratio: Fraction, grid: int = 1) -> list[int]:
    """Output frames that begin a new shot, for cuts into the given source frames.

    Args:
        cuts_into: source frames that start a new shot (a cut lies just before each).
        source_frames: frames of the source clip.
        ratio: output rate / source rate (2 for ``multi=2``).
        grid: phases per gap of the checkpoint (its multi); only matters for fractional ratios,
            where an output frame just before a cut's time may round onto the new shot's first frame.

    Returns:
        Sorted output frames: for each cut into source frame ``c``, the first output frame
        whose source position is ``c`` or later, which is the copy of ``c`` that opens the shot.
    """
    schedule = Schedule(source_frames, ratio, grid)
    starts = set()
    for c in cuts_into:
        if not 0 < c < source_frames:
            raise ValueError(f"a cut into source frame {c} is outside 1..{source_frames - 1}")
        n = max(0, math.floor((c - 1) * ratio))
        while schedule.position(n).source < c:
            n += 1
        starts.add(n)
    return sorted(starts)


def plan_chunks(total: int, starts: Iterable[int], target: int) -> list[Chunk]:
    """Split ``total`` output frames into chunks of at most ``target`` frames, starting at shot starts.

    Whole shots are grouped in order while the chunk stays within ``target`` frames; a shot
    longer than ``target`` is split into ``ceil(length / target)`` nearly equal parts.  The
    chunks cover ``0 .. total - 1`` in order with no gap or overlap.
    """
    if total < 1:
        raise ValueError(f"nothing to render: {total} output frames")
    if target < 1:
        raise ValueError(f"the chunk length must be at least 1 frame, got {target}")
    edges = sorted({0, total, *(s for s in starts if 0 < s < total)})
    pieces: list[tuple[int, int]] = []
    for a, b in itertools.pairwise(edges):
        parts = math.ceil((b - a) / target)
        cuts = [a + (b - a) * k // parts for k in range(parts + 1)]
        pieces += list(itertools.pairwise(cuts))
    chunks: list[Chunk] = []
    start = end = 0
    for a, b in pieces:
        if b - start > target and end > start:
            chunks.append(Chunk(len(chunks), start, end))
            start = a
        end = b
    chunks.append(Chunk(len(chunks), start, end))
    return chunks
