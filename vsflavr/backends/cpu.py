"""The CPU backend: PyTorch on the CPU, in fp32 or bf16, optionally compiled with inductor."""

from __future__ import annotations

import logging
import shutil
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Literal

import torch
from torch import Tensor

from ..network import FLAVR
from .base import Backend, Forward, Runner

__all__ = ["CPUBackend", "cpu_supports_bf16"]

logger = logging.getLogger("vsflavr")

_BF16_FLAGS = {"avx512_bf16", "amx_bf16"}


@cache
def cpu_supports_bf16() -> bool:
    """Whether this CPU computes bf16 natively (x86 ``avx512_bf16`` or AMX), so bf16 is faster than fp32."""
    try:
        cpuinfo = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    flags = {flag for line in cpuinfo.splitlines() if line.startswith("flags") for flag in line.split()}
    return torch.backends.mkldnn.is_available() and bool(flags & _BF16_FLAGS)


def _has_cpp_compiler() -> bool:
    return any(shutil.which(name) for name in ("g++", "clang++", "c++"))


@dataclass(frozen=True, kw_only=True)
class CPUBackend(Backend):
    """FLAVR on the CPU.

    Attributes:
        precision: ``"fp32"`` (same output as the official code within 1e-4) or ``"bf16"``
            (about 2x faster on CPUs with avx512_bf16 or AMX, output within 2e-2; on other
            CPUs it falls back to fp32 with a logged message).
        compile: compile the network with ``torch.compile`` (inductor, weights frozen).  The
            first frame of each size then takes a minute or more, and later ones run faster.
            Needs a C++ compiler (g++ or clang++).
    """

    precision: Literal["fp32", "bf16"] = "fp32"
    compile: bool = False

    def load(self, model: FLAVR) -> Runner:
        if self.compile and not _has_cpp_compiler():
            raise ValueError(
                "backend='compile' on the CPU needs a C++ compiler (g++ or clang++) on PATH; "
                "install one, or use backend='auto'"
            )
        bf16 = self.precision == "bf16"
        if bf16 and not cpu_supports_bf16():
            logger.warning("vsflavr: this CPU has no native bf16 (avx512_bf16 or AMX); running in fp32 instead")
            bf16 = False
        # Channels-last activations measured no faster here, so the network keeps its layout.
        model = model.to("cpu", torch.float32).eval().requires_grad_(False)
        network: Forward = model
        if self.compile:
            network = torch.compile(model, dynamic=False, options={"freezing": True})
        forward = _autocast_bf16(network) if bf16 else network
        return Runner(
            forward,
            n_outputs=model.n_outputs,
            device=torch.device("cpu"),
            dtype=torch.float32,
            tile_for=lambda height, width: self.tile_size,
            tile_overlap=self.tile_overlap,
        )


def _autocast_bf16(network: Forward) -> Forward:
    """``network`` with its convolutions in bf16 (weights stay fp32; autocast keeps sums and gates in fp32)."""

    def forward(x: Tensor, mean: Tensor) -> Tensor:
        with torch.autocast("cpu", dtype=torch.bfloat16):
            return network(x, mean)

    return forward
