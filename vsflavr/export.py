"""Export a FLAVR checkpoint to ONNX and check the file against the PyTorch network.

The ONNX graph has the 4-D layout that vs-mlrt (``vsmlrt.inference``, ``core.ort.Model``,
``core.trt.Model``) feeds a network: one input ``frames`` of shape (1, 12, H, W), the four
RGB frames I-1, I0, I1, I2 in 0..1 stacked along the channels (R, G, B of I-1, then of I0,
...), and one output ``interpolated`` of shape (1, 3 * (multi - 1), H, W), the in-between
frames in time order, each R, G, B, unclamped.  H and W must be multiples of 8; they are
dynamic unless a fixed size is asked for.

This module never imports VapourSynth.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
import onnxruntime
import onnxscript  # noqa: F401 - torch.onnx.export needs it; importing it here fails early with its name
import torch
from torch import Tensor, nn
from torch.export import Dim
from tqdm import tqdm

from .checkpoint import Checkpoint
from .frames import ALIGN
from .network import FLAVR

__all__ = [
    "DEFAULT_OPSET",
    "INPUT_NAME",
    "OUTPUT_NAME",
    "TOLERANCE",
    "VERIFY_SIZES",
    "PlanarFLAVR",
    "Verification",
    "export_onnx",
    "verify_onnx",
]

INPUT_NAME = "frames"
OUTPUT_NAME = "interpolated"
DEFAULT_OPSET = 18
"""The lowest opset PyTorch's exporter writes itself (it cannot convert FLAVR's graph to 17)."""

TOLERANCE = {"fp32": 1e-4, "fp16": 1e-2}
"""Largest accepted difference (0..1 scale) between the ONNX file's output and the fp32 PyTorch
network on random frames.  fp16 rounds every layer to 11 significant bits, so its bound is
looser: 1e-2 is 2.5 steps of an 8-bit video."""

_TRACE_SIZE = (64, 64)
"""Frame size (H, W) used to trace a dynamic-size export."""

VERIFY_SIZES = ((64, 96), (72, 136))
"""Frame sizes (H, W) at which a dynamic-size export is checked: neither is the traced size."""


class PlanarFLAVR(nn.Module):
    """FLAVR with vs-mlrt's NCHW layout: (1, 4 * 3, H, W) in, (1, 3 * (multi - 1), H, W) out."""

    def __init__(self, model: FLAVR) -> None:
        super().__init__()
        self.model = model

    def forward(self, frames: Tensor) -> Tensor:
        batch, _, height, width = frames.shape
        out = self.model(frames.view(batch, self.model.n_inputs, 3, height, width))
        return out.reshape(batch, -1, height, width)


@dataclass(frozen=True)
class Verification:
    """The ONNX file's largest difference from the PyTorch network at one frame size."""

    height: int
    width: int
    max_abs_diff: float


def export_onnx(
    checkpoint: Checkpoint,
    out: str | Path,
    *,
    fp16: bool = False,
    size: tuple[int, int] | None = None,
    opset: int = DEFAULT_OPSET,
) -> None:
    """Write ``checkpoint``'s network to ``out`` as ONNX.

    Args:
        checkpoint: a loaded checkpoint (:func:`vsflavr.checkpoint.load_checkpoint`).
        out: the .onnx file to write.
        fp16: weights, input and output in float16 (feed it RGBH clips); otherwise float32.
        size: a fixed (height, width), both multiples of 8; ``None`` keeps them dynamic.
        opset: the ONNX opset to write.
    """
    if size is not None and (size[0] % ALIGN or size[1] % ALIGN or min(size) <= 0):
        raise ValueError(f"height and width must be positive multiples of {ALIGN}, got {size[0]}x{size[1]}")
    dtype = torch.float16 if fp16 else torch.float32
    # A copy: the checkpoint's network stays fp32 for the check against it.
    module = PlanarFLAVR(copy.deepcopy(checkpoint.model).to(dtype)).eval()
    height, width = size or _TRACE_SIZE
    example = torch.rand(1, 3 * checkpoint.architecture.n_inputs, height, width, dtype=dtype)
    dynamic = None
    if size is None:
        # H = 8 * h, W = 8 * w: the exporter proves the network needs nothing more.
        dynamic = {"frames": {2: ALIGN * Dim("height_div8", min=1), 3: ALIGN * Dim("width_div8", min=1)}}
    with _quiet("torch.onnx"):
        torch.onnx.export(
            module,
            (example,),
            str(out),
            input_names=[INPUT_NAME],
            output_names=[OUTPUT_NAME],
            dynamic_shapes=dynamic,
            opset_version=opset,
            dynamo=True,
            external_data=False,
            verbose=False,
        )
    # When the exporter cannot convert its graph to the opset asked for, it only warns and keeps its own.
    written = next(o.version for o in onnx.load(str(out), load_external_data=False).opset_import if o.domain == "")
    if written != opset:
        Path(out).unlink()
        raise ValueError(
            f"PyTorch's exporter could not write opset {opset} (it wrote {written}); "
            f"use an opset from {DEFAULT_OPSET} to {onnx.defs.onnx_opset_version()}"
        )


@contextmanager
def _quiet(name: str) -> Iterator[None]:
    """Hide the warnings of logger ``name`` (the exporter's notes about torchvision ops it skips) for a while."""
    log = logging.getLogger(name)
    level = log.level
    log.setLevel(logging.ERROR)
    try:
        yield
    finally:
        log.setLevel(level)


def verify_onnx(
    path: str | Path,
    checkpoint: Checkpoint,
    sizes: Sequence[tuple[int, int]],
    *,
    seed: int = 0,
    progress: bool = False,
) -> list[Verification]:
    """Run the ONNX file in onnxruntime (CPU) and the fp32 network in PyTorch on the same random frames.

    Returns the largest absolute difference at each (height, width) in ``sizes``.  The
    input's precision (fp32 or fp16) is read from the file.
    """
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    input_dtype = np.float16 if session.get_inputs()[0].type == "tensor(float16)" else np.float32
    module = PlanarFLAVR(checkpoint.model).eval()
    generator = torch.Generator().manual_seed(seed)
    results = []
    for height, width in tqdm(sizes, desc="checking the ONNX file", unit="size", disable=not progress):
        shape = (1, 3 * checkpoint.architecture.n_inputs, height, width)
        frames = torch.rand(shape, generator=generator).numpy().astype(input_dtype)
        with torch.inference_mode():
            expected = module(torch.from_numpy(frames).float()).numpy()
        (got,) = session.run([OUTPUT_NAME], {INPUT_NAME: frames})
        results.append(Verification(height, width, float(np.abs(got.astype(np.float32) - expected).max())))
    return results
