"""Operations per pass, counted from layer shapes, against counts done by hand."""

from __future__ import annotations

import pytest
import torch
from conftest import TINY_WIDTHS
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from vsflavr.flops import module_flop, pass_flop
from vsflavr.network import FLAVR


def test_a_small_network_by_hand() -> None:
    network = nn.Sequential(
        nn.Conv3d(3, 4, kernel_size=3, padding=1),  # (1, 3, 2, 8, 8) -> (1, 4, 2, 8, 8)
        nn.ConvTranspose3d(4, 5, kernel_size=(3, 4, 4), stride=(1, 2, 2), padding=1),  # -> (1, 5, 2, 16, 16)
        nn.ReLU(),
        nn.Conv3d(5, 6, kernel_size=1, groups=1, bias=False),  # -> (1, 6, 2, 16, 16)
        nn.Flatten(),
        nn.Linear(6 * 2 * 16 * 16, 7),
    )
    conv = 2 * (4 * 2 * 8 * 8) * (3 * 27)  # each output value: 3 channels x 3x3x3 multiply-adds
    transposed = 2 * (4 * 2 * 8 * 8) * (5 * 48)  # each input value spread over 5 channels x 3x4x4
    pointwise = 2 * (6 * 2 * 16 * 16) * 5
    linear = 2 * 7 * (6 * 2 * 16 * 16)
    assert module_flop(network, [(1, 3, 2, 8, 8)]) == conv + transposed + pointwise + linear
    assert network[0].weight.device.type == "cpu"  # the network itself is left as it was


def test_grouped_convolution() -> None:
    network = nn.Conv2d(8, 8, kernel_size=3, padding=1, groups=4)
    assert module_flop(network, [(2, 8, 5, 5)]) == 2 * (2 * 8 * 5 * 5) * (2 * 9)


def test_flavr_pass_matches_torch_counter_and_scales_with_area() -> None:
    torch.manual_seed(0)
    model = FLAVR(3, widths=TINY_WIDTHS).eval()
    counted = pass_flop(model, 48, 32)
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(torch.rand(1, 4, 3, 32, 48))
    assert counted == counter.get_total_flops()  # torch counts the same layers the same way
    # Every layer's size is a fixed fraction of the frame, except the gates' 1x1x1 convolutions on pooled values.
    larger = pass_flop(model, 96, 64)
    assert larger == pytest.approx(4 * counted, rel=1e-3) and larger != 4 * counted


def test_official_architecture_is_about_8_mflop_per_pixel() -> None:
    # The stem alone, by hand: 64 channels x 4 frames x (H/2 x W/2) outputs, 3 x 3x7x7 multiply-adds each.
    stem = 2 * (64 * 4 * 128 * 128) * (3 * 3 * 7 * 7)
    total = pass_flop(FLAVR(1), 256, 256)
    assert total > stem and 8.0e6 < total / (256 * 256) < 8.3e6
