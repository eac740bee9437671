"""Train vsflavr's built-in model (FLAVR at 1/4 width with a blend skip, on the 2x or the 8x grid) from cached frames.

The recipe (see vsflavr/models/MODEL_CARD.md): 7-frame windows from
``fetch_data.py``'s cache, inputs frames 0, 2, 4, 6 and target frame 3 (temporal stride 2
with probability 0.3), 96x96 crops (120x120 for the last quarter), crops whose two
centre frames barely differ kept with probability 0.1 only, random horizontal flips and
time reversal, AdamW (lr 1.5e-3, 100 warm-up steps, cosine decay, weight decay 1e-4),
L1 loss and bf16 autocast on CPU and GPU.

``--multi 8`` trains the 8x grid (7 outputs at t = k/8, the official FLAVR 8x layout, so
vsflavr's loader serves multi 2, 4 and 8 from it): each sample is, with probability
``--teacher-share``, a native-rate window of the RIFE v4.0 teacher set (``teacher.py``: all
seven phases, made once and cached in the user cache), else real frames of a shot taken at
a gap of 2, 4 or 8 frames (the frames between the middle inputs are the targets at their
phases, :func:`real_8x_sample`); the L1 loss counts only the phases a sample has.
``--init`` warm-starts from the 2x model (:func:`warm_start`).

Training stops after ``--steps`` steps or ``--minutes`` minutes (over all sessions),
whichever comes first; the learning-rate schedule and the crop switch follow that
progress; ``--session-minutes`` ends one session early.  A resumable state is saved every
few minutes to ``--state`` (default ``user_cache_dir("vsflavr-train")/run/<out stem>.state``)
and ``--resume`` continues from it; the process lowers its own priority (``--nice``, default
19).  The final weights go to ``--out`` as fp16
with the architecture, the data manifest's sha256, the steps and (with
``--eval-video``) the drop-frame PSNR figures of ``python -m vsflavr eval`` (scored on the
saved fp16 file) in the checkpoint's metadata.

    python tools/builtin/train.py --data-dir ~/.cache/vsflavr-train/frames \
        --out ~/.cache/vsflavr-train/run/flavr_s_2x.pth --minutes 85 --seed 1 \
        --eval-video ../shared/footage/bikes.mp4 --eval-video ../shared/footage/bigbuckbunny.mp4 --eval-bf16

    python tools/builtin/train.py --multi 8 --init vsflavr/models/flavr_s_2x.pth \
        --data-dir ~/.cache/vsflavr-train/frames --out ~/.cache/vsflavr-train/run/flavr_s_8x.pth \
        --minutes 600 --session-minutes 60 --resume --device cuda

Keep ``--out`` outside the repository and copy the final ``.pth`` to ``vsflavr/models/``
once it passes the model card's checks.
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from platformdirs import user_cache_dir
from torch import Tensor

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import teacher
from vsflavr.checkpoint import load_checkpoint, save_checkpoint
from vsflavr.evaluate import Evaluation, evaluate, open_rgbs
from vsflavr.network import FLAVR

WIDTHS = (16, 32, 64, 128)
BLOCKS = (2, 2, 2, 2)
STATIC_THRESHOLD = 4 / 255
STATIC_KEEP = 0.1
STRIDE2_PROBABILITY = 0.3
WARMUP_STEPS = 100
SAVE_EVERY_S = 300.0
GAPS = (2, 4, 8)
"""8x grid, real targets: the inputs are every g-th frame of a shot, the g - 1 frames between the middle
two are the targets at phases 8j/g (g = 2: the middle phase only; g = 8: all seven)."""
GAP_PROBABILITIES = (0.5, 0.35, 0.15)


def build_model(multi: int = 2) -> FLAVR:
    """The built-in model's design: 2.64 M parameters, 4 inputs, ``multi - 1`` outputs, blend skip."""
    return FLAVR(multi - 1, widths=WIDTHS, blocks=BLOCKS, skip="blend")


