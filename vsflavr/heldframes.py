"""Held drawings: which source frames repeat the drawing before them, found shot by shot.

A frame is a *duplicate* (a held drawing) when it differs by at most ``threshold`` both
from the frame before it and from the first frame of its run, so that slow changes do not
chain frame after frame into one long hold (a uniform change below :data:`NOISE_FLOOR` per
pixel, such as a very slow fade, is not seen at all).  The difference is local and at full
resolution (see :func:`held_difference`): a mouth flap or a blink of a few pixels is a new
drawing.  A cut is never crossed: a shot's first frame always starts a drawing, and every
shot is analysed on its own, so a clip split at its cuts gives the same drawings.
The clip is read once, when the filter is created (a first pass, as two-pass tools do).

A ``FLAVRHeld`` frame property set by the user or another tool overrides the detector:
``1`` makes the frame a duplicate of the one before (unless a cut lies between them), ``0``
a new drawing.
"""

from __future__ import annotations

import bisect
import contextlib
import csv
from pathlib import Path

import numpy as np
import vapoursynth as vs

from .formats import Coding, coding_of, luma
from .retime import Shot, holds_from_flags
from .scenes import is_cut

__all__ = ["DEFAULT_THRESHOLD", "HELD_PROP", "NOISE_FLOOR", "WINDOW", "HeldFrames", "held_difference"]

DEFAULT_THRESHOLD = 3 / 255
"""Default largest window difference (fraction of full range) of a duplicate.  Measured on real
encodes: the repeats of bigbuckbunny.mp4 score at most 1.4/255, its closest new frame 6.7/255,
a 6x6 px change of 48/255 (48 - 3) * 36 / 256 = 6.3/255, and no frame of bikes.mp4 less than 10/255."""

NOISE_FLOOR = 3 / 255
"""Per-pixel luma differences up to this much are taken as codec noise and grain: only the excess counts."""

WINDOW, STRIDE = 16, 8
"""Windows of 16x16 px every 8 px: any detail of up to 8x8 px lies whole inside one window."""

HELD_PROP = "FLAVRHeld"
"""The frame property that overrides the detector: 1 duplicate, 0 new drawing."""

_LOG_COLUMNS = ("frame", "diff_previous", "diff_run_start", "duplicate", "run", "shot", "override")
_CUT_PROP, _DIFF_PROP = "FLAVRHeldCut", "FLAVRHeldDiff"


def held_difference(a: np.ndarray, b: np.ndarray) -> float:
    """How different two frames' luma planes (H, W) in 0..1 are, locally: a fraction of full range.

    The luma of each pixel is compared (see :func:`vsflavr.formats.luma`); the part of each difference above
    :data:`NOISE_FLOOR` is averaged over 16x16 windows every 8 px (the last row and column of
    windows touching the frame's edges), and the largest window's mean is returned.  Luma,
    because lossy video codecs store colour at half resolution and coarsely, so colour alone
    shifts from one encoded copy of a frame to the next; drawings change in brightness.
    """
    excess = np.abs(np.asarray(a, np.float32) - b) - NOISE_FLOOR
    np.maximum(excess, 0, out=excess)
    height, width = excess.shape
    sums = np.zeros((height + 1, width + 1))
    np.cumsum(np.cumsum(excess, axis=0, dtype=np.float64), axis=1, out=sums[1:, 1:])
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
    """The drawings of every shot of a clip, found by one pass over the clip when created.

    Frames are read once, in order, with VapourSynth's parallel prefetch (the differences
    from the previous frame are computed in its worker threads); each shot's state (the
    run's first frame) starts afresh at its cut.  Afterwards the object is read-only, so any
    thread may ask :meth:`shot` in any order.  Frame callbacks never request frames
    themselves, which could stall VapourSynth's thread pool.

    Args:
        clip: the source clip (any format), with its scene-change properties already set; its luma is read.
        threshold: the largest :func:`held_difference` of a duplicate (fraction of full range).
        use_cuts: honour ``_SceneChangeNext``/``_SceneChangePrev``; ``False``: the clip is one shot.
        log: a CSV file to write, one row per source frame: frame, its difference from the frame
            before and from its run's first frame, whether it is a duplicate, its run's and its
            shot's first frame, and the ``FLAVRHeld`` override if any.
        coding: the clip's colour coding (:func:`vsflavr.formats.coding_of`; read from the clip if not given).
    """

    def __init__(
        self,
        clip: vs.VideoNode,
        threshold: float,
        use_cuts: bool,
        log: str | Path | None = None,
        coding: Coding | None = None,
    ) -> None:
        self.shots: list[Shot] = []
        clip = luma(clip, coding or coding_of(clip))
        with contextlib.ExitStack() as stack:
            writer = None
            if log is not None:  # opened first: a path that cannot be written fails before the pass
                writer = csv.writer(stack.enter_context(Path(log).open("w", newline="", encoding="utf-8")))
                writer.writerow(_LOG_COLUMNS)
            flags: list[bool] = []
            start = run = 0
            run_start = np.empty(0)
            for n, frame in enumerate(_with_differences(clip, use_cuts).frames()):
                current = _pixels(frame)
                override = _override(frame)
                if n == 0 or frame.props[_CUT_PROP]:
                    if flags:
                        self.shots.append(Shot(start, holds_from_flags(flags)))
                    flags, start, run, run_start = [False], n, n, current
                    row: tuple[object, ...] = (n, "", "", 0, n, n, override)
                else:
                    to_previous = float(frame.props[_DIFF_PROP])
                    to_run = to_previous if run == n - 1 else held_difference(run_start, current)
                    if override is None:
                        duplicate = to_previous <= threshold and to_run <= threshold
                    else:
                        duplicate = bool(override)
                    if not duplicate:
                        run, run_start = n, current
                    flags.append(duplicate)
                    row = (n, f"{to_previous:.6f}", f"{to_run:.6f}", int(duplicate), run, start, override)
                if writer is not None:
                    writer.writerow("" if v is None else v for v in row)
            self.shots.append(Shot(start, holds_from_flags(flags)))
        self._starts = [shot.start for shot in self.shots]

    def shot(self, i: int) -> Shot:
        """The drawings of the shot holding source frame ``i``."""
        return self.shots[bisect.bisect_right(self._starts, i) - 1]


def _with_differences(clip: vs.VideoNode, use_cuts: bool) -> vs.VideoNode:
    """``clip`` whose frames also say whether a cut lies before them and how they differ from the previous one."""
    if clip.num_frames == 1:
        return clip.std.SetFrameProps(**{_CUT_PROP: 0, _DIFF_PROP: 0.0})
    previous = clip[0] + clip[:-1]

    def measure(n: int, f: list[vs.VideoFrame]) -> vs.VideoFrame:
        out = f[0].copy()
        cut = n > 0 and use_cuts and is_cut(f[1], f[0])
        out.props[_CUT_PROP] = int(cut)
        out.props[_DIFF_PROP] = 0.0 if n == 0 or cut else held_difference(_pixels(f[1]), _pixels(f[0]))
        return out

    return clip.std.ModifyFrame([clip, previous], measure)


def _pixels(frame: vs.VideoFrame) -> np.ndarray:
    """A luma frame as a (H, W) float32 array; NaN becomes 0 and +-inf 1 and 0 (as FLAVR reads them)."""
    return np.nan_to_num(np.asarray(frame[0], dtype=np.float32), nan=0.0, posinf=1.0, neginf=0.0)


def _override(frame: vs.VideoFrame) -> int | None:
    value = frame.props.get(HELD_PROP)
    return None if value is None else int(bool(value))
