"""How evenly a disk drawn on twos or threes moves after flavr(dedup=True), with real weights.

    python tools/disk_motion.py --weights builtin --weights vsflavr/models/flavr_s_2x.pth

A red disk crosses a textured background at 4 px per source frame (8 px per drawing on twos, 12 on
threes; 23.976 fps, 192x48), held copies with light noise.  For each cadence, rate and weights it
prints the implied motion: the standard deviation over the mean of the per-output-frame displacement
of the disk's red-weighted centroid (0 = even motion) up to the shot's last drawing, with dedup and
without.  The network's own output is measured, not only the planner's timing (docs/anime-dedup.md).
``tests/test_dedup.py`` draws its clips with :func:`disk_clip` and measures them with :func:`motion_cv`.
"""

from __future__ import annotations

import argparse
import math
from fractions import Fraction

import numpy as np
import vapoursynth as vs

import vsflavr

SPEED = 4.0
"""px per source frame."""
CADENCES = {"twos": (2,) * 16, "threes": (3,) * 11}
RATES = {"2x": Fraction(2), "24->60": Fraction(5, 2), "1x": Fraction(1)}


def disk_clip(shots: list[tuple[int, ...]], noise: bool = True) -> tuple[vs.VideoNode, list[int]]:
    """Shots of a red disk on a textured background, drawn on the given holds at SPEED px per frame.

    Held copies get light noise (1/255, rounded to 8 bits) in green and blue; the red channel
    holds only the disk.  Each shot's first frame but the clip's has ``_SceneChangePrev``.  Returns
    the 23.976 fps RGBS clip and the keys (first frames of the drawings).
    """
    height, width, radius = 48, 192, 7
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    texture = [0.5 + 0.3 * np.sin(x / 5 + y / 7), 0.4 + 0.3 * np.cos(x / 3 - y / 4)]
    rng = np.random.default_rng(1)
    frames, keys, starts = [], [], []
    for holds in shots:
        starts.append(len(frames))
        t = 0
        for hold in holds:
            keys.append(len(frames))
            disk = np.clip(radius + 0.5 - np.hypot(x - 20 - SPEED * t, y - height / 2), 0, 1)
            for copy in range(hold):
                planes = [disk, *texture]
                if copy and noise:
                    planes[1:] = [np.round((p + rng.normal(0, 1 / 255, p.shape)) * 255) / 255 for p in texture]
                frames.append(np.stack(planes).astype(np.float32))
            t += hold
    blank = vs.core.std.BlankClip(
        width=width, height=height, format=vs.RGBS, length=len(frames), fpsnum=24000, fpsden=1001
    )

    def fill(n: int, f: vs.VideoFrame) -> vs.VideoFrame:
        out = f.copy()
        for p in range(3):
            np.copyto(np.asarray(out[p]), frames[n][p])
        out.props["_SceneChangePrev"] = int(n in starts[1:])
        return out

    return blank.std.ModifyFrame(blank, fill), keys


def centroid(frame: vs.VideoFrame) -> float:
    """The x of the red-weighted centroid of ``frame``, in px."""
    red = np.asarray(frame[0], dtype=np.float64).clip(0, None)
    return float((red * np.arange(red.shape[1])).sum() / red.sum())


def motion_cv(out: vs.VideoNode, ratio: Fraction | int, first: int, last_key: int) -> float:
    """CV of the disk's per-frame displacement over the output frames from source time ``first`` to ``last_key``."""
    ratio = Fraction(ratio)
    xs = [centroid(out.get_frame(n)) for n in range(math.ceil(first * ratio), math.floor(last_key * ratio) + 1)]
    steps = np.diff(xs)
    return float(steps.std() / steps.mean())


def rate_args(ratio: Fraction, clip: vs.VideoNode) -> dict[str, int]:
    """flavr()'s rate arguments for ``ratio`` times the clip's rate."""
    if ratio.denominator == 1:
        return {"multi": int(ratio)}
    fps = clip.fps * ratio
    return {"fps_num": fps.numerator, "fps_den": fps.denominator}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--weights", action="append", required=True, help="weights= of flavr(); repeat to compare")
    args = parser.parse_args()
    print("| cadence | rate | weights | without dedup | dedup |")
    print("| --- | --- | --- | --- | --- |")
    for name, holds in CADENCES.items():
        clip, _ = disk_clip([holds])
        last_key = sum(holds) - holds[-1]
        for rate, ratio in RATES.items():
            for weights in args.weights:
                common = {"weights": weights, "device": "cpu", "sc_threshold": None, **rate_args(ratio, clip)}
                dedup = motion_cv(vsflavr.flavr(clip, dedup=True, **common), ratio, 0, last_key)
                plain = "-" if ratio == 1 else f"{motion_cv(vsflavr.flavr(clip, **common), ratio, 0, last_key):.3f}"
                print(f"| {name} | {rate} | {weights} | {plain} | {dedup:.3f} |", flush=True)


if __name__ == "__main__":
    main()
