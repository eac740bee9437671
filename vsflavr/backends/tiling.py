"""Overlapping tiles for frames too large to run in one pass.

A frame is cut into tiles that overlap by at least ``overlap`` pixels; each tile runs
through the network on its own and the results are blended with linear ramps across
each overlap, so no seam shows.  The runner gives every tile the whole frame's channel
mean, so tiles are centred alike; they still differ a little from whole-frame output
because FLAVR's squeeze-and-excitation gates pool over the input a tile sees (docs/precision-and-tiles.md
has the measured difference).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

__all__ = ["TILE_ALIGN", "Span", "axis_weights", "check_tiling", "plan_axis", "run_tiled"]

TILE_ALIGN = 8
"""Tile sides are multiples of 8, like every frame FLAVR reads."""

Span = tuple[int, int]
"""(start, stop) of a tile along one axis."""


def check_tiling(tile_size: int | None, overlap: int) -> None:
    """Raise ValueError unless ``tile_size`` (None: no tiling) and ``overlap`` can be used."""
    if tile_size is not None and (
        isinstance(tile_size, bool) or not isinstance(tile_size, int) or tile_size < 64 or tile_size % TILE_ALIGN
    ):
        raise ValueError(f"tile_size must be a multiple of {TILE_ALIGN}, at least 64, or None; got {tile_size!r}")
    if isinstance(overlap, bool) or not isinstance(overlap, int) or overlap < 0:
        raise ValueError(f"tile_overlap must be an integer >= 0, got {overlap!r}")
    if tile_size is not None and 2 * overlap >= tile_size:
        raise ValueError(f"tile_overlap ({overlap}) must be less than half of tile_size ({tile_size})")


def plan_axis(size: int, tile: int, overlap: int) -> list[Span]:
    """Tiles of length ``tile`` covering ``0..size``, neighbours overlapping by ``overlap`` or more.

    Tiles are spread evenly, the first starting at 0 and the last ending at ``size``; a
    ``tile`` of at least ``size`` gives one tile.
    """
    if tile >= size:
        return [(0, size)]
    count = -(-(size - overlap) // (tile - overlap))
    step = (size - tile) / (count - 1)
    return [(start, start + tile) for start in (round(i * step) for i in range(count))]


def axis_weights(
    spans: list[Span], index: int, dtype: torch.dtype = torch.float32, device: torch.device | None = None
) -> Tensor:
    """Blend weights of tile ``index`` along one axis: 1 inside, a linear ramp across each overlap.

    Ramps run from the start of an overlap to its end, so in the overlap of two tiles the
    weights fall on one side as they rise on the other; there is no ramp at the frame's edge.
    The weights are made on ``device`` (default the CPU), with no copy from the host.
    """
    start, stop = spans[index]
    position = torch.arange(start, stop, dtype=dtype, device=device) + 0.5
    weights = torch.ones(stop - start, dtype=dtype, device=device)
    if index > 0:
        ramp_stop = spans[index - 1][1]
        weights = torch.minimum(weights, (position - start) / (ramp_stop - start))
    if index + 1 < len(spans):
        ramp_start = spans[index + 1][0]
        weights = torch.minimum(weights, (stop - position) / (stop - ramp_start))
    return weights


def run_tiled(forward: Callable[[Tensor], Tensor], frames: Tensor, tile: int, overlap: int) -> Tensor:
    """``forward`` applied tile by tile to ``frames`` (..., H, W) and blended; float32 on the frames' device."""
    height, width = frames.shape[-2:]
    rows, cols = plan_axis(height, tile, overlap), plan_axis(width, tile, overlap)
    # Made on the device once per call: a copy from pageable host memory would block the host per tile.
    row_weights = [axis_weights(rows, r, device=frames.device) for r in range(len(rows))]
    col_weights = [axis_weights(cols, c, device=frames.device) for c in range(len(cols))]
    out: Tensor | None = None
    total = torch.zeros(height, width, device=frames.device)
    for r, (y0, y1) in enumerate(rows):
        for c, (x0, x1) in enumerate(cols):
            weights = row_weights[r][:, None] * col_weights[c][None, :]
            result = forward(frames[..., y0:y1, x0:x1]).float()
            if out is None:
                out = torch.zeros(*result.shape[:-2], height, width, device=frames.device)
            out[..., y0:y1, x0:x1] += result * weights
            total[y0:y1, x0:x1] += weights
    assert out is not None
    return out / total
