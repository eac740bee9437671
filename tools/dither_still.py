"""How each of the resizer's dither types writes FLAVR's frames where nothing moves.

    python tools/dither_still.py ../shared/footage/bikes.mp4 40

Frame ``N`` of the clip (opened with BestSource, its own format) is repeated 4 times and
interpolated 2x with the built-in model; the interpolated frame is written back with each
``dither_type`` and compared with the source frame: the share of code values that differ, and
the mean absolute difference, per plane.  A still is where a dither pattern on interpolated
frames only would show as flicker against the untouched source frames.
"""

from __future__ import annotations

import sys

import numpy as np
import vapoursynth as vs

import vsflavr
from vsflavr import formats


def main(path: str, n: int) -> None:
    still = vs.core.bs.VideoSource(path)[n] * 4
    for dither in ("none", "ordered", "random", "error_diffusion"):
        formats.DITHER = dither
        tween = vsflavr.flavr(still, weights="builtin", sc=False).get_frame(1)
        source = still.get_frame(0)
        cells = []
        for p in range(source.format.num_planes):
            diff = np.abs(np.asarray(tween[p], np.int32) - np.asarray(source[p], np.int32))
            cells.append(f"{(diff > 0).mean() * 100:.1f} % / {diff.mean():.3f}")
        print(f"| {dither} | " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
