"""Check a trained built-in model against what shipping it requires, and print every figure.

Run on a candidate from ``train.py`` before copying it to ``vsflavr/models/``:

    python tools/builtin/check_candidate.py ~/.cache/vsflavr-train/run/flavr_s_8x.pth \
        --eval-video ../shared/footage/bikes.mp4

Checks (MODEL_CARD.md): the file is fp16 and at most 12 MiB; it loads and serves every
multi its grid divides and 24000/1001 -> 60000/1001 with exact frame counts on
tests/data footage; four identical frames come back still (>= 45 dB at every phase); on
the held-out test crop its frame at t = 1/2 beats the blend; its forward pass at 640x272
(CPU, bf16 autocast where the CPU has it, as ``precision="auto"``) costs at most 1.3x the
shipped 2x model's, timed alternately in this run.  With ``--eval-video``, the drop-frame
figures of ``python -m vsflavr eval`` at 2x (and 4x for a 4x or 8x grid; the 4x must beat the
blend), beside the shipped 2x model's 2x; with ``--replace-2x`` (a candidate meant to replace
flavr_s_2x rather than sit beside it, which serves multi=2) its 2x must not be below that.
Exits 1 when a check fails.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch
import vapoursynth as vs

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from vsflavr import flavr
from vsflavr.checkpoint import load_checkpoint
from vsflavr.evaluate import evaluate, open_rgbs, psnr
from vsflavr.weights import BUILTIN_MODELS

CLIP = ROOT / "tests" / "data" / "bikes_160x68.mp4"
CROP = ROOT / "tests" / "data" / "builtin_crop.npz"
MAX_BYTES = 12 * 2**20
MAX_SLOWDOWN = 1.3


def forward_seconds(models: dict[str, torch.nn.Module], repeats: int = 3) -> dict[str, float]:
    """Median seconds of one forward pass at 640x272 per model, the models timed in turn."""
    frames = torch.rand(1, 4, 3, 272, 640)
    times: dict[str, list[float]] = {name: [] for name in models}
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
        for model in models.values():
            model(frames)  # warm-up
        for _ in range(repeats):
            for name, model in models.items():
                started = time.perf_counter()
                model(frames)
                times[name].append(time.perf_counter() - started)
    return {name: statistics.median(t) for name, t in times.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("candidate", type=Path)
    parser.add_argument("--eval-video", type=Path, action="append", default=[], help="held-out clip to score")
    parser.add_argument(
        "--shipped-2x", type=float, action="append", default=[], help="the shipped model's 2x drop-frame PSNR on "
        "each --eval-video in order, when already measured with python -m vsflavr eval (skips scoring it again)"
    )
    parser.add_argument(
        "--replace-2x", action="store_true", help="the candidate would replace flavr_s_2x: its 2x must not be below"
    )
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    failures: list[str] = []

    def check(ok: bool, line: str) -> None:
        print(("ok   " if ok else "FAIL ") + line, flush=True)
        if not ok:
            failures.append(line)

    size = args.candidate.stat().st_size
    state = torch.load(args.candidate, map_location="cpu", weights_only=True)["state_dict"]
    fp16 = {t.dtype for t in state.values()} == {torch.float16}
    check(size <= MAX_BYTES and fp16, f"fp16 file, {size / 2**20:.2f} MiB")
    checkpoint = load_checkpoint(args.candidate)
    grid = checkpoint.architecture.multi
    check(checkpoint.architecture.skip == "blend", f"loads as a {grid}x grid with the blend skip")

    clip = open_rgbs(CLIP, 20)
    for multi in (m for m in (2, 4, 8) if grid % m == 0):
        out = flavr(clip, multi=multi, weights=str(args.candidate), device="cpu")
        out.get_frame(out.num_frames - 1)
        check(out.num_frames == 20 * multi, f"multi={multi}: {out.num_frames} frames from 20")
    film = clip.std.AssumeFPS(fpsnum=24000, fpsden=1001)
    out = flavr(film, fps_num=60000, fps_den=1001, weights=str(args.candidate), device="cpu")
    out.get_frame(out.num_frames - 1)
    rate_ok = out.num_frames == 50 and (out.fps_num, out.fps_den) == (60000, 1001)
    check(rate_ok, f"24000/1001 -> 60000/1001: {out.num_frames} frames from 20 at {out.fps_num}/{out.fps_den}")

    data = np.load(CROP)
    frames = torch.from_numpy(data["inputs"]).permute(0, 3, 1, 2).float().div(255).unsqueeze(0)
    with torch.inference_mode():
        still = checkpoint.model(frames[:, 1:2].expand(-1, 4, -1, -1, -1)).clamp(0, 1)
        middle = checkpoint.model(frames)[0, grid // 2 - 1].clamp(0, 1)
    still_db = min(psnr(frames[0, 1].numpy(), s.numpy()) for s in still[0])
    check(still_db >= 45, f"still input: {still_db:.1f} dB at the worst phase")
    target = data["target"].transpose(2, 0, 1) / 255.0
    blend = ((frames[0, 1] + frames[0, 2]) / 2).numpy()
    gain = psnr(target, middle.numpy()) - psnr(target, blend)
    check(gain >= 0.5, f"test crop: {gain:+.2f} dB over blend at t = 1/2")

    shipped = load_checkpoint(BUILTIN_MODELS[2])
    seconds = forward_seconds({"shipped": shipped.model, "candidate": checkpoint.model})
    ratio = seconds["candidate"] / seconds["shipped"]
    check(
        ratio <= MAX_SLOWDOWN,
        f"pass time at 640x272: {seconds['candidate']:.3f} s against {seconds['shipped']:.3f} s ({ratio:.2f}x)",
    )

    for index, video in enumerate(args.eval_video):
        rgb = open_rgbs(video)
        for multi in (m for m in (2, 4) if grid % m == 0):
            result = evaluate(rgb, multi, weights=args.candidate)
            model, blend_db = result.mean("psnr", "flavr"), result.mean("psnr", "blend")
            line = f"{video.name} drop-frame {multi}x: {model:.2f} dB, blend {blend_db:.2f} ({model - blend_db:+.2f})"
            if multi == 2:
                if index < len(args.shipped_2x):
                    reference = args.shipped_2x[index]
                else:
                    reference = evaluate(rgb, 2, weights=BUILTIN_MODELS[2]).mean("psnr", "flavr")
                line = f"{line}; shipped 2x model {reference:.2f} dB"
                if args.replace_2x:
                    check(model >= reference - 0.005, line)
                else:
                    print(f"info {line} (multi=2 keeps the shipped 2x model)", flush=True)
            else:
                check(model > blend_db, line)
    print("all checks passed" if not failures else f"{len(failures)} check(s) failed", flush=True)
    return 1 if failures else 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except vs.Error as exc:
        sys.exit(f"check_candidate: {exc}")
