"""The built-in model's training entry point runs end to end on a tiny synthetic clip."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pytest

from vsflavr.checkpoint import load_checkpoint

TRAIN_SCRIPT = Path(__file__).resolve().parents[1] / "tools" / "builtin" / "train.py"
FOOTAGE = Path(__file__).resolve().parent / "data" / "bikes_160x68.mp4"


def load_train_module():
    spec = importlib.util.spec_from_file_location("vsflavr_builtin_train", TRAIN_SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def write_moving_pattern(data_dir: Path, frames: int = 10, height: int = 40, width: int = 48) -> None:
    """A fetch_data.py-style cache with one clip: random texture panning 2 pixels per frame."""
    rng = np.random.default_rng(0)
    texture = rng.integers(0, 256, (height, width + 2 * frames, 3), dtype=np.uint8)
    clip = np.stack([texture[:, 2 * i : 2 * i + width] for i in range(frames)])
    (data_dir / "pattern").mkdir(parents=True)
    np.save(data_dir / "pattern" / "seg000.npy", clip)
    index = {
        "manifest_sha256": "0" * 64,
        "tiers": ["A"],
        "clips": [{"name": "pattern", "licence": "CC0-1.0", "tier": "A", "frames": frames}],
    }
    (data_dir / "index.json").write_text(json.dumps(index), encoding="utf-8")


@pytest.fixture(scope="module")
def train():
    return load_train_module()


def test_three_steps_write_a_loadable_checkpoint(tmp_path: Path, train) -> None:
    write_moving_pattern(tmp_path / "frames")
    out = tmp_path / "run" / "model.pth"
    args = ["--data-dir", str(tmp_path / "frames"), "--out", str(out), "--steps", "3", "--batch", "2"]
    train.main([*args, "--crop", "32", "--final-crop", "32", "--threads", "1", "--device", "cpu", "--log-every", "1"])

    checkpoint = load_checkpoint(out)
    architecture = checkpoint.architecture
    assert (architecture.widths, architecture.blocks) == ((16, 32, 64, 128), (2, 2, 2, 2))
    assert (architecture.n_inputs, architecture.multi, architecture.skip) == (4, 2, "blend")
    assert checkpoint.metadata["steps"] == 3
    assert checkpoint.metadata["data_manifest_sha256"] == "0" * 64
    assert out.with_suffix(".state").is_file()


def test_evaluation_figures_go_into_the_checkpoint(tmp_path: Path, train) -> None:
    """--eval-video scores the saved file with ``python -m vsflavr eval``'s measure."""
    write_moving_pattern(tmp_path / "frames")
    out = tmp_path / "model.pth"
    args = ["--data-dir", str(tmp_path / "frames"), "--out", str(out), "--steps", "1", "--batch", "1"]
    args += ["--crop", "32", "--final-crop", "32", "--threads", "1", "--device", "cpu"]
    train.main([*args, "--eval-video", str(FOOTAGE), "--eval-frames", "9"])

    metadata = load_checkpoint(out).metadata
    figures = metadata["evaluation"][FOOTAGE.name]
    assert figures["frames"] == 4  # frames 1, 3, 5, 7 of the first 9 (no cut before frame 30)
    assert figures["psnr_blend"] > figures["psnr_repeat"] > 10
    assert figures["gain_over_blend"] == pytest.approx(figures["psnr_model"] - figures["psnr_blend"], abs=2e-3)
    assert 0 <= figures["wins_over_blend"] <= 1
    assert metadata["evaluation_precision"] == "fp32"


def test_resume_continues_from_the_saved_step(tmp_path: Path, train) -> None:
    write_moving_pattern(tmp_path / "frames")
    out = tmp_path / "model.pth"
    common = ["--data-dir", str(tmp_path / "frames"), "--out", str(out), "--batch", "1", "--crop", "32"]
    common += ["--final-crop", "32", "--threads", "1", "--device", "cpu"]
    train.main([*common, "--steps", "2"])
    train.main([*common, "--steps", "3", "--resume", str(out.with_suffix(".state"))])
    assert load_checkpoint(out).metadata["steps"] == 3


def test_windows_follow_the_recipe(tmp_path: Path, train) -> None:
    write_moving_pattern(tmp_path / "frames", frames=14)
    sampler = train.WindowSampler(tmp_path / "frames", np.random.default_rng(0))
    inputs, target = sampler.batch(4, 32)
    assert inputs.shape == (4, 4, 3, 32, 32) and target.shape == (4, 3, 32, 32)
    assert 0 <= float(inputs.min()) and float(inputs.max()) <= 1
