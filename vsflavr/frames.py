"""VideoFrame <-> tensor conversion, and the padding FLAVR needs (H and W multiples of 8)."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
import vapoursynth as vs

__all__ = ["ALIGN", "frame_to_tensor", "pad_to_multiple", "write_tensor"]

ALIGN = 8
"""FLAVR halves H and W three times, so both must be multiples of 8."""


def frame_to_tensor(frame: vs.VideoFrame) -> torch.Tensor:
    """A float RGB frame (RGBS or RGBH) as a (3, H, W) float32 CPU tensor; NaN becomes 0 and +-inf 1 and 0.

    A non-finite pixel would otherwise reach every pixel of the interpolated frames through the
    network's mean and gates.
    """
    planes = np.stack([np.asarray(frame[p]) for p in range(3)])
    return torch.from_numpy(planes.astype(np.float32, copy=False)).nan_to_num_(0.0, 1.0, 0.0)


def write_tensor(tensor: torch.Tensor, template: vs.VideoFrame) -> vs.VideoFrame:
    """A copy of ``template`` (size, format, properties) whose planes hold ``tensor`` (3, H, W).

    Values are written as they are: :func:`vsflavr.formats.from_network` clamps them to what the clip's format holds.
    """
    frame = template.copy()
    data = tensor.numpy()
    for p in range(3):
        np.copyto(np.asarray(frame[p]), data[p], casting="unsafe")
    return frame


def pad_to_multiple(frames: torch.Tensor, multiple: int = ALIGN) -> torch.Tensor:
    """Pad (..., H, W) on the right and bottom by edge replication so H and W are multiples of ``multiple``."""
    height, width = frames.shape[-2:]
    pad_h, pad_w = -height % multiple, -width % multiple
    if not pad_h and not pad_w:
        return frames
    flat = frames.reshape(-1, *frames.shape[-3:])
    padded = F.pad(flat, (0, pad_w, 0, pad_h), mode="replicate")
    return padded.reshape(*frames.shape[:-2], height + pad_h, width + pad_w)
