"""The FLAVR network: a flow-free 3D-convolution U-Net for frame interpolation.

FLAVR (Kalluri et al., WACV 2023; reference code tarun005/FLAVR, Apache-2.0) reads
four frames (I-1, I0, I1, I2) and predicts, in one forward pass, all ``n_outputs``
frames between I0 and I1 at t = k / (n_outputs + 1), k = 1..n_outputs.

The encoder is an R3D-18 (torchvision's ``video.r3d_18`` layout) with a squeeze-and-
excitation gate after every residual block; the decoder is made of 3D transposed
convolutions with skip connections; a 1x1 2D convolution fuses the time axis and a
7x7 convolution produces the frames.  Module and parameter names follow the
reference code, so official checkpoints load without renaming (after the
``module.`` prefix of DataParallel is stripped).

This module never imports VapourSynth.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor, nn

__all__ = ["FLAVR", "OFFICIAL_BLOCKS", "OFFICIAL_WIDTHS", "Skip", "channel_mean"]

OFFICIAL_WIDTHS: tuple[int, int, int, int] = (64, 128, 256, 512)
OFFICIAL_BLOCKS: tuple[int, int, int, int] = (2, 2, 2, 2)

Skip = Literal["mean", "blend"]
"""What the network's output is added to.

``"mean"``: the per-sample channel mean of the input frames (the official model).
``"blend"``: the linear blend of I0 and I1 at each output's time t; the network
then only predicts a correction, which lets a narrow model learn far faster.
"""


def channel_mean(frames: Tensor) -> Tensor:
    """Per-sample, per-channel mean of ``(B, T, 3, H, W)`` frames over time and space, shaped (B, 3, 1, 1, 1)."""
    return frames.transpose(1, 2).mean(dim=(2, 3, 4), keepdim=True)


class SEGating(nn.Module):
    """Squeeze-and-excitation gate: scales each channel by a sigmoid of its global mean."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.attn_layer = nn.Sequential(nn.Conv3d(channels, channels, kernel_size=1, bias=True), nn.Sigmoid())

    def forward(self, x: Tensor) -> Tensor:
        return x * self.attn_layer(x.mean(dim=(2, 3, 4), keepdim=True))


def conv_builder(in_ch: int, out_ch: int, stride: int | tuple[int, int, int], bias: bool) -> nn.Conv3d:
    """A 3x3x3 convolution with padding 1 (torchvision's ``Conv3DSimple``)."""
    return nn.Conv3d(in_ch, out_ch, kernel_size=3, stride=stride, padding=1, bias=bias)


class BasicBlock(nn.Module):
    """Residual block of two 3x3x3 convolutions followed by an SE gate (``fg``)."""

    def __init__(self, in_ch: int, out_ch: int, stride: tuple[int, int, int], bias: bool) -> None:
        super().__init__()
        self.conv1 = nn.Sequential(conv_builder(in_ch, out_ch, stride, bias), nn.ReLU(inplace=True))
        self.conv2 = nn.Sequential(conv_builder(out_ch, out_ch, 1, bias))
        self.fg = SEGating(out_ch)
        self.relu = nn.ReLU(inplace=True)
        self.downsample: nn.Module | None = None
        if stride != (1, 1, 1) or in_ch != out_ch:
            self.downsample = nn.Sequential(nn.Conv3d(in_ch, out_ch, kernel_size=1, stride=stride, bias=False))

    def forward(self, x: Tensor) -> Tensor:
        residual = x if self.downsample is None else self.downsample(x)
        return self.relu(self.fg(self.conv2(self.conv1(x))) + residual)


class Encoder(nn.Module):
    """R3D-style encoder; returns the stem output and the output of each of the four stages."""

    def __init__(self, widths: tuple[int, ...], blocks: tuple[int, ...], bias: bool) -> None:
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv3d(3, widths[0], kernel_size=(3, 7, 7), stride=(1, 2, 2), padding=(1, 3, 3), bias=bias),
            nn.ReLU(inplace=False),
        )
        # Stage strides of the reference: stages 2 and 3 halve H and W, time is never strided.
        strides = ((1, 1, 1), (1, 2, 2), (1, 2, 2), (1, 1, 1))
        in_ch = widths[0]
        for index, (width, depth, stride) in enumerate(zip(widths, blocks, strides, strict=True), start=1):
            stage = [BasicBlock(in_ch, width, stride, bias)]
            stage += [BasicBlock(width, width, (1, 1, 1), bias) for _ in range(depth - 1)]
            self.add_module(f"layer{index}", nn.Sequential(*stage))
            in_ch = width

    def forward(self, x: Tensor) -> list[Tensor]:
        features = [self.stem(x)]
        for stage in (self.layer1, self.layer2, self.layer3, self.layer4):
            features.append(stage(features[-1]))
        return features


class Conv_3d(nn.Module):
    """3x3x3 convolution followed by an SE gate."""

    def __init__(self, in_ch: int, out_ch: int) -> None:
        super().__init__()
        self.conv = nn.Sequential(nn.Conv3d(in_ch, out_ch, kernel_size=3, padding=1, bias=True), SEGating(out_ch))

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(x)


