"""Inference backends: each turns a window of frames into FLAVR's in-between frames.

Every backend is called the same way: ``backend(frames)`` with ``frames`` a float32 CPU
tensor (B, 4, 3, H, W) in 0..1, H and W multiples of 8, and returns a float32 CPU
tensor (B, n_outputs, 3, H, W).  Backends never import VapourSynth.
"""

from __future__ import annotations

import torch

from .eager import EagerBackend

__all__ = ["EagerBackend", "resolve_device", "resolve_dtype"]

_PRECISIONS = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


def resolve_device(device: int | str | None) -> torch.device:
    """``None``: the first CUDA GPU if torch sees one, else the CPU; an int: that CUDA GPU; or "cpu", "cuda:N"."""
    if device is None:
        return torch.device("cuda", 0) if torch.cuda.is_available() else torch.device("cpu")
    if isinstance(device, bool) or not isinstance(device, int | str):
        raise ValueError(f"device must be a CUDA GPU index, 'cpu' or 'cuda:N', got {device!r}")
    try:
        dev = torch.device("cuda", device) if isinstance(device, int) else torch.device(device)
    except (RuntimeError, ValueError):
        raise ValueError(f"device {device!r} is not a device name; use a GPU index such as 0, or 'cpu'") from None
    if dev.type == "cpu":
        return dev
    if dev.type != "cuda":
        raise ValueError(f"device {device!r} is not supported; use a CUDA GPU index such as 0, or 'cpu'")
    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    index = dev.index or 0
    if index >= count:
        seen = f"only {count} CUDA GPU(s)" if count else "no CUDA GPU"
        raise ValueError(f"device {device!r} is not available: torch sees {seen}; use device='cpu' or a valid index")
    return torch.device("cuda", index)


def resolve_dtype(precision: str, device: torch.device) -> torch.dtype:
    """``"auto"``: fp16 on a GPU, fp32 on the CPU; or "fp32", "fp16" (GPU only), "bf16"."""
    if precision == "auto":
        return torch.float16 if device.type == "cuda" else torch.float32
    if precision not in _PRECISIONS:
        raise ValueError(f"precision must be 'auto', 'fp32', 'fp16' or 'bf16', got {precision!r}")
    if precision == "fp16" and device.type == "cpu":
        raise ValueError("precision='fp16' is for GPUs; on the CPU use 'fp32' or 'bf16'")
    return _PRECISIONS[precision]
