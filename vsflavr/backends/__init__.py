"""Inference backends: each turns a window of frames into FLAVR's in-between frames.

A backend is a frozen, keyword-only dataclass of settings (:class:`CPUBackend`,
:class:`CUDABackend`, :class:`TensorRTBackend`, :class:`OpenVINOBackend`,
:class:`AutoCPUBackend`); its ``load(model)`` returns a :class:`Runner`, called as
``runner(frames)`` with ``frames`` a float32 CPU tensor (B, 4, 3, H, W) in 0..1, H and W
multiples of 8, returning a float32 CPU tensor (B, n_outputs, 3, H, W).
:func:`select_backend` maps the filter's ``backend``, ``device`` and ``precision`` arguments to one.  Backends never import VapourSynth.
"""

from __future__ import annotations

import torch

from .base import DEFAULT_OVERLAP, Backend, Runner
from .cpu import CPUBackend, cpu_supports_bf16
from .cpu_auto import AutoCPUBackend
from .cuda import CUDABackend
from .openvino import OpenVINOBackend
from .tensorrt import TensorRTBackend

__all__ = [
    "BACKENDS",
    "DEFAULT_OVERLAP",
    "AutoCPUBackend",
    "Backend",
    "CPUBackend",
    "CUDABackend",
    "OpenVINOBackend",
    "Runner",
    "TensorRTBackend",
    "cpu_supports_bf16",
    "resolve_device",
    "select_backend",
]

BACKENDS = ("auto", "torch", "compile", "trt", "openvino")
"""Values of the filter's ``backend`` argument."""

_PRECISIONS = ("auto", "fp32", "fp16", "bf16", "int8")


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


def select_backend(
    backend: str,
    device: torch.device,
    precision: str,
    *,
    tile_size: int | None = None,
    tile_overlap: int = DEFAULT_OVERLAP,
) -> Backend:
    """The backend for the filter's arguments.

    ``backend``: ``"auto"`` (on a GPU PyTorch; on the CPU PyTorch or OpenVINO, whichever a one-off
    timing on this CPU found faster for the network, frame size and precision, see :class:`AutoCPUBackend`), ``"torch"`` (PyTorch: on a GPU
    channels-last with two CUDA streams, on the CPU the network as it is), ``"openvino"`` (OpenVINO,
    CPU only), ``"compile"`` (the same through ``torch.compile``: slow first
    frame, faster after) or ``"trt"`` (TensorRT engines, GPU only).  ``precision``:
    ``"auto"`` (fp16 on a GPU; on the CPU bf16 where it has native bf16, avx512_bf16 or AMX,
    else fp32, or int8 for the built-in 2x model where OpenVINO runs), ``"fp32"``, ``"fp16"`` (GPU
    only), ``"bf16"`` or ``"int8"`` (CPU through OpenVINO, the built-in 2x model only; 0.02 dB below
    fp32 on the shared footage).
    """
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {', '.join(map(repr, BACKENDS))}, got {backend!r}")
    if precision not in _PRECISIONS:
        raise ValueError(f"precision must be 'auto', 'fp32', 'fp16', 'bf16' or 'int8', got {precision!r}")
    if precision == "int8" and (device.type != "cpu" or backend not in ("auto", "openvino")):
        raise ValueError(
            "precision='int8' runs on the CPU through OpenVINO: use device='cpu' with backend='auto' or 'openvino'"
        )
    if device.type == "cpu":
        if backend == "trt":
            raise ValueError("backend='trt' needs a CUDA GPU; on the CPU use backend='auto'")
        if precision == "fp16":
            raise ValueError("precision='fp16' is for GPUs; on the CPU use 'fp32' or 'bf16'")
        cpu_precision = ("bf16" if cpu_supports_bf16() else "fp32") if precision == "auto" else precision
        # Without native bf16, "auto" runs the built-in 2x model's int8 network (where OpenVINO runs).
        prefer_int8 = precision == "auto" and cpu_precision == "fp32"
        ov_settings = {"tile_size": tile_size, "tile_overlap": tile_overlap, "prefer_int8": prefer_int8}
        if backend == "openvino" or cpu_precision == "int8":  # only OpenVINO runs int8
            return OpenVINOBackend(precision=cpu_precision, **ov_settings)
        if backend == "auto":
            return AutoCPUBackend(precision=cpu_precision, **ov_settings)
        return CPUBackend(
            precision=cpu_precision,
            compile=backend == "compile",
            tile_size=tile_size,
            tile_overlap=tile_overlap,
        )
    gpu_precision = "fp16" if precision == "auto" else precision
    if backend == "openvino":
        raise ValueError("backend='openvino' runs on the CPU; use device='cpu', or backend='auto' on a GPU")
    if backend == "trt":
        return TensorRTBackend(device=device, precision=gpu_precision, tile_size=tile_size, tile_overlap=tile_overlap)
    return CUDABackend(
        device=device,
        precision=gpu_precision,
        compile="max-autotune-no-cudagraphs" if backend == "compile" else None,
        tile_size=tile_size,
        tile_overlap=tile_overlap,
    )
