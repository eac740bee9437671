"""Forward passes and speed of flavr(dedup=True) against dedup=False on a clip put on twos, in one run.

    python tools/dedup_speed.py ../shared/footage/bikes.mp4 --frames 60 --weights builtin

The clip's first N frames are put on twos (vsflavr.evaluate.on_twos); each setting renders every
output frame in order, twice in turn (dedup=False, dedup=True, dedup=False, dedup=True), and the
faster of its two runs counts, so other load on the machine only ever adds time.  Times include
building the filter (loading the weights; with dedup, the detector's pass over the clip).  Forward passes are
counted at the backend, so the count is what ran, including any pass repeated after a cache eviction.
"""

from __future__ import annotations

import argparse
import time

import vsflavr
from vsflavr import evaluate


class _Counted:
    """A loaded backend that counts its calls (one call is one forward pass)."""

    def __init__(self, runner: object) -> None:
        self.runner, self.passes = runner, 0

    def __call__(self, frames: object) -> object:
        self.passes += 1
        return self.runner(frames)


class _Counting:
    def __init__(self, backend: object, runners: list[_Counted]) -> None:
        self.backend, self.runners = backend, runners

    def load(self, model: object) -> _Counted:
        runner = _Counted(self.backend.load(model))
        self.runners.append(runner)
        return runner


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("clip")
    parser.add_argument("--frames", type=int, default=60)
    parser.add_argument("--multi", type=int, default=2)
    parser.add_argument("--weights", default=None)
    args = parser.parse_args()
    runners: list[_Counted] = []
    select = vsflavr.select_backend
    vsflavr.select_backend = lambda *a, **k: _Counting(select(*a, **k), runners)
    twos = evaluate.on_twos(evaluate.open_rgbs(args.clip, args.frames))
    best: dict[bool, tuple[float, int, int]] = {}
    for dedup in (False, True, False, True):
        start = time.perf_counter()  # dedup's detection pass runs in flavr(): it counts
        out = vsflavr.flavr(twos, multi=args.multi, weights=args.weights, device="cpu", dedup=dedup)
        for _ in out.frames():
            pass
        seconds = time.perf_counter() - start
        if dedup not in best or seconds < best[dedup][0]:
            best[dedup] = (seconds, runners[-1].passes, out.num_frames)
    print(f"{args.clip}: first {twos.num_frames} frames on twos, {twos.width}x{twos.height}, multi={args.multi}")
    print("| dedup | output frames | forward passes | passes per output frame | output fps | x dedup=False |")
    print("| --- | --- | --- | --- | --- | --- |")
    for dedup, (seconds, passes, frames) in best.items():
        speedup = best[False][0] / seconds
        print(f"| {dedup} | {frames} | {passes} | {passes / frames:.3f} | {frames / seconds:.2f} | {speedup:.2f} |")


if __name__ == "__main__":
    main()
