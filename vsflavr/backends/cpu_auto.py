"""``backend="auto"`` on the CPU: PyTorch or OpenVINO, whichever measured faster for the model and the CPU.

The rule, from ``python -m vsflavr bench`` runs (2 cores each, ratios within one run; the figures
and commands are in docs/performance.md):

- The built-in model (or any network narrower than the official one): OpenVINO.  On an AMD EPYC
  (Zen 5, AVX-512 with avx512_bf16, no AMX) at 640x272, OpenVINO f32 ran 8.9x the official way
  (PyTorch fp32 eager) and OpenVINO bf16 2.5x PyTorch bf16; on an AVX2-only EPYC the issue that
  asked for this backend measured OpenVINO f32 at 6.4x the official way.
- The official architecture: OpenVINO on CPUs with AVX-512 (the Zen 5 above at 256x256: f32 1.3x
  PyTorch fp32, bf16 1.34x PyTorch bf16; the issue's Xeon with AMX: bf16 2.39x the official way
  against 1.9-2.0x for PyTorch bf16), PyTorch on CPUs without (the issue's AVX2-only EPYC:
  OpenVINO f32 0.88x PyTorch fp32).
- Without the ``openvino`` package: PyTorch.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Literal

from ..network import FLAVR, OFFICIAL_WIDTHS
from .base import Backend, Runner
from .cpu import CPUBackend, cpu_flags
from .openvino import OpenVINOBackend, openvino_available

__all__ = ["AutoCPUBackend"]

logger = logging.getLogger("vsflavr")


@dataclass(frozen=True, kw_only=True)
class AutoCPUBackend(Backend):
    """The CPU backend that :meth:`choose` picks for the network at hand (see the module docstring).

    Attributes:
        precision: ``"fp32"`` or ``"bf16"``, passed on to the chosen backend.
    """

    precision: Literal["fp32", "bf16"] = "fp32"

    def choose(self, model: FLAVR) -> tuple[Backend, str]:
        """The backend for ``model`` on this CPU, and why, in words."""
        tiling = {"tile_size": self.tile_size, "tile_overlap": self.tile_overlap}
        torch_backend = CPUBackend(precision=self.precision, **tiling)
        if not openvino_available():
            return (
                torch_backend,
                "PyTorch: OpenVINO, faster on most CPUs, is not installed (pip install vsflavr[openvino])",
            )
        openvino = OpenVINOBackend(precision=self.precision, **tiling)
        if sum(model.widths) < sum(OFFICIAL_WIDTHS):
            return openvino, "OpenVINO: for this narrow network it measured 6-9x the official code, 2x PyTorch bf16"
        if "avx512f" in cpu_flags():
            return openvino, "OpenVINO: on CPUs with AVX-512 it measured 1.15-1.35x PyTorch on the official network"
        return torch_backend, "PyTorch: on CPUs without AVX-512 OpenVINO measured 0.88x PyTorch on the official network"

    def load(self, model: FLAVR) -> Runner:
        backend, why = self.choose(model)
        logger.info("vsflavr: backend %s", why)
        return backend.load(model)
