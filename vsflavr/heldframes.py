"""Held drawings: which source frames repeat the drawing before them, found shot by shot.

A frame is a *duplicate* (a held drawing) when it differs by at most ``threshold`` both
from the frame before it and from the first frame of its run, so that a slow fade or pan
never chains frame after frame into one long hold.  The difference is local and at full
resolution (see :func:`held_difference`): a mouth flap or a blink of a few pixels is a new
drawing.  A cut is never crossed: a shot's first frame always starts a drawing, and every
shot is analysed on its own, so a clip split at its cuts gives the same drawings.

A ``FLAVRHeld`` frame property set by the user or another tool overrides the detector:
``1`` makes the frame a duplicate of the one before (unless a cut lies between them), ``0``
a new drawing.
"""

from __future__ import annotations

import bisect
import csv
import threading
from pathlib import Path

import numpy as np
import vapoursynth as vs

from .frames import frame_to_tensor
from .gapcache import OnceCache
from .retime import Shot, holds_from_flags
from .scenes import is_cut

__all__ = ["DEFAULT_THRESHOLD", "HELD_PROP", "NOISE_FLOOR", "WINDOW", "HeldFrames", "held_difference"]

DEFAULT_THRESHOLD = 3 / 255
"""Default largest window difference (fraction of full range) of a duplicate.  Measured on real
encodes: the repeats of bigbuckbunny.mp4 score at most 1.4/255, its closest new frame 6.7/255,
a 6x6 px change of 48/255 about 6.3/255, and no frame of bikes.mp4 less than 10/255."""

NOISE_FLOOR = 3 / 255
"""Per-pixel luma differences up to this much are taken as codec noise and grain: only the excess counts."""

WINDOW, STRIDE = 16, 8
"""Windows of 16x16 px every 8 px: any detail of up to 8x8 px lies whole inside one window."""

HELD_PROP = "FLAVRHeld"
"""The frame property that overrides the detector: 1 duplicate, 0 new drawing."""

_LUMA = np.array([0.2126, 0.7152, 0.0722], dtype=np.float32)[:, None, None]
_LOG_COLUMNS = ("frame", "diff_previous", "diff_run_start", "duplicate", "run", "shot", "override")
_SHOTS_KEPT = 1 << 16


def held_difference(a: np.ndarray, b: np.ndarray) -> float:
    """How different two RGB frames (3, H, W) in 0..1 are, locally: a fraction of full range.

    The BT.709 luma of each pixel is compared; the part of each difference above
    :data:`NOISE_FLOOR` is averaged over 16x16 windows every 8 px (the last row and column of
    windows touching the frame's edges), and the largest window's mean is returned.  Luma,
    because lossy video codecs store colour at half resolution and coarsely, so colour alone
    shifts from one encoded copy of a frame to the next; drawings change in brightness.
    """
    luma = np.abs(np.sum(_LUMA * (np.asarray(a, np.float32) - b), axis=0)) - NOISE_FLOOR
    np.maximum(luma, 0, out=luma)
    height, width = luma.shape
    sums = np.zeros((height + 1, width + 1))
    np.cumsum(np.cumsum(luma, axis=0, dtype=np.float64), axis=1, out=sums[1:, 1:])
    ys, wh = _starts(height)
    xs, ww = _starts(width)
    y0, y1, x0, x1 = ys[:, None], ys[:, None] + wh, xs[None, :], xs[None, :] + ww
    windows = sums[y1, x1] - sums[y0, x1] - sums[y1, x0] + sums[y0, x0]
    return float(windows.max()) / (wh * ww)


def _starts(length: int) -> tuple[np.ndarray, int]:
    """Window starts along one axis (the last window ends at the edge) and the window's side."""
    side = min(WINDOW, length)
    starts = list(range(0, length - side + 1, STRIDE))
    if starts[-1] != length - side:
        starts.append(length - side)
    return np.array(starts), side


class HeldFrames:
    """The drawings of each shot of a clip, found once per shot when first asked, from any thread.

    Args:
        clip: the source clip (RGB float), with its scene-change properties already set.
        threshold: the largest :func:`held_difference` of a duplicate (fraction of full range).
        use_cuts: honour ``_SceneChangeNext``/``_SceneChangePrev``; ``False``: the clip is one shot.
        log: a CSV file to write, one row per source frame analysed (shots in the order they are
            first needed): frame, its difference from the frame before and from its run's first
            frame, whether it is a duplicate, its run's and its shot's first frame, the override.
    """

    def __init__(self, clip: vs.VideoNode, threshold: float, use_cuts: bool, log: str | Path | None = None) -> None:
        self.clip = clip
        self.threshold = threshold
        self.use_cuts = use_cuts
        self._shots: OnceCache[int, Shot] = OnceCache(_SHOTS_KEPT)
        self._lock = threading.Lock()
        self._starts: list[int] = []  # shots found so far, by first frame, with their ends
        self._ends: dict[int, int] = {}
        self._log = None if log is None else Path(log)
        if self._log is not None:
            with self._log.open("w", newline="", encoding="utf-8") as f:
                csv.writer(f).writerow(_LOG_COLUMNS)

    def shot(self, i: int) -> Shot:
        """The drawings of the shot holding source frame ``i``."""
        with self._lock:
            k = bisect.bisect_right(self._starts, i) - 1
            start = self._starts[k] if k >= 0 and i < self._ends[self._starts[k]] else None
        if start is None:
            start = i
            frame = self.clip.get_frame(i)
            while start > 0:
                before = self.clip.get_frame(start - 1)
                if self._cut(before, frame):
                    break
                start, frame = start - 1, before
        return self._shots.get(start, lambda: self._analyse(start))

    def _cut(self, before: vs.VideoFrame, after: vs.VideoFrame) -> bool:
        return self.use_cuts and is_cut(before, after)

    def _analyse(self, start: int) -> Shot:
        frame = self.clip.get_frame(start)
        previous = run_start = _pixels(frame)
        flags, rows, run = [False], [(start, "", "", 0, start, start, _override(frame))], start
        n = start + 1
        while n < self.clip.num_frames:
            after = self.clip.get_frame(n)
            if self._cut(frame, after):
                break
            current = _pixels(after)
            to_previous = held_difference(previous, current)
            to_run = to_previous if run == n - 1 else held_difference(run_start, current)
            override = _override(after)
            if override is None:
                duplicate = to_previous <= self.threshold and to_run <= self.threshold
            else:
                duplicate = bool(override)
            if not duplicate:
                run, run_start = n, current
            flags.append(duplicate)
            rows.append((n, f"{to_previous:.6f}", f"{to_run:.6f}", int(duplicate), run, start, override))
            frame, previous, n = after, current, n + 1
        shot = Shot(start, holds_from_flags(flags))
        with self._lock:
            if start not in self._ends:
                bisect.insort(self._starts, start)
                self._ends[start] = shot.end
            if self._log is not None:
                with self._log.open("a", newline="", encoding="utf-8") as f:
                    csv.writer(f).writerows(("" if v is None else v for v in row) for row in rows)
        return shot


def _pixels(frame: vs.VideoFrame) -> np.ndarray:
    return frame_to_tensor(frame).numpy()


def _override(frame: vs.VideoFrame) -> int | None:
    value = frame.props.get(HELD_PROP)
    return None if value is None else int(bool(value))
