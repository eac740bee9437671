"""The CUDA backend: PyTorch on an NVIDIA GPU, several streams, optionally compiled."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Literal

import torch

from ..network import FLAVR
from .base import Backend, Forward, Runner
from .tiling import TILE_ALIGN

__all__ = ["GPU_PRECISIONS", "CUDABackend", "GPUBackend", "auto_tile", "require_cuda"]

logger = logging.getLogger("vsflavr")

GPU_PRECISIONS: dict[str, torch.dtype] = {"fp16": torch.float16, "bf16": torch.bfloat16, "fp32": torch.float32}

CompileMode = Literal["default", "max-autotune", "max-autotune-no-cudagraphs", "reduce-overhead"]

# Peak GPU memory of one forward pass per pixel of the frame, by bytes per element, with
# headroom; estimated from CPU measurements of the activations (about 3-5 KB/pixel in fp32).
_BYTES_PER_PIXEL = {2: 4096, 4: 8192}
_MEMORY_SHARE = 0.8
_MIN_TILE = 128


def require_cuda(device: torch.device, what: str) -> None:
    """Raise ValueError unless ``device`` is a CUDA GPU that torch can use; ``what`` names the backend."""
    if device.type != "cuda" or not torch.cuda.is_available():
        raise ValueError(f"{what} needs a CUDA GPU and torch sees none; use device='cpu'")
    if (device.index or 0) >= torch.cuda.device_count():
        raise ValueError(f"{what}: there is no {device}; torch sees {torch.cuda.device_count()} GPU(s)")


def auto_tile(height: int, width: int, *, free_bytes: int, element_size: int, lanes: int) -> int | None:
    """The side of square tiles for a ``height`` x ``width`` frame in ``free_bytes`` of GPU memory, or None.

    ``None`` when the whole frame fits; otherwise the largest multiple of 8 (at least 128)
    whose tile fits in this lane's share of the free memory.
    """
    budget = free_bytes * _MEMORY_SHARE / lanes
    per_pixel = _BYTES_PER_PIXEL[element_size]
    if height * width * per_pixel <= budget:
        return None
    side = int((budget / per_pixel) ** 0.5) // TILE_ALIGN * TILE_ALIGN
    return max(side, _MIN_TILE)


def channels_last_3d(model: FLAVR) -> FLAVR:
    """Store the 3D convolutions' weights channels-last, so their outputs are channels-last too.

    ``model.to(memory_format=torch.channels_last_3d)`` cannot be used: it fails on the 2D layers.
    """
    for parameter in model.parameters():
        if parameter.dim() == 5:
            parameter.data = parameter.data.contiguous(memory_format=torch.channels_last_3d)
    return model


@dataclass(frozen=True, kw_only=True)
class GPUBackend(Backend):
    """Settings of every GPU backend.

    Attributes:
        device: the CUDA device.
        precision: ``"fp16"`` (default, fastest), ``"bf16"`` or ``"fp32"``.
        streams: forward passes run at once, each on its own CUDA stream with its own
            pinned host buffers, so frame copies overlap computation.
    """

    device: torch.device
    precision: Literal["fp16", "bf16", "fp32"] = "fp16"
    streams: int = 2

    def __post_init__(self) -> None:
        super().__post_init__()
        if isinstance(self.streams, bool) or not isinstance(self.streams, int) or self.streams < 1:
            raise ValueError(f"streams must be an integer >= 1, got {self.streams!r}")

    @property
    def dtype(self) -> torch.dtype:
        return GPU_PRECISIONS[self.precision]

    @property
    def lanes(self) -> int:
        """Forward passes that run at once."""
        return self.streams

    def tile_for(self, height: int, width: int) -> int | None:
        """``tile_size``, or tiles only when the frame does not fit in free GPU memory."""
        if self.tile_size is not None:
            return self.tile_size
        free, _ = torch.cuda.mem_get_info(self.device)
        return auto_tile(height, width, free_bytes=free, element_size=self.dtype.itemsize, lanes=self.lanes)

    def prepare(self, model: FLAVR, what: str) -> FLAVR:
        """``model`` on this GPU in this precision, in eval mode; ``what`` names the backend in errors."""
        require_cuda(self.device, what)
        if self.dtype == torch.bfloat16 and not torch.cuda.is_bf16_supported():
            raise ValueError(f"{what}: {torch.cuda.get_device_name(self.device)} has no bf16; use precision='fp16'")
        return model.to(self.device, self.dtype).eval().requires_grad_(False)

    def runner(self, forward: Forward, n_outputs: int) -> Runner:
        """A runner of ``forward`` with this backend's streams and tiles."""
        torch.cuda.synchronize(self.device)  # the weights are in place before any stream reads them
        return Runner(
            forward,
            n_outputs=n_outputs,
            device=self.device,
            dtype=self.dtype,
            lanes=self.lanes,
            tile_for=self.tile_for,
            tile_overlap=self.tile_overlap,
        )


@dataclass(frozen=True, kw_only=True)
class CUDABackend(GPUBackend):
    """FLAVR on an NVIDIA GPU with PyTorch; cuDNN picks its fastest algorithms for the frame size.

    Attributes:
        channels_last: channels-last activations (faster on tensor cores).
        compile: ``torch.compile`` mode, or ``None`` for eager.  Modes with CUDA graphs
            (``"max-autotune"``, ``"reduce-overhead"``) run one stream.  The first frame of
            each size compiles (minutes with max-autotune).
    """

    channels_last: bool = True
    compile: CompileMode | None = None

    @property
    def lanes(self) -> int:
        """``streams``, or 1 when CUDA graphs are captured (they are bound to one stream)."""
        return 1 if self.compile in ("max-autotune", "reduce-overhead") else self.streams

    def load(self, model: FLAVR) -> Runner:
        model = self.prepare(model, "the CUDA backend")
        torch.backends.cudnn.benchmark = True
        if self.channels_last:
            channels_last_3d(model)
        forward: Forward = model
        if self.compile:
            forward = torch.compile(model, mode=self.compile, dynamic=False)
        return self.runner(forward, model.n_outputs)
