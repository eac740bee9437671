"""What every backend shares: its settings class, and the runner that a loaded backend is.

A backend is a frozen, keyword-only dataclass of settings.  :meth:`Backend.load` turns a
FLAVR network into a :class:`Runner`, which the pipeline calls as ``runner(frames)``:
``frames`` is a float32 CPU tensor (B, 4, 3, H, W) in 0..1 with H and W multiples of 8,
and the result a float32 CPU tensor (B, n_outputs, 3, H, W).  Backends differ only in the
*forward* function they give the runner (eager, compiled, a TensorRT engine); moving
frames to the device and back, concurrent requests and tiling are the runner's.
"""

from __future__ import annotations

import queue
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from torch import Tensor

from ..errors import one_line
from ..network import FLAVR, channel_mean
from .tiling import check_tiling, run_tiled

__all__ = ["DEFAULT_OVERLAP", "Backend", "Forward", "Runner"]

Forward = Callable[[Tensor, Tensor], Tensor]
"""The network on the device: ``forward(frames, mean)``, frames (B, 4, 3, h, w) in the backend's
input dtype -> (B, n, 3, h, w); ``mean`` (B, 3, 1, 1, 1) is the whole frames' channel mean
(see :class:`~vsflavr.network.FLAVR`), the same for every tile of a frame."""

DEFAULT_OVERLAP = 32


@dataclass(frozen=True, kw_only=True)
class Backend(ABC):
    """Settings shared by every backend.

    Attributes:
        tile_size: run frames in overlapping square tiles of this side (a multiple of 8,
            at least 64) to bound memory; ``None``: whole frames on the CPU, and on a GPU
            tiles only when the frame would not fit in free memory.
        tile_overlap: pixels shared by neighbouring tiles, blended with linear ramps.
    """

    tile_size: int | None = None
    tile_overlap: int = DEFAULT_OVERLAP

    def __post_init__(self) -> None:
        check_tiling(self.tile_size, self.tile_overlap)

    @abstractmethod
    def load(self, model: FLAVR) -> Runner:
        """Prepare ``model`` (an fp32 network in eval mode; it may be moved or converted) and return the runner.

        Raises ValueError with the fix when this backend cannot run here (no GPU, a missing package).
        """


class _CpuLane:
    """One pass at a time on the CPU: a single pass already uses every core."""

    def __init__(self, dtype: torch.dtype) -> None:
        self.dtype = dtype

    def run(self, frames: Tensor, compute: Callable[[Tensor], Tensor]) -> Tensor:
        return compute(frames.to(self.dtype))


def pinned_empty(shape: torch.Size) -> Tensor:
    """An uninitialised float32 host tensor in page-locked memory (fast, asynchronous copies to a GPU)."""
    return torch.empty(shape, dtype=torch.float32, pin_memory=True)


class _CudaLane:
    """One CUDA stream with its own pinned host buffers; lanes run concurrently.

    A lane keeps one input and one output buffer, replaced when the frame size changes,
    so page-locked memory stays bounded at one window's worth per lane.
    """

    def __init__(self, device: torch.device, dtype: torch.dtype) -> None:
        self.device = device
        self.dtype = dtype
        self.stream = torch.cuda.Stream(device)
        self._pinned: dict[str, Tensor] = {}

    def _host(self, role: str, shape: torch.Size) -> Tensor:
        """This lane's pinned buffer for ``role`` ("in" or "out"), reused while the shape stays."""
        buffer = self._pinned.get(role)
        if buffer is None or buffer.shape != shape:
            self._pinned.pop(role, None)  # the old buffer goes before the new one is allocated
            buffer = self._pinned[role] = pinned_empty(shape)
        return buffer

    def run(self, frames: Tensor, compute: Callable[[Tensor], Tensor]) -> Tensor:
        host_in = self._host("in", frames.shape)
        host_in.copy_(frames)
        # The device first: a stream context alone switches to the stream's device and, on leaving,
        # back to the thread's current device (GPU 0 in a fresh VapourSynth thread), creating a context there.
        with torch.cuda.device(self.device), torch.cuda.stream(self.stream):
            x = host_in.to(self.device, non_blocking=True).to(self.dtype)
            y = compute(x)
            host_out = self._host("out", y.shape)
            host_out.copy_(y, non_blocking=True)
            self.stream.synchronize()
        return host_out.clone()


