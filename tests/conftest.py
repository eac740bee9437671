"""Shared fixtures: small checkpoints made here, and real footage opened with a real source plugin."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch
import vapoursynth as vs

sys.path.insert(0, str(Path(__file__).parent))

from vsflavr import weights
from vsflavr.checkpoint import save_checkpoint
from vsflavr.evaluate import open_rgbs
from vsflavr.network import FLAVR

DATA = Path(__file__).parent / "data"
BIKES = DATA / "bikes_160x68.mp4"
"""bikes.mp4 from the shared footage scaled to 160x68 (not a multiple of 8): 250 frames at 25 fps,
hard cuts into frames 30, 76, 137, 187 and 242, fast motion (not cuts) at 73-75 and 99-100."""
BIKES_CUTS_INTO = (30, 76, 137, 187, 242)

TINY_WIDTHS = (8, 16, 32, 64)


def make_checkpoint(path: Path, n_outputs: int, seed: int, **kwargs: object) -> Path:
    """A narrow FLAVR with random (seeded) weights saved in the official layout; fast on a CPU."""
    torch.manual_seed(seed)
    save_checkpoint(path, FLAVR(n_outputs, widths=TINY_WIDTHS, **kwargs))
    return path


@pytest.fixture(scope="session")
def tiny_2x(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_checkpoint(tmp_path_factory.mktemp("weights") / "tiny_2x.pth", 1, seed=1)


@pytest.fixture(scope="session")
def tiny_8x(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_checkpoint(tmp_path_factory.mktemp("weights") / "tiny_8x.pth", 7, seed=2)


def open_bikes(length: int | None = None) -> vs.VideoNode:
    """The test footage, decoded by BestSource and converted to RGBS like a user script would."""
    return open_rgbs(BIKES, length)


@pytest.fixture
def bikes() -> vs.VideoNode:
    return open_bikes()


@pytest.fixture
def places(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    """Empty weights places wired in by env vars and monkeypatch: ``env`` (VSFLAVR_WEIGHTS_DIR),
    ``data`` (the user data dir), ``repo`` (the checkout's weights/), and ``builtin`` and ``builtin8``,
    the built-in 2x and 8x model paths with no file; auto-download off."""
    dirs = {name: tmp_path / name for name in ("env", "data", "repo")}
    monkeypatch.setenv(weights.ENV_WEIGHTS_DIR, str(dirs["env"]))
    monkeypatch.setenv("XDG_DATA_HOME", str(dirs["data"]))
    monkeypatch.setattr(weights, "REPO_WEIGHTS_DIR", dirs["repo"])
    for grid in weights.BUILTIN_MODELS:
        monkeypatch.setitem(weights.BUILTIN_MODELS, grid, tmp_path / "models" / f"flavr_s_{grid}x.pth")
    monkeypatch.delenv(weights.ENV_AUTO_DOWNLOAD, raising=False)
    dirs["data"] = dirs["data"] / "vsflavr" / "weights"
    dirs["builtin"], dirs["builtin8"] = weights.BUILTIN_MODELS[2], weights.BUILTIN_MODELS[8]
    return dirs