def warm_start(model: FLAVR, path: Path) -> None:
    """Start ``model`` from the checkpoint at ``path`` (e.g. the 2x model for an 8x one), on the same design.

    Every tensor of the same shape is copied.  A coarser output head is spread over the finer grid:
    phase t gets the correction for 1/2 scaled by 1 - |2t - 1| (so the middle phase is the old output
    exactly), and encoder biases the old file lacks start at zero; the new model then makes the old
    model's frame at t = 1/2 and scaled corrections elsewhere.
    """
    old = load_checkpoint(path).model.state_dict()
    new = model.state_dict()
    if old["outconv.1.weight"].shape[0] != 3:
        raise SystemExit(f"train: --init {path} must be a 2x checkpoint (one output frame)")
    times = torch.arange(1, model.n_outputs + 1) / (model.n_outputs + 1)
    scale = (1 - (2 * times - 1).abs()).repeat_interleave(3)
    for key, value in new.items():
        if key in old and old[key].shape == value.shape:
            new[key] = old[key]
        elif key in ("outconv.1.weight", "outconv.1.bias"):
            tiled = old[key].repeat(model.n_outputs, *([1] * (old[key].dim() - 1)))
            new[key] = tiled * scale.view(-1, *([1] * (old[key].dim() - 1)))
        elif key.endswith(".bias") and key.removesuffix(".bias") + ".weight" in old:
            new[key] = torch.zeros_like(value)
        else:
            raise SystemExit(f"train: --init {path} has no tensor for {key} {tuple(value.shape)}")
    model.load_state_dict(new)


@dataclass
class Shot:
    """One cached shot of a clip: (N, H, W, 3) uint8 frames without cuts or duplicates."""

    clip: str
    frames: np.ndarray


