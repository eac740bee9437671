"""What taking the clip as it comes costs: vspipe runs of one clip as YUV in/out, the manual RGBS ritual, and RGBS in/out.

    python tools/format_cost.py tests/data/bikes_160x68.mp4 ../shared/footage/bikes.mp4:100

Each clip (``path`` or ``path:frames``) is interpolated 2x with the built-in model three ways, in one run:
``yuv`` (``vsflavr.flavr(clip)`` on the BestSource clip, the source's format out), ``ritual`` (the clip
converted to RGBS by hand with its own matrix, ``flavr``, and back to the source's format) and ``rgbs``
(RGBS in and out: only the conversion to RGBS before the filter).  Prints output fps (vspipe's figure)
and peak RSS (``/usr/bin/time``) per run.  The three modes run in turn, ``ROUNDS`` times over, so that
a first run's one-off costs (cache warm-up, the backend timing) and a change of load fall on every mode.
"""

from __future__ import annotations

import re
import subprocess
import sys
import tempfile
from pathlib import Path

ROUNDS = 2

SCRIPT = """
import vapoursynth as vs
import vsflavr
core = vs.core
clip = core.bs.VideoSource({path!r})
clip = clip[:{frames}] if {frames} else clip
mode = {mode!r}
if mode == "yuv":
    out = vsflavr.flavr(clip, weights="builtin")
else:
    coding = vsflavr.formats.coding_of(clip)
    rgbs = vsflavr.formats.to_network(clip, coding)
    out = vsflavr.flavr(rgbs, weights="builtin")
    if mode == "ritual":
        out = vsflavr.formats.from_network(out, clip.format, coding)
out.set_output()
"""


def run(path: str, frames: int, mode: str) -> tuple[float, int]:
    """(output fps, peak RSS in MiB) of one vspipe run to /dev/null."""
    with tempfile.NamedTemporaryFile("w", suffix=".vpy", delete=False) as f:
        f.write(SCRIPT.format(path=str(Path(path).resolve()), frames=frames, mode=mode))
    result = subprocess.run(
        ["/usr/bin/time", "-v", "vspipe", f.name, "--"], capture_output=True, text=True, check=True
    )
    fps = float(re.search(r"Output \d+ frames in [\d.]+ seconds \(([\d.]+) fps\)", result.stderr).group(1))
    rss = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", result.stderr).group(1)) // 1024
    return fps, rss


def main(clips: list[str]) -> None:
    print("| clip | frames | round | mode | output fps | peak RSS (MiB) |\n|---|---|---|---|---|---|")
    for spec in clips:
        path, _, frames = spec.partition(":")
        for round_ in range(1, ROUNDS + 1):
            for mode in ("yuv", "ritual", "rgbs"):
                fps, rss = run(path, int(frames or 0), mode)
                print(f"| {Path(path).name} | {frames or 'all'} | {round_} | {mode} | {fps:.2f} | {rss} |", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
