"""The CUDA backend: PyTorch on an NVIDIA GPU, several streams, optionally compiled."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor

from ..network import FLAVR
from .base import Backend, Forward, Runner
from .tiling import TILE_ALIGN

__all__ = [
    "GPU_PRECISIONS",
    "CUDABackend",
    "GPUBackend",
    "auto_tile",
    "bf16_supported",
    "cudnn_settings",
    "require_cuda",
]

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


def _tile_ladder(limit: int) -> list[int]:
    """Tile sides 128, 192, 256, 384, 512, 768, ... up to ``limit``: steps of about 1.4x."""
    sides = [m << e for e in range(16) for m in (_MIN_TILE, _MIN_TILE * 3 // 2)]
    return sorted(side for side in sides if side <= limit)


def auto_tile(
    height: int, width: int, *, free_bytes: int, element_size: int, lanes: int, overlap: int = 0
) -> int | None:
    """The side of square tiles for a ``height`` x ``width`` frame in ``free_bytes`` of GPU memory, or None.

    ``None`` when the whole frame fits; otherwise the largest side of a fixed ladder (128, 192,
    256, 384, 512, ...) whose tile fits in this lane's share of the free memory, so that free
    memory moving a little between runs gives the same tiles (and TensorRT the same engines).
    The side is at least 128 and more than twice ``overlap`` (the overlap of neighbouring tiles).
    """
    budget = free_bytes * _MEMORY_SHARE / lanes
    per_pixel = _BYTES_PER_PIXEL[element_size]
    if height * width * per_pixel <= budget:
        return None
    fitting = _tile_ladder(int((budget / per_pixel) ** 0.5))
    smallest = -(-(2 * overlap + 1) // TILE_ALIGN) * TILE_ALIGN
    return max(fitting[-1] if fitting else _MIN_TILE, smallest)


def bf16_supported(device: torch.device) -> bool:
    """Whether ``device`` computes bf16 natively (compute capability 8.0, Ampere, or later)."""
    return torch.cuda.get_device_capability(device) >= (8, 0)


_cudnn_lock = threading.Lock()
_cudnn_users = 0
_cudnn_saved: tuple[bool, bool] = (False, True)


@contextmanager
def cudnn_settings() -> Iterator[None]:
    """cuDNN autotuning on and TF32 off while vsflavr's passes run; the previous settings after the last one.

    These flags are process-wide, so they are set when the first of vsflavr's concurrent
    passes starts and restored when the last ends; outside them the user's settings hold.
    TF32 off makes fp32 convolutions IEEE fp32 (fp16 and bf16 passes do not use TF32).
    """
    global _cudnn_users, _cudnn_saved
    with _cudnn_lock:
        if _cudnn_users == 0:
            _cudnn_saved = (torch.backends.cudnn.benchmark, torch.backends.cudnn.allow_tf32)
            torch.backends.cudnn.benchmark, torch.backends.cudnn.allow_tf32 = True, False
        _cudnn_users += 1
    try:
        yield
    finally:
        with _cudnn_lock:
            _cudnn_users -= 1
            if _cudnn_users == 0:
                torch.backends.cudnn.benchmark, torch.backends.cudnn.allow_tf32 = _cudnn_saved


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
        return auto_tile(
            height,
            width,
            free_bytes=free,
            element_size=self.dtype.itemsize,
            lanes=self.lanes,
            overlap=self.tile_overlap,
        )

    def prepare(self, model: FLAVR, what: str) -> FLAVR:
        """``model`` on this GPU in this precision, in eval mode; ``what`` names the backend in errors."""
        require_cuda(self.device, what)
        if self.dtype == torch.bfloat16 and not bf16_supported(self.device):
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

    cuDNN's settings (autotuning on, TF32 off) hold only while vsflavr's passes run, see
    :func:`cudnn_settings`; ``precision="fp32"`` is IEEE fp32, not TF32.

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
        if self.channels_last:
            channels_last_3d(model)
        network: Forward = model
        if self.compile:
            network = torch.compile(model, mode=self.compile, dynamic=False)

        def forward(x: Tensor, mean: Tensor) -> Tensor:
            with cudnn_settings():
                return network(x, mean)

        return self.runner(forward, model.n_outputs)
