"""Do no harm: how far flavr(dedup=True) is from dedup=False on a clip that has no held drawings.

    python tools/dedup_harm.py ../shared/footage/bikes.mp4 --weights builtin

Renders the clip (opened as ``eval`` does) both ways at ``--multi`` and prints how many output
frames are byte-identical and the lowest PSNR (RGB, 0..255 scale, 100 for identical frames).
"""

from __future__ import annotations

import argparse

import vsflavr
from vsflavr import evaluate
from vsflavr.frames import frame_to_tensor


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("clip")
    parser.add_argument("--frames", type=int)
    parser.add_argument("--multi", type=int, default=2)
    parser.add_argument("--weights", default=None)
    args = parser.parse_args()
    clip = evaluate.open_rgbs(args.clip, args.frames)
    dedup, plain = (
        vsflavr.flavr(clip, multi=args.multi, weights=args.weights, device="cpu", dedup=on) for on in (True, False)
    )
    identical, lowest = 0, evaluate.PSNR_CAP
    for a, b in zip(dedup.frames(), plain.frames(), strict=True):
        identical += all(bytes(a[p]) == bytes(b[p]) for p in range(3))
        lowest = min(lowest, evaluate.psnr(frame_to_tensor(b).numpy(), frame_to_tensor(a).numpy()))
    print(f"{args.clip}: {identical} of {dedup.num_frames} output frames byte-identical, lowest PSNR {lowest:.2f} dB")


if __name__ == "__main__":
    main()
