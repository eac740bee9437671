"""The CPU backend: PyTorch on the CPU, in fp32 or bf16, optionally compiled with inductor."""

from __future__ import annotations

import logging
import platform
import shutil
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Literal

import torch
from torch import Tensor, nn

from ..network import FLAVR
from .base import Backend, Forward, Runner

__all__ = ["CPUBackend", "cpu_description", "cpu_flags", "cpu_supports_bf16", "onednn_conv3d"]

logger = logging.getLogger("vsflavr")

_BF16_FLAGS = {"avx512_bf16", "amx_bf16"}


@cache
def cpu_flags() -> frozenset[str]:
    """The CPU's feature flags as Linux lists them (``avx2``, ``avx512f``, ``amx_bf16``...); empty elsewhere."""
    return frozenset(flag for line in _cpuinfo().splitlines() if line.startswith("flags") for flag in line.split()[2:])


@cache
def _cpuinfo() -> str:
    try:
        return Path("/proc/cpuinfo").read_text()
    except OSError:
        return ""


_SPEED_FLAGS = ("avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_int8")
"""The CPU features that decide which CPU path is fastest, named by :func:`cpu_description`."""


def cpu_description() -> str:
    """The CPU's model name, cores torch uses, and which of AVX2, AVX-512, avx512_bf16 and AMX it has."""
    names = [line.split(":", 1)[1].strip() for line in _cpuinfo().splitlines() if line.startswith("model name")]
    flags = [flag for flag in _SPEED_FLAGS if flag in cpu_flags()]
    return f"{names[0] if names else platform.processor() or 'unknown'}, {torch.get_num_threads()} threads, " + (
        " ".join(flags) or "none of " + " ".join(_SPEED_FLAGS)
    )


@cache
def cpu_supports_bf16() -> bool:
    """Whether this CPU computes bf16 natively (x86 ``avx512_bf16`` or AMX), so bf16 is faster than fp32."""
    return torch.backends.mkldnn.is_available() and bool(cpu_flags() & _BF16_FLAGS)


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
        return Runner(
            self.forward(model),
            n_outputs=model.n_outputs,
            device=torch.device("cpu"),
            dtype=torch.float32,
            tile_for=lambda height, width: self.tile_size,
            tile_overlap=self.tile_overlap,
        )

    def forward(self, model: FLAVR) -> Forward:
        """``model`` (moved to the CPU, possibly changed in place) as the forward function a runner calls."""
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
        if not self.compile:
            model = onednn_conv3d(model)
        network: Forward = model
        if self.compile:
            network = torch.compile(model, dynamic=False, options={"freezing": True})
        return _autocast_bf16(network) if bf16 else network


_SLOW_CONV3D_LIMIT = 20480
"""PyTorch runs a batch-of-one 3D convolution with a kernel of 3 or less in its reference ``slow_conv3d``
when channels x time x height is at most this (aten/src/ATen/native/Convolution.cpp, ``use_mkldnn``)."""


class _OneDNNConv3d(nn.Conv3d):
    """A Conv3d that calls oneDNN where PyTorch would pick ``slow_conv3d`` (see :func:`onednn_conv3d`)."""

    def forward(self, x: Tensor) -> Tensor:
        if (
            x.dtype != torch.float32
            or self.weight.dtype != torch.float32
            or torch.is_autocast_enabled("cpu")
            or x.shape[0] != 1
            or x.shape[1] * x.shape[2] * x.shape[3] > _SLOW_CONV3D_LIMIT
        ):
            return super().forward(x)
        return torch.ops.aten.mkldnn_convolution(
            x, self.weight, self.bias, self.padding, self.stride, self.dilation, self.groups
        )


def onednn_conv3d(model: FLAVR) -> FLAVR:
    """``model`` (changed in place) with its fp32 3x3x3 convolutions in oneDNN where PyTorch would not use it.

    For a batch of one, PyTorch picks its reference ``slow_conv3d`` instead of oneDNN when
    channels x time x height is small (at most 20480) and the kernel is 3x3x3: most layers of
    the built-in model at 640x272 (91 % of its fp32 time there, torch.profiler) and the deep
    layers of the official one on small frames.  oneDNN gives the same sums (within 1e-6)
    several times faster there.  Larger layers already run in oneDNN, 1x1x1 gates cost nothing,
    and bf16 (autocast) always runs in oneDNN: those are left as they are.
    """
    if not torch.backends.mkldnn.is_available():
        return model
    for module in model.modules():
        if (
            type(module) is nn.Conv3d
            and module.kernel_size != (1, 1, 1)
            and module.padding_mode == "zeros"
            and isinstance(module.padding, tuple)
        ):
            module.__class__ = _OneDNNConv3d
    return model


def _autocast_bf16(network: Forward) -> Forward:
    """``network`` with its convolutions in bf16 (weights stay fp32; autocast keeps sums and gates in fp32)."""

    def forward(x: Tensor, mean: Tensor) -> Tensor:
        with torch.autocast("cpu", dtype=torch.bfloat16):
            return network(x, mean)

    return forward
