"""Which frames of a clip the held-frame detector takes for held copies, and how fast it reads the clip.

    python tools/held_report.py ../shared/footage/bigbuckbunny.mp4 [--threshold 0.0118] [--log held.csv]

Opens the clip as ``eval`` does (BestSource, BT.709, RGBS), marks scene cuts with the built-in
detector, runs the detector of ``flavr(dedup=True)`` and prints the duplicates, the closest
calls on either side of the threshold, and the frames per second of the pass.
"""

from __future__ import annotations

import argparse
import csv
import tempfile
import time
from pathlib import Path

from vsflavr.evaluate import open_rgbs
from vsflavr.heldframes import DEFAULT_THRESHOLD, HeldFrames
from vsflavr.scenes import mark_scene_changes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("clip")
    parser.add_argument("--threshold", type=float, default=DEFAULT_THRESHOLD)
    parser.add_argument("--log", type=Path, help="keep the per-frame CSV log here")
    args = parser.parse_args()
    clip = mark_scene_changes(open_rgbs(args.clip))
    with tempfile.TemporaryDirectory() as tmp:
        log = args.log or Path(tmp) / "held.csv"
        start = time.perf_counter()
        held = HeldFrames(clip, args.threshold, use_cuts=True, log=log)
        seconds = time.perf_counter() - start
        rows = [r for r in csv.DictReader(log.open()) if r["diff_previous"]]
    duplicates = [int(r["frame"]) for r in rows if r["duplicate"] == "1"]
    worst = max((r for r in rows if r["duplicate"] == "1"), key=lambda r: float(r["diff_previous"]), default=None)
    closest = min((r for r in rows if r["duplicate"] == "0"), key=lambda r: float(r["diff_previous"]), default=None)
    print(f"{args.clip}: {clip.num_frames} frames, {clip.width}x{clip.height}, {len(held.shots)} shots")
    print(f"held copies ({len(duplicates)}): {duplicates}")
    if worst:
        print(
            f"largest difference of a held copy from the frame before: {float(worst['diff_previous']) * 255:.2f}/255 (frame {worst['frame']})"
        )
    if closest:
        print(
            f"smallest difference of a new frame from the frame before: {float(closest['diff_previous']) * 255:.2f}/255 (frame {closest['frame']})"
        )
    print(f"threshold {args.threshold * 255:.2f}/255; detection pass {clip.num_frames / seconds:.1f} frames/s")


if __name__ == "__main__":
    main()
