"""Make tests/data/held_crops.npz: short full-resolution stretches of the shared footage for the held-frame detector.

    python tools/held_crops.py ../shared/footage tests/data/held_crops.npz

A stretch keeps a few tiles of 128x64 px of the decoded YUV 4:2:0 planes (uint8, as BestSource gives
them), side by side: bigbuckbunny.mp4 frames 104-119 (107 repeats 106; 118 is the new frame least
different from its predecessor, 6.7/255) and bikes.mp4 frames 125-136 (the slowest frames, 10.6/255 at
least).  Tiles are chosen greedily until every new frame of the stretch differs from its predecessor by
more than 1.5 times the detector's threshold inside some tile (or by as much as in the whole frame).
tests/test_heldframes.py checks that the detector gives the same answers on the tiles as on whole frames.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import vapoursynth as vs

from vsflavr.formats import coding_of, luma
from vsflavr.heldframes import DEFAULT_THRESHOLD, held_difference

STRETCHES = {"bigbuckbunny": ("bigbuckbunny.mp4", 104, 120), "bikes": ("bikes.mp4", 125, 137)}
TILE_H, TILE_W, STEP = 64, 128, 32


def pixels(clip: vs.VideoNode, n: int) -> np.ndarray:
    return np.asarray(clip.get_frame(n)[0], dtype=np.float32)


def choose_tiles(clip: vs.VideoNode, first: int, end: int) -> list[tuple[int, int]]:
    """Tile corners (top, left) that keep every new frame of frames first..end-1 new."""
    gray = luma(clip, coding_of(clip))  # what the detector reads
    places = [(y, x) for y in range(0, clip.height - TILE_H + 1, STEP) for x in range(0, clip.width - TILE_W + 1, STEP)]
    needs: dict[int, tuple[float, np.ndarray]] = {}
    for n in range(first + 1, end):
        a, b = pixels(gray, n - 1), pixels(gray, n)
        whole = held_difference(a, b)
        if whole > DEFAULT_THRESHOLD:
            scores = [
                held_difference(a[y : y + TILE_H, x : x + TILE_W], b[y : y + TILE_H, x : x + TILE_W])
                for y, x in places
            ]
            needs[n] = (min(1.5 * DEFAULT_THRESHOLD, whole), np.array(scores))
    chosen: list[int] = []
    while needs:
        best = max(range(len(places)), key=lambda k: sum(s[k] >= want for want, s in needs.values()))
        chosen.append(best)
        needs = {n: (want, s) for n, (want, s) in needs.items() if s[best] < want}
    return [places[k] for k in chosen]


def main(footage: Path, out: Path) -> None:
    arrays: dict[str, np.ndarray] = {}
    for name, (file, first, end) in STRETCHES.items():
        source = vs.core.bs.VideoSource(str(footage / file))
        tiles = choose_tiles(source, first, end)
        clip = source[first:end]
        planes: list[list[np.ndarray]] = [[], [], []]
        for frame in clip.frames():
            for p in range(3):
                s = 2 if p else 1  # chroma planes are half size
                plane = np.asarray(frame[p])
                planes[p].append(
                    np.hstack([plane[y // s : (y + TILE_H) // s, x // s : (x + TILE_W) // s] for y, x in tiles])
                )
        for p, letter in enumerate("yuv"):
            arrays[f"{name}_{letter}"] = np.stack(planes[p])
        arrays[f"{name}_first"] = np.array(first)
        arrays[f"{name}_tiles"] = np.array(tiles)
        print(name, "tiles (top, left):", tiles)
    np.savez_compressed(out, **arrays)


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
