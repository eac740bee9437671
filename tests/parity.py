"""Build checkpoints by the recipe of the official parity fixtures (tests/data/flavr_*.json)."""

from __future__ import annotations

import json
import math
import zlib
from pathlib import Path

import numpy as np
import torch

DATA = Path(__file__).parent / "data"


def fixture(name: str) -> tuple[dict, dict[str, np.ndarray]]:
    """The fixture's description (json) and arrays (npz): inputs (4,B,3,H,W), outputs (n,B,3,H,W)."""
    meta = json.loads((DATA / f"{name}.json").read_text())
    with np.load(DATA / f"{name}.npz") as arrays:
        return meta, {k: arrays[k] for k in arrays.files}


def recipe_state_dict(meta: dict) -> dict[str, torch.Tensor]:
    """Every tensor of the official checkpoint, rebuilt from its key and the fixture's seed."""
    state = {}
    for key, shape in meta["checkpoint_keys"].items():
        name = key.removeprefix("module.")
        rng = np.random.default_rng([meta["seed"], zlib.crc32(name.encode("utf-8"))])
        a = rng.standard_normal(shape, dtype=np.float64).astype(np.float32)
        if len(shape) > 1:
            a *= np.float32(math.sqrt(2.0 / math.prod(shape[1:])))
        else:
            a *= np.float32(0.1)
        state[key] = torch.from_numpy(a)
    return state


def write_official_checkpoint(meta: dict, path: Path) -> Path:
    """Save the recipe weights the way the official FLAVR_*.pth files are saved."""
    torch.save({"epoch": 1, "state_dict": recipe_state_dict(meta), "lr": 2e-4}, path)
    return path
