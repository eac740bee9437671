"""Measure how far bf16 and tiles move FLAVR's output from the fp32 whole-frame result (docs/precision-and-tiles.md).

    PYTHONPATH=. python tools/measure_precision.py

Networks: the official architecture with the parity fixtures' weights (tests/data/flavr_2x.json
and flavr_8x.json recipes) and the built-in model.  Inputs: the parity fixtures' inputs, and a
window of the bundled footage (tests/data/bikes_160x68.mp4, frames 10-13, padded to 160x72).
bf16 is the CPU backend's (autocast; on CPUs without native bf16 it runs fp32 and shows 0).
Tiles: 64 px with 16 px overlap, compared away from an 8 px border.  Prints max and mean
absolute differences on the 0..1 scale.
"""

from __future__ import annotations

import importlib
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

from vsflavr.backends import CPUBackend, cpu_supports_bf16
from vsflavr.checkpoint import load_checkpoint
from vsflavr.evaluate import open_rgbs
from vsflavr.frames import pad_to_multiple
from vsflavr.weights import BUILTIN_MODELS

ROOT = Path(__file__).resolve().parents[1]


def footage_window(first: int = 10) -> torch.Tensor:
    clip = open_rgbs(ROOT / "tests" / "data" / "bikes_160x68.mp4", first + 4)
    planes = [np.stack([np.asarray(clip.get_frame(i)[p]) for p in range(3)]) for i in range(first, first + 4)]
    return pad_to_multiple(torch.from_numpy(np.stack(planes))).unsqueeze(0)


def diff(a: torch.Tensor, b: torch.Tensor, border: int = 0) -> str:
    d = (a - b).abs()
    if border:
        d = d[..., border:-border, border:-border]
    return f"max {d.max().item():.2g}  mean {d.mean().item():.2g}"


def main() -> None:
    print(f"torch {torch.__version__}, native CPU bf16: {cpu_supports_bf16()}, threads {torch.get_num_threads()}")
    footage = footage_window()
    sys.path.insert(0, str(ROOT / "tests"))
    parity = importlib.import_module("parity")  # the fixtures' weight recipe
    with tempfile.TemporaryDirectory() as tmp:
        networks = {}
        for name in ("flavr_2x", "flavr_8x"):
            meta, arrays = parity.fixture(name)
            path = parity.write_official_checkpoint(meta, Path(tmp) / f"{name}.pth")
            inputs = torch.from_numpy(arrays["inputs"]).transpose(0, 1).contiguous()  # (B, 4, 3, H, W)
            networks[f"official {name} (parity weights)"] = (path, inputs)
        networks["built-in flavr_s_2x"] = (BUILTIN_MODELS[2], None)
        for label, (path, inputs) in networks.items():
            model = load_checkpoint(path).model
            fp32 = CPUBackend(precision="fp32").load(model)
            bf16 = CPUBackend(precision="bf16").load(load_checkpoint(path).model)
            tiled = CPUBackend(precision="fp32", tile_size=64, tile_overlap=16).load(load_checkpoint(path).model)
            if inputs is not None:
                print(f"{label}, parity inputs {tuple(inputs.shape)}: bf16 vs fp32 {diff(bf16(inputs), fp32(inputs))}")
            whole = fp32(footage)
            print(f"{label}, footage 160x72: bf16 vs fp32 {diff(bf16(footage), whole)}")
            print(f"{label}, footage 160x72: tiles 64/16 vs whole {diff(tiled(footage), whole, border=8)}")


if __name__ == "__main__":
    main()