class upConv3D(nn.Module):
    """Transposed 3D convolution doubling H and W, followed by an SE gate."""

    def __init__(self, in_ch: int, out_ch: int) -> None:
        super().__init__()
        self.upconv = nn.Sequential(
            nn.ConvTranspose3d(in_ch, out_ch, kernel_size=(3, 4, 4), stride=(1, 2, 2), padding=(1, 1, 1)),
            SEGating(out_ch),
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.upconv(x)


class Conv_2d(nn.Module):
    """Bias-free 1x1 2D convolution that fuses the time axis folded into channels."""

    def __init__(self, in_ch: int, out_ch: int) -> None:
        super().__init__()
        self.conv = nn.Sequential(nn.Conv2d(in_ch, out_ch, kernel_size=1, bias=False))

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(x)


class FLAVR(nn.Module):
    """FLAVR interpolation network (the reference ``UNet_3D_3D("unet_18", joinType="concat", upmode="transpose")``).

    Args:
        n_outputs: frames produced between I0 and I1, i.e. ``multi - 1``
            (1 for the official 2x checkpoint, 3 for 4x, 7 for 8x).
        widths: channels of the four encoder stages; the official model uses
            (64, 128, 256, 512), the built-in narrow model (16, 32, 64, 128).
        blocks: residual blocks per encoder stage; official (2, 2, 2, 2).
        encoder_bias: whether the encoder's 3x3x3 convolutions have a bias.  ``None``
            follows the reference: no bias for 2x, bias for 4x and 8x.
        n_inputs: input frames; always 4 for the official checkpoints.
        skip: what the output is added to, see :data:`Skip`.  ``"mean"`` for the
            official checkpoints.

    ``forward`` takes ``(B, n_inputs, 3, H, W)`` RGB frames in 0..1 (I-1, I0, I1, I2),
    with H and W multiples of 8, and returns ``(B, n_outputs, 3, H, W)``, unclamped.
    Its optional ``mean`` (B, 3, 1, 1, 1) is the per-channel mean the network centres its
    input on (and, with the ``"mean"`` skip, adds back); by default that of ``frames``.
    A tile of a larger frame passes the whole frame's mean, so tiles agree with each other.
    """

    def __init__(
        self,
        n_outputs: int = 1,
        *,
        widths: tuple[int, int, int, int] = OFFICIAL_WIDTHS,
        blocks: tuple[int, int, int, int] = OFFICIAL_BLOCKS,
        encoder_bias: bool | None = None,
        n_inputs: int = 4,
        skip: Skip = "mean",
    ) -> None:
        super().__init__()
        if n_outputs < 1:
            raise ValueError(f"n_outputs must be >= 1, got {n_outputs}")
        if len(widths) != 4 or len(blocks) != 4 or min(blocks) < 1:
            raise ValueError(f"need four stage widths and four block counts >= 1, got {widths}, {blocks}")
        if skip not in ("mean", "blend"):
            raise ValueError(f"skip must be 'mean' or 'blend', got {skip!r}")
        if encoder_bias is None:
            encoder_bias = n_outputs > 1
        self.n_outputs = n_outputs
        self.n_inputs = n_inputs
        self.widths = tuple(widths)
        self.blocks = tuple(blocks)
        self.encoder_bias = encoder_bias
        self.skip: Skip = skip

        w0, w1, w2, w3 = widths
        self.lrelu = nn.LeakyReLU(0.2, inplace=True)
        self.encoder = Encoder(self.widths, self.blocks, encoder_bias)
        # Decoder inputs are doubled by the concatenated skip connections.
        self.decoder = nn.Sequential(
            Conv_3d(w3, w2),
            upConv3D(w2 * 2, w1),
            upConv3D(w1 * 2, w0),
            Conv_3d(w0 * 2, w0),
            upConv3D(w0 * 2, w0),
        )
        self.feature_fuse = Conv_2d(w0 * n_inputs, w0)
        self.outconv = nn.Sequential(nn.ReflectionPad2d(3), nn.Conv2d(w0, 3 * n_outputs, kernel_size=7))

    def forward(self, frames: Tensor, mean: Tensor | None = None) -> Tensor:
        batch, _, _, height, width = frames.shape
        x = frames.transpose(1, 2)  # (B, 3, T, H, W)
        if mean is None:
            mean = channel_mean(frames)
        x_0, x_1, x_2, x_3, x_4 = self.encoder(x - mean)

        dx = self.lrelu(self.decoder[0](x_4))
        dx = self.lrelu(self.decoder[1](torch.cat([dx, x_3], dim=1)))
        dx = self.lrelu(self.decoder[2](torch.cat([dx, x_2], dim=1)))
        dx = self.lrelu(self.decoder[3](torch.cat([dx, x_1], dim=1)))
        dx = self.lrelu(self.decoder[4](torch.cat([dx, x_0], dim=1)))
        # Fold time into channels, frame-major: (B, C, T, H, W) -> (B, T*C, H, W).
        dx = dx.transpose(1, 2).reshape(batch, -1, height, width)
        out = self.outconv(self.lrelu(self.feature_fuse(dx)))
        out = out.view(batch, self.n_outputs, 3, height, width)

        if self.skip == "mean":
            return out + mean.transpose(1, 2)
        i0, i1 = frames[:, self.n_inputs // 2 - 1 : self.n_inputs // 2 + 1].unbind(dim=1)
        # Output k is at t = k / (n_outputs + 1) between I0 and I1.
        times = torch.arange(1, self.n_outputs + 1, device=out.device, dtype=out.dtype) / (self.n_outputs + 1)
        times = times.view(1, -1, 1, 1, 1)
        return out + (1 - times) * i0.unsqueeze(1) + times * i1.unsqueeze(1)
