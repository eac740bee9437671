"""The eager PyTorch backend: the network as it is, on one device, in one precision."""

from __future__ import annotations

import threading

import torch

from ..network import FLAVR

__all__ = ["EagerBackend"]


class EagerBackend:
    """Runs FLAVR eagerly on ``device`` with weights and activations in ``dtype``.

    Calls are serialised: one forward pass at a time keeps memory bounded, and on the
    CPU a single pass already uses every core.
    """

    def __init__(self, model: FLAVR, device: torch.device, dtype: torch.dtype) -> None:
        self.device = device
        self.dtype = dtype
        self.n_outputs = model.n_outputs
        self._model = model.to(device=device, dtype=dtype).eval().requires_grad_(False)
        self._lock = threading.Lock()

    @torch.inference_mode()
    def __call__(self, frames: torch.Tensor) -> torch.Tensor:
        with self._lock:
            x = frames.to(self.device, self.dtype, non_blocking=True)
            return self._model(x).float().cpu()
