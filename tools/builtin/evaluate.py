"""Drop-frame evaluation of a 2x FLAVR checkpoint on a video.

Every other frame of the clip is dropped and rebuilt: odd frame 2m+1 from even frames
2m-2, 2m, 2m+2 and 2m+4 (repeated at the clip's ends), compared with the original.
The table gives the mean RGB PSNR (0..255 scale, full frames) of the model, of blending
the two neighbours and of repeating the previous frame.  Frames whose gap spans a scene
cut (mean |luma difference| > 0.15 between consecutive frames) are left out, as
interpolation across a cut is meaningless.

    python tools/builtin/evaluate.py vsflavr/models/flavr_s_2x.pth ../shared/footage/bikes.mp4 \
        ../shared/footage/bigbuckbunny.mp4 [--frames 30] [--bf16]
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from fetch_data import CUT_THRESHOLD, decode, ffmpeg_executable, luma

from vsflavr.checkpoint import load_checkpoint
from vsflavr.network import FLAVR


@dataclass(frozen=True)
class Scores:
    """Per-frame PSNR (dB) of the model, of blending and of frame repetition on one clip."""

    frames: list[int]
    model: np.ndarray
    blend: np.ndarray
    repeat: np.ndarray

    def summary(self) -> dict[str, float | int]:
        """Plain-value figures, fit for a checkpoint's metadata."""
        return {
            "frames": len(self.frames),
            "psnr_model": round(float(self.model.mean()), 3),
            "psnr_blend": round(float(self.blend.mean()), 3),
            "psnr_repeat": round(float(self.repeat.mean()), 3),
            "gain_over_blend": round(float((self.model - self.blend).mean()), 3),
            "wins_over_blend": round(float((self.model > self.blend).mean()), 3),
        }


def psnr(prediction: np.ndarray, target: np.ndarray) -> float:
    """PSNR of two uint8 images on the 0..255 scale (100 dB for identical images)."""
    mse = float(np.mean((prediction.astype(np.float64) - target.astype(np.float64)) ** 2))
    return 100.0 if mse == 0 else 10 * np.log10(255.0**2 / mse)


def to_uint8(frames: Tensor) -> np.ndarray:
    """(..., 3, H, W) float frames in 0..1 -> (..., H, W, 3) uint8, rounded."""
    return (frames.clamp(0, 1) * 255).round().to(torch.uint8).movedim(-3, -1).numpy()


@torch.inference_mode()
def interpolate(model: FLAVR, window: np.ndarray, bf16: bool = False) -> np.ndarray:
    """The frame between window[1] and window[2] of a (4, H, W, 3) uint8 window, as uint8.

    Frames are padded to a multiple of 8 by repeating their edge pixels; the output is
    cropped back.
    """
    height, width = window.shape[1:3]
    frames = torch.from_numpy(window).permute(0, 3, 1, 2).float().div(255)
    frames = F.pad(frames, (0, -width % 8, 0, -height % 8), mode="replicate").unsqueeze(0)
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        output = model(frames)[0, 0].float()
    return to_uint8(output[:, :height, :width])


def scene_cuts(frames: np.ndarray) -> set[int]:
    """Indices of frames that start a new shot."""
    lumas = [luma(frame) for frame in frames]
    return {i for i in range(1, len(frames)) if float(np.abs(lumas[i] - lumas[i - 1]).mean()) > CUT_THRESHOLD}


def scored_frames(count: int, cuts: set[int], max_frames: int = 0) -> list[int]:
    """Odd frames that have a following even frame and no cut in their gap, optionally thinned evenly."""
    targets = [t for t in range(1, count - 1, 2) if t not in cuts and t + 1 not in cuts]
    if 0 < max_frames < len(targets):
        targets = [targets[i] for i in np.linspace(0, len(targets) - 1, max_frames).round().astype(int)]
    return targets


def evaluate_frames(model: FLAVR, frames: np.ndarray, max_frames: int = 0, bf16: bool = False) -> Scores:
    """Score the model, blending and repetition on (N, H, W, 3) uint8 frames."""
    last_even = (len(frames) - 1) // 2 * 2
    targets = scored_frames(len(frames), scene_cuts(frames), max_frames)
    model_psnr, blend_psnr, repeat_psnr = [], [], []
    for target in targets:
        before = target - 1
        indices = [min(max(i, 0), last_even) for i in (before - 2, before, before + 2, before + 4)]
        window = frames[indices]
        blend = ((window[1].astype(np.float32) + window[2]) / 2).round().astype(np.uint8)
        model_psnr.append(psnr(interpolate(model, window, bf16), frames[target]))
        blend_psnr.append(psnr(blend, frames[target]))
        repeat_psnr.append(psnr(window[1], frames[target]))
    return Scores(targets, np.array(model_psnr), np.array(blend_psnr), np.array(repeat_psnr))


def evaluate_video(model: FLAVR, video: Path, max_frames: int = 0, bf16: bool = False) -> Scores:
    """Decode ``video`` at full size and score it; see :func:`evaluate_frames`."""
    return evaluate_frames(model.eval(), decode(video, ffmpeg_executable(), max_side=None), max_frames, bf16)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("checkpoint", type=Path, help="a 2x FLAVR checkpoint")
    parser.add_argument("videos", type=Path, nargs="+", help="held-out clips")
    parser.add_argument("--frames", type=int, default=0, help="frames per clip, evenly spaced (default: all)")
    parser.add_argument("--bf16", action="store_true", help="bf16 autocast (fast on CPUs with avx512_bf16/AMX)")
    parser.add_argument("--threads", type=int, default=2, help="CPU threads (default 2)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    checkpoint = load_checkpoint(args.checkpoint)
    if checkpoint.architecture.multi != 2:
        raise SystemExit(f"evaluate: {args.checkpoint} is a {checkpoint.architecture.multi}x model, not 2x")
    print(f"{'clip':<20} {'frames':>6} {'model':>8} {'blend':>8} {'repeat':>8} {'gain':>7} {'wins':>6}")
    for video in args.videos:
        figures = evaluate_video(checkpoint.model, video, args.frames, args.bf16).summary()
        print(
            f"{video.name:<20} {figures['frames']:>6} {figures['psnr_model']:>8.2f} {figures['psnr_blend']:>8.2f} "
            f"{figures['psnr_repeat']:>8.2f} {figures['gain_over_blend']:>+7.2f} {figures['wins_over_blend']:>6.0%}",
            flush=True,
        )


if __name__ == "__main__":
    main()
