"""How much arithmetic one forward pass of a network is: floating-point operations counted from its layer shapes.

Only the layers that hold nearly all of FLAVR's work are counted: convolutions (2D and 3D),
transposed convolutions and linear layers, a multiply-add counting 2 operations (bias adds,
activations, gates' pooling and other element-wise work are left out: under 1 % of a pass).
The shapes come from a run of a copy of the network on PyTorch's ``meta`` device, which
computes shapes without allocating or computing anything, so counting a 4K pass takes
milliseconds.

This module never imports VapourSynth.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from .network import FLAVR

__all__ = ["layer_flop", "module_flop", "pass_flop"]

_CONVS = (nn.Conv1d, nn.Conv2d, nn.Conv3d)
_TRANSPOSED = (nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d)


def layer_flop(layer: nn.Module, x: Tensor, y: Tensor) -> int:
    """Operations of one call of ``layer`` with input ``x`` and output ``y``; 0 for a layer not counted.

    A convolution does, per output value, (in channels / groups) x kernel volume multiply-adds;
    a transposed convolution, per *input* value, (out channels / groups) x kernel volume (each
    input value is spread over a kernel-sized patch of the output); a linear layer, per output
    value, ``in_features``.
    """
    if isinstance(layer, _CONVS):
        return 2 * y.numel() * (layer.in_channels // layer.groups) * math.prod(layer.kernel_size)
    if isinstance(layer, _TRANSPOSED):
        return 2 * x.numel() * (layer.out_channels // layer.groups) * math.prod(layer.kernel_size)
    if isinstance(layer, nn.Linear):
        return 2 * y.numel() * layer.in_features
    return 0


def module_flop(module: nn.Module, input_shapes: Sequence[Sequence[int]]) -> int:
    """Operations of one forward call of ``module`` on float inputs of ``input_shapes`` (``module`` is left unchanged)."""
    meta = copy.deepcopy(module).to("meta")
    total = 0

    def count(layer: nn.Module, inputs: tuple[Tensor, ...], output: Tensor) -> None:
        nonlocal total
        total += layer_flop(layer, inputs[0], output)

    for layer in meta.modules():
        layer.register_forward_hook(count)
    with torch.no_grad():
        meta(*(torch.empty(*shape, device="meta") for shape in input_shapes))
    return total


def pass_flop(model: FLAVR, width: int, height: int) -> int:
    """Operations of one FLAVR pass (batch 1) on ``width`` x ``height`` frames (multiples of 8)."""
    return module_flop(model, [(1, model.n_inputs, 3, height, width), (1, 3, 1, 1, 1)])