class WindowSampler:
    """Draws batches of (inputs, target) crops from cached shots, following the recipe."""

    def __init__(self, data_dir: Path, rng: np.random.Generator) -> None:
        index = json.loads((data_dir / "index.json").read_text(encoding="utf-8"))
        self.manifest_sha256: str = index["manifest_sha256"]
        self.clips: list[dict[str, Any]] = index["clips"]
        self.rng = rng
        self.shots: list[list[Shot]] = []
        for clip in self.clips:
            shots = [Shot(clip["name"], np.load(path)) for path in sorted((data_dir / clip["name"]).glob("seg*.npy"))]
            shots = [shot for shot in shots if len(shot.frames) >= 7]
            if shots:
                self.shots.append(shots)
        if not self.shots:
            raise SystemExit(f"train: no shot of 7 frames or more in {data_dir}; run fetch_data.py first")
        # Clips weighted by the square root of their window count, so long clips do not dominate.
        windows = np.array([sum(len(s.frames) - 6 for s in shots) for shots in self.shots], np.float64)
        self.clip_weights = np.sqrt(windows) / np.sqrt(windows).sum()

    def window(self, crop: int) -> np.ndarray:
        """One (7, crop, crop, 3) uint8 window at stride 1 or 2, cropped at random."""
        shots = self.shots[self.rng.choice(len(self.shots), p=self.clip_weights)]
        lengths = np.array([len(s.frames) - 6 for s in shots], np.float64)
        frames = shots[self.rng.choice(len(shots), p=lengths / lengths.sum())].frames
        stride = 2 if len(frames) >= 13 and self.rng.random() < STRIDE2_PROBABILITY else 1
        start = self.rng.integers(0, len(frames) - 6 * stride)
        return self.crop(frames[start : start + 7 * stride : stride], crop)

    def crop(self, frames: np.ndarray, crop: int) -> np.ndarray:
        """A random ``crop`` x ``crop`` square of (N, H, W, 3) frames, padded by reflection where they are smaller."""
        height, width = frames.shape[1:3]
        size = min(crop, height // 8 * 8, width // 8 * 8)
        top = self.rng.integers(0, height - size + 1)
        left = self.rng.integers(0, width - size + 1)
        window = frames[:, top : top + size, left : left + size]
        if size < crop:  # a clip smaller than the crop: pad by reflection
            pad = ((0, 0), (0, crop - size), (0, crop - size), (0, 0))
            window = np.pad(window, pad, mode="reflect")
        return window

    def consecutive(self, length: int, crop: int) -> np.ndarray | None:
        """``length`` consecutive frames of a shot, cropped at random (clips weighted as for ``window``);
        ``None`` when no shot is that long."""
        eligible = [[s for s in shots if len(s.frames) >= length] for shots in self.shots]
        weights = np.sqrt([sum(len(s.frames) - length + 1 for s in shots) for shots in eligible])
        if not weights.sum():
            return None
        shots = eligible[self.rng.choice(len(eligible), p=weights / weights.sum())]
        lengths = np.array([len(s.frames) - length + 1 for s in shots], np.float64)
        frames = shots[self.rng.choice(len(shots), p=lengths / lengths.sum())].frames
        start = self.rng.integers(0, len(frames) - length + 1)
        return self.crop(frames[start : start + length], crop)

    def moving(self, draw: Callable[[], Any], centre: tuple[int, int] = (1, 2)) -> Any:
        """Draws from ``draw()`` until one moves (or passes the recipe's static-crop lottery)."""
        while True:
            sample = draw()
            if sample is None:
                continue
            frames = sample[0] if isinstance(sample, tuple) else sample
            a, b = (frames[i].astype(np.int16) for i in centre)
            if np.abs(a - b).mean() / 255 >= STATIC_THRESHOLD or self.rng.random() < STATIC_KEEP:
                return sample

    def teacher_window(self, crop: int) -> np.ndarray:
        """Four consecutive moving frames for the teacher set (inputs I-1, I0, I1, I2 at the native rate)."""
        return self.moving(lambda: self.consecutive(4, crop))

    def sample_8x(self, crop: int, teacher_set: tuple[np.ndarray, np.ndarray] | None, teacher_share: float):
        """One 8x training sample: uint8 inputs (4, c, c, 3), targets (7, c, c, 3), which targets are known (7,).

        With probability ``teacher_share`` a window of the teacher set (all seven phases, RIFE's);
        else real frames of a shot at a gap drawn from :data:`GAPS` (:func:`real_8x_sample`).
        Flipped and time-reversed at random."""
        if teacher_set is not None and self.rng.random() < teacher_share:
            n = self.rng.integers(len(teacher_set[0]))
            both = self.crop(np.concatenate([teacher_set[0][n], teacher_set[1][n]]), crop)
            inputs, targets, known = both[:4], both[4:], np.ones(7, bool)
        else:

            def draw():
                gap = GAPS[self.rng.choice(len(GAPS), p=GAP_PROBABILITIES)]
                window = self.consecutive(3 * gap + 1, crop)
                return None if window is None else real_8x_sample(window, gap)

            inputs, targets, known = self.moving(draw)
        if self.rng.random() < 0.5:
            inputs, targets = inputs[:, :, ::-1], targets[:, :, ::-1]
        if self.rng.random() < 0.5:
            inputs, targets, known = inputs[::-1], targets[::-1], known[::-1]
        return inputs, targets, known

    def batch_8x(
        self, size: int, crop: int, teacher_set: tuple[np.ndarray, np.ndarray] | None, teacher_share: float
    ) -> tuple[Tensor, Tensor, Tensor]:
        """Inputs (B, 4, 3, c, c) and targets (B, 7, 3, c, c) in 0..1, and the known-target mask (B, 7)."""
        samples = [self.sample_8x(crop, teacher_set, teacher_share) for _ in range(size)]
        inputs, targets = (to_tensor(np.stack([s[i] for s in samples])) for i in (0, 1))
        return inputs, targets, torch.from_numpy(np.stack([s[2] for s in samples]).astype(np.float32))

    def batch(self, size: int, crop: int) -> tuple[Tensor, Tensor]:
        """A batch of inputs (B, 4, 3, crop, crop) and targets (B, 3, crop, crop) in 0..1."""
        windows = []
        while len(windows) < size:
            window = self.window(crop)
            motion = np.abs(window[2].astype(np.int16) - window[4].astype(np.int16)).mean() / 255
            if motion < STATIC_THRESHOLD and self.rng.random() >= STATIC_KEEP:
                continue
            if self.rng.random() < 0.5:
                window = window[:, :, ::-1]
            if self.rng.random() < 0.5:
                window = window[::-1]
            windows.append(window)
        stacked = torch.from_numpy(np.ascontiguousarray(np.stack(windows))).permute(0, 1, 4, 2, 3)
        stacked = stacked.float() / 255
        return stacked[:, [0, 2, 4, 6]], stacked[:, 3]


def real_8x_sample(window: np.ndarray, gap: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """8x targets from real frames: ``window`` holds 3 * gap + 1 consecutive frames (gap 2, 4 or 8).

    The inputs are frames 0, gap, 2 gap, 3 gap; frame gap + j lies at t = j / gap between the middle
    two, which is phase 8j/gap of the 8x grid (target index 8j/gap - 1).  Returns the inputs (4, ...),
    the targets (7, ...) with zeros where the footage has no frame, and which targets are known (7,).
    """
    if gap not in GAPS or len(window) != 3 * gap + 1:
        raise ValueError(f"need 3 * gap + 1 frames for a gap of 2, 4 or 8; got {len(window)} for {gap}")
    targets = np.zeros((7, *window.shape[1:]), window.dtype)
    known = np.zeros(7, bool)
    for j in range(1, gap):
        phase = j * 8 // gap
        targets[phase - 1] = window[gap + j]
        known[phase - 1] = True
    return window[::gap], targets, known


def to_tensor(frames: np.ndarray) -> Tensor:
    """(B, T, H, W, 3) uint8 -> (B, T, 3, H, W) float in 0..1."""
    return torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 1, 4, 2, 3).float() / 255


def masked_l1(output: Tensor, targets: Tensor, known: Tensor) -> Tensor:
    """Mean absolute error over the known targets: output and targets (B, K, 3, H, W), known (B, K)."""
    error = (output - targets).abs().mean(dim=(2, 3, 4))
    return (error * known).sum() / known.sum()


def blend_at_phases(inputs: Tensor, phases: int) -> Tensor:
    """The linear blend of the middle two inputs at t = k / phases, k = 1..phases-1: (B, phases - 1, 3, H, W)."""
    times = (torch.arange(1, phases, dtype=inputs.dtype, device=inputs.device) / phases).view(1, -1, 1, 1, 1)
    return (1 - times) * inputs[:, 1:2] + times * inputs[:, 2:3]


def learning_rate(base: float, step: int, progress: float) -> float:
    """Linear warm-up over the first 100 steps, then cosine decay to zero at progress 1."""
    return base * min(1.0, (step + 1) / WARMUP_STEPS) * 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise SystemExit("train: --device cuda, but torch finds no CUDA GPU")
    return torch.device(name)


def default_state(out: Path) -> Path:
    """The resumable state of a run in the user cache: ``user_cache_dir("vsflavr-train")/run/<out's stem>.state``."""
    return Path(user_cache_dir("vsflavr-train")) / "run" / f"{out.stem}.state"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", type=Path, required=True, help="frames folder written by fetch_data.py")
    parser.add_argument("--out", type=Path, required=True, help="final checkpoint (fp16)")
    parser.add_argument("--multi", type=int, choices=[2, 8], default=2, help="the model's grid: 2x or 8x (default 2)")
    parser.add_argument("--steps", type=int, default=None, help="optimiser steps (default: until --minutes)")
    parser.add_argument("--minutes", type=float, default=None, help="wall-clock training budget, over all sessions")
    parser.add_argument(
        "--session-minutes", type=float, default=None, help="stop this session after N minutes (state and weights "
        "saved; the schedule still follows --minutes/--steps, so a --resume goes on where it stopped)"
    )
    parser.add_argument("--batch", type=int, default=8, help="crops per step (default 8; 64 on a big GPU)")
    parser.add_argument("--crop", type=int, default=96, help="crop side, a multiple of 8 (default 96)")
    # 120, not the recipe's 128: on CPU (torch 2.14, oneDNN) the bf16 weight gradient of the last
    # ConvTranspose3d comes out as NaN/1e31 garbage for crops of 128 and more; 96-120 are exact.
    parser.add_argument("--final-crop", type=int, default=120, help="crop side for the last 25%% (default 120)")
    parser.add_argument("--lr", type=float, default=1.5e-3, help="peak learning rate (default 1.5e-3)")
    parser.add_argument("--seed", type=int, default=1, help="seed of the weights and the sampler (default 1)")
    parser.add_argument("--init", type=Path, default=None, help="warm start from this 2x checkpoint (see warm_start)")
    parser.add_argument(
        "--state", type=Path, default=None, help="resumable state file (default: user cache, run/<out stem>.state)"
    )
    parser.add_argument(
        "--resume", type=Path, nargs="?", const=True, default=None,
        help="continue from a .state file (no value: the --state file, when it exists)",
    )
    parser.add_argument("--teacher-samples", type=int, default=256, help="8x: windows in the RIFE teacher set")
    parser.add_argument("--teacher-crop", type=int, default=128, help="8x: crop side of the teacher set")
    parser.add_argument("--teacher-share", type=float, default=0.5, help="8x: share of samples from the teacher")
    parser.add_argument("--teacher-dir", type=Path, default=None, help="8x: teacher cache (default: user cache)")
    parser.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    parser.add_argument("--threads", type=int, default=2, help="CPU threads (default 2)")
    parser.add_argument("--nice", type=int, default=19, help="niceness added to this process (default 19)")
    parser.add_argument("--log-every", type=int, default=50, help="steps between progress lines")
    parser.add_argument("--eval-video", type=Path, action="append", default=[], help="held-out clip to score")
    parser.add_argument(
        "--eval-frames", type=int, default=0, help="score only the first N frames of each clip (0: all)"
    )
    parser.add_argument("--eval-bf16", action="store_true", help="score with bf16 autocast (much faster on CPU)")
    args = parser.parse_args(argv)
    if args.steps is None and args.minutes is None:
        parser.error("give --steps, --minutes or both")
    if args.crop % 8 or args.final_crop % 8:
        parser.error("--crop and --final-crop must be multiples of 8")
    if args.multi == 8 and args.teacher_samples and args.teacher_crop < max(args.crop, args.final_crop):
        parser.error("--teacher-crop must be at least --crop and --final-crop")
    if not 0 <= args.teacher_share <= 1:
        parser.error("--teacher-share must be between 0 and 1")
    args.state = args.state or default_state(args.out)
    if args.resume is True:
        args.resume = args.state if args.state.is_file() else None
    return args


def teacher_set(args: argparse.Namespace, sampler: WindowSampler, device: torch.device):
    """The cached RIFE teacher set for an 8x run (made on the first run), or ``None`` without one."""
    if args.multi != 8 or not args.teacher_samples or not args.teacher_share:
        return None
    path = teacher.teacher_path(
        args.teacher_dir or teacher.default_dir(), sampler.manifest_sha256, args.teacher_samples, args.teacher_crop,
        args.seed,
    )

    def make():
        rife = teacher.load_rife(device)
        rng = np.random.default_rng([args.seed, 8])  # its own stream: the training draws stay the same
        drawer = WindowSampler(args.data_dir, rng)
        draw = lambda: drawer.teacher_window(args.teacher_crop)  # noqa: E731
        return teacher.make_targets(draw, rife, args.teacher_samples, device)

    return teacher.cached_targets(path, make, log=lambda line: print(line, flush=True))


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.nice:
        os.nice(args.nice)
    torch.set_num_threads(args.threads)
    device = pick_device(args.device)
    torch.manual_seed(args.seed)
    model = build_model(args.multi).to(device)
    if args.init is not None and args.resume is None:
        warm_start(model, args.init)
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=1e-4)
    sampler = WindowSampler(args.data_dir, np.random.default_rng(args.seed))
    teachers = teacher_set(args, sampler, device)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.state.parent.mkdir(parents=True, exist_ok=True)
    step, elapsed = 0, 0.0
    if args.resume is not None:
        state = torch.load(args.resume, map_location=device, weights_only=True)
        if state.get("multi", 2) != args.multi:
            was = state.get("multi", 2)
            raise SystemExit(f"train: {args.resume} is a {was}x run; this one is --multi {args.multi}")
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        sampler.rng.bit_generator.state = state["sampler_rng"]
        torch.set_rng_state(state["torch_rng"])
        step, elapsed = state["step"], state["elapsed"]
        print(f"resumed from {args.resume} at step {step} ({elapsed / 60:.1f} min)", flush=True)

    def progress() -> float:
        parts = []
        if args.steps is not None:
            parts.append(step / args.steps)
        if args.minutes is not None:
            parts.append(elapsed / (args.minutes * 60))
        return max(parts)

    def save_state() -> None:
        state = {
            "model": model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "sampler_rng": sampler.rng.bit_generator.state,
            "torch_rng": torch.get_rng_state(),
            "step": step,
            "elapsed": elapsed,
            "multi": args.multi,
        }
        torch.save(state, args.state)

    print(
        f"training {sum(p.numel() for p in model.parameters()) / 1e6:.2f} M parameters ({args.multi}x) on {device}, "
        f"{sum(len(s.frames) for shots in sampler.shots for s in shots)} frames from {len(sampler.shots)} clips, "
        f"state {args.state}",
        flush=True,
    )
    model.train()
    session_started = time.monotonic()
    started, last_save = time.monotonic() - elapsed, time.monotonic()
    losses, blend_losses = [], []
    while progress() < 1:
        if args.session_minutes is not None and time.monotonic() - session_started >= args.session_minutes * 60:
            print(f"session budget of {args.session_minutes} min spent at step {step}", flush=True)
            break
        crop = args.final_crop if progress() >= 0.75 else args.crop
        if args.multi == 2:
            inputs, target = sampler.batch(args.batch, crop)
            targets, known = target.unsqueeze(1), torch.ones(args.batch, 1)
        else:
            inputs, targets, known = sampler.batch_8x(args.batch, crop, teachers, args.teacher_share)
        inputs, targets, known = (t.to(device, non_blocking=True) for t in (inputs, targets, known))
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(args.lr, step, progress())
        with torch.autocast(device.type, dtype=torch.bfloat16):
            output = model(inputs)
        loss = masked_l1(output.float(), targets, known)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        gradient_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), math.inf)
        if not torch.isfinite(gradient_norm):
            raise SystemExit(f"train: non-finite gradient at step {step + 1} (crop {crop}); try another --final-crop")
        optimizer.step()
        step += 1
        elapsed = time.monotonic() - started
        losses.append(loss.item())
        blend_losses.append(masked_l1(blend_at_phases(inputs, args.multi), targets, known).item())
        if step % args.log_every == 0:
            print(
                f"step {step} {progress():6.1%} {elapsed / 60:5.1f} min crop {crop} "
                f"lr {optimizer.param_groups[0]['lr']:.2e} L1 {np.mean(losses) * 255:.3f} "
                f"(blend {np.mean(blend_losses) * 255:.3f}) /255",
                flush=True,
            )
            losses, blend_losses = [], []
        if time.monotonic() - last_save > SAVE_EVERY_S:
            save_state()
            last_save = time.monotonic()
    save_state()

    # Round to fp16 (the shipped precision) first, so the figures describe the saved weights.
    model = model.cpu().half().float().eval()
    metadata: dict[str, Any] = {
        "name": f"flavr_s_{args.multi}x",
        "architecture": {
            "widths": list(WIDTHS), "blocks": list(BLOCKS), "n_inputs": 4, "n_outputs": args.multi - 1
        },
        "multi": args.multi,
        "data_manifest_sha256": sampler.manifest_sha256,
        "training_clips": [f"{c['name']} ({c['licence']})" for c in sampler.clips],
        "steps": step,
        "batch": args.batch,
        "seed": args.seed,
        "training_minutes": round(elapsed / 60, 1),
        "device": device.type,
        "licence": "Apache-2.0 (weights); trained only on the clips listed, see tools/builtin/data_manifest.toml",
    }
    if teachers is not None:
        metadata["teacher"] = {
            "model": teacher.TEACHER, "windows": len(teachers[0]), "crop": args.teacher_crop,
            "share": args.teacher_share,
        }
    if args.init is not None:
        metadata["warm_start"] = args.init.name
    save_checkpoint(args.out, copy.deepcopy(model).half(), metadata)
    print(f"saved {args.out} after {step} steps, {elapsed / 60:.1f} min", flush=True)
    if not args.eval_video:
        return
    precision = "bf16" if args.eval_bf16 else "fp32"
    evaluations = {}
    for multi in (2, 4) if args.multi == 8 else (2,):
        key = "evaluation" if multi == 2 else f"evaluation_{multi}x"
        evaluations[key] = {}
        for video in args.eval_video:
            evaluations[key][video.name] = drop_frame_figures(args.out, video, args.eval_frames, precision, multi)
            print(f"{video.name} {multi}x: {evaluations[key][video.name]}", flush=True)
    metadata.update(evaluations)
    metadata["evaluation_precision"] = precision
    save_checkpoint(args.out, model.half(), metadata)
    print(f"added the evaluation to {args.out}", flush=True)


def drop_frame_figures(
    weights: Path, video: Path, frames: int, precision: str, multi: int = 2
) -> dict[str, float | int]:
    """``python -m vsflavr eval --multi``'s figures of the saved ``weights`` on ``video`` (first ``frames``, 0: all)."""
    return figures(evaluate(open_rgbs(video, frames or None), multi, weights=weights, precision=precision))


def figures(result: Evaluation) -> dict[str, float | int]:
    """Plain-value figures of a drop-frame evaluation, fit for a checkpoint's metadata."""
    kept = [s for s in result.scores if not s.cut]
    return {
        "frames": len(kept),
        "psnr_model": round(result.mean("psnr", "flavr"), 3),
        "psnr_blend": round(result.mean("psnr", "blend"), 3),
        "psnr_repeat": round(result.mean("psnr", "repeat"), 3),
        "gain_over_blend": round(result.mean("psnr", "flavr") - result.mean("psnr", "blend"), 3),
        "wins_over_blend": round(float(np.mean([s.psnr["flavr"] > s.psnr["blend"] for s in kept])), 3),
    }


if __name__ == "__main__":
    main()