class _OncePerShape:
    """``forward`` whose first call for each input shape runs alone.

    ``torch.compile`` (and cuDNN's autotuning) do their slow work on the first call of a
    shape; two lanes arriving together would both do it, as Dynamo does not recheck its
    cache after waiting for another compile.  Later calls of a shape run concurrently.
    """

    def __init__(self, forward: Forward) -> None:
        self._forward = forward
        self._ready: set[tuple[tuple[int, ...], torch.dtype]] = set()
        self._locks: dict[tuple[tuple[int, ...], torch.dtype], threading.Lock] = {}
        self._guard = threading.Lock()

    def __call__(self, x: Tensor, mean: Tensor) -> Tensor:
        key = (tuple(x.shape), x.dtype)
        if key in self._ready:
            return self._forward(x, mean)
        with self._guard:
            lock = self._locks.setdefault(key, threading.Lock())
        with lock:
            out = self._forward(x, mean)
            self._ready.add(key)
        return out


class Runner:
    """A loaded backend: ``runner(frames)`` gives FLAVR's in-between frames (see the module docstring).

    Up to ``lanes`` calls run at once (each CUDA lane has its own stream, so VapourSynth's
    parallel requests keep a GPU busy); further calls wait.  ``tile_for(height, width)``
    gives the tile side for a frame size, or ``None`` for whole frames; it is asked once per
    size, so a size always runs with the same tiles (and compiled shapes stay few).
    """

    def __init__(
        self,
        forward: Forward,
        *,
        n_outputs: int,
        device: torch.device,
        dtype: torch.dtype,
        lanes: int = 1,
        tile_for: Callable[[int, int], int | None] = lambda height, width: None,
        tile_overlap: int = DEFAULT_OVERLAP,
    ) -> None:
        self.n_outputs = n_outputs
        self.device = device
        self.dtype = dtype
        self.tile_for = tile_for
        self.tile_overlap = tile_overlap
        self._forward = _OncePerShape(forward)
        self._tiles: dict[tuple[int, int], int | None] = {}
        self._lanes: queue.Queue[_CpuLane | _CudaLane] = queue.Queue()
        for _ in range(lanes):
            self._lanes.put(_CudaLane(device, dtype) if device.type == "cuda" else _CpuLane(dtype))

    @contextmanager
    def _lane(self) -> Iterator[_CpuLane | _CudaLane]:
        lane = self._lanes.get()
        try:
            yield lane
        finally:
            self._lanes.put(lane)

    def _compute(self, x: Tensor) -> Tensor:
        size = (x.shape[-2], x.shape[-1])
        if size not in self._tiles:
            self._tiles.setdefault(size, self.tile_for(*size))  # the first answer wins, even in a race
        tile = self._tiles[size]
        mean = channel_mean(x)
        if tile is None:
            return self._forward(x, mean).float()
        return run_tiled(lambda part: self._forward(part, mean), x, tile, self.tile_overlap)

    @torch.inference_mode()
    def __call__(self, frames: Tensor) -> Tensor:
        """FLAVR's frames for ``frames``; a failure of the device or library is a RuntimeError saying what to do."""
        try:
            with self._lane() as lane:
                return lane.run(frames, self._compute)
        except torch.cuda.OutOfMemoryError:
            height, width = frames.shape[-2:]
            raise RuntimeError(
                f"flavr: {self.device} ran out of memory on a {width}x{height} window; set tile_size (e.g. 512) "
                "to run it in tiles, close other programs on the GPU, or lower core.num_threads"
            ) from None
        except Exception as exc:  # a CUDA, cuDNN or TensorRT error: one line the user can act on
            raise RuntimeError(
                f"flavr: the network failed on {self.device} ({one_line(exc)}); check the GPU with "
                "`python -m vsflavr info`, or try backend='torch' or device='cpu'"
            ) from exc
