"""The built-in model's training entry point runs end to end on a tiny synthetic clip."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

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


@pytest.fixture(autouse=True)
def user_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The user cache (state files, teacher sets) inside the test's folder."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    return tmp_path / "cache" / "vsflavr-train"


def test_three_steps_write_a_loadable_checkpoint(tmp_path: Path, train, user_cache: Path) -> None:
    write_moving_pattern(tmp_path / "frames")
    out = tmp_path / "run" / "model.pth"
    args = ["--data-dir", str(tmp_path / "frames"), "--out", str(out), "--steps", "3", "--batch", "2", "--nice", "0"]
    train.main([*args, "--crop", "32", "--final-crop", "32", "--threads", "1", "--device", "cpu", "--log-every", "1"])

    checkpoint = load_checkpoint(out)
    architecture = checkpoint.architecture
    assert (architecture.widths, architecture.blocks) == ((16, 32, 64, 128), (2, 2, 2, 2))
    assert (architecture.n_inputs, architecture.multi, architecture.skip) == (4, 2, "blend")
    assert checkpoint.metadata["steps"] == 3
    assert checkpoint.metadata["data_manifest_sha256"] == "0" * 64
    assert (user_cache / "run" / "model.state").is_file()


def test_evaluation_figures_go_into_the_checkpoint(tmp_path: Path, train) -> None:
    """--eval-video scores the saved file with ``python -m vsflavr eval``'s measure."""
    write_moving_pattern(tmp_path / "frames")
    out = tmp_path / "model.pth"
    args = ["--data-dir", str(tmp_path / "frames"), "--out", str(out), "--steps", "1", "--batch", "1"]
    args += ["--crop", "32", "--final-crop", "32", "--threads", "1", "--device", "cpu", "--nice", "0"]
    train.main([*args, "--eval-video", str(FOOTAGE), "--eval-frames", "9"])

    metadata = load_checkpoint(out).metadata
    figures = metadata["evaluation"][FOOTAGE.name]
    assert figures["frames"] == 4  # frames 1, 3, 5, 7 of the first 9 (no cut before frame 30)
    assert figures["psnr_blend"] > figures["psnr_repeat"] > 10
    assert figures["gain_over_blend"] == pytest.approx(figures["psnr_model"] - figures["psnr_blend"], abs=2e-3)
    assert 0 <= figures["wins_over_blend"] <= 1
    assert metadata["evaluation_precision"] == "fp32"


def test_resume_continues_from_the_saved_step(tmp_path: Path, train, user_cache: Path) -> None:
    write_moving_pattern(tmp_path / "frames")
    out = tmp_path / "model.pth"
    common = ["--data-dir", str(tmp_path / "frames"), "--out", str(out), "--batch", "1", "--crop", "32"]
    common += ["--final-crop", "32", "--threads", "1", "--device", "cpu", "--nice", "0"]
    train.main([*common, "--steps", "2"])
    train.main([*common, "--steps", "3", "--resume", str(user_cache / "run" / "model.state")])
    assert load_checkpoint(out).metadata["steps"] == 3


def test_an_8x_run_resumes_across_sessions_from_the_user_cache(
    tmp_path: Path, train, user_cache: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A session stopped by --session-minutes leaves its state in the user cache; --resume (no value) goes on."""
    write_moving_pattern(tmp_path / "frames", frames=26)
    out = tmp_path / "model.pth"
    common = ["--data-dir", str(tmp_path / "frames"), "--out", str(out), "--batch", "2", "--crop", "32"]
    common += ["--final-crop", "32", "--threads", "1", "--device", "cpu", "--nice", "0", "--multi", "8"]
    common += ["--teacher-samples", "0", "--steps", "3", "--log-every", "1"]
    train.main([*common, "--session-minutes", "0"])  # spent at once: no step, a state at step 0
    assert "session budget of 0.0 min spent at step 0" in capsys.readouterr().out
    train.main([*common, "--resume"])
    assert "resumed from" in capsys.readouterr().out
    checkpoint = load_checkpoint(out)
    assert checkpoint.architecture.multi == 8 and checkpoint.metadata["steps"] == 3
    with pytest.raises(SystemExit, match="is a 8x run; this one is --multi 2"):
        train.main([*common[:-8], "--steps", "3", "--resume"])


def test_real_8x_targets_sit_at_their_phases(train) -> None:
    """Frame values = frame numbers: at gap g the frame g + j is the target at phase 8j/g, the rest unknown."""
    window = np.arange(25, dtype=np.uint8).reshape(25, 1, 1, 1)
    for gap, phases in ((2, [4]), (4, [2, 4, 6]), (8, [1, 2, 3, 4, 5, 6, 7])):
        inputs, targets, known = train.real_8x_sample(window[: 3 * gap + 1], gap)
        assert inputs.ravel().tolist() == [0, gap, 2 * gap, 3 * gap]
        assert np.flatnonzero(known).tolist() == [k - 1 for k in phases]
        assert [int(targets[k - 1].item()) for k in phases] == [gap + k * gap // 8 for k in phases]
        assert not targets[~known].any()
    with pytest.raises(ValueError, match="need 3 \\* gap \\+ 1 frames"):
        train.real_8x_sample(window[:8], 2)


def test_8x_batches_mix_teacher_and_real_targets(tmp_path: Path, train) -> None:
    write_moving_pattern(tmp_path / "frames", frames=26)
    sampler = train.WindowSampler(tmp_path / "frames", np.random.default_rng(0))
    teachers = (np.full((3, 4, 40, 40, 3), 7, np.uint8), np.full((3, 7, 40, 40, 3), 9, np.uint8))
    inputs, targets, known = sampler.batch_8x(6, 32, teachers, 1.0)
    assert inputs.shape == (6, 4, 3, 32, 32) and targets.shape == (6, 7, 3, 32, 32) and known.shape == (6, 7)
    assert bool(known.all()) and torch.allclose(targets, torch.tensor(9 / 255))
    _, targets, known = sampler.batch_8x(32, 32, teachers, 0.0)
    constant = (targets == targets[..., :1, :1]).flatten(2).all(-1)  # (B, 7): a flat teacher frame
    assert not (constant & known.bool()).any()  # every known target is real (textured) footage
    assert {tuple(np.flatnonzero(k).tolist()) for k in known.numpy()} <= {(3,), (1, 3, 5), tuple(range(7))}
    assert bool(known[:, 3].all())  # every gap has a real frame at phase 1/2


def test_masked_l1_counts_only_known_targets(train) -> None:
    output, targets = torch.zeros(2, 7, 3, 4, 4), torch.ones(2, 7, 3, 4, 4)
    targets[0, 0] = 5  # an unknown phase: must not count
    known = torch.ones(2, 7)
    known[0, 0] = 0
    assert float(train.masked_l1(output, targets, known)) == pytest.approx(1.0)


def test_warm_start_keeps_the_2x_frame_at_the_middle_phase(train) -> None:
    """The 8x model warm-started from the shipped 2x model makes its frame at t = 1/2 exactly."""
    model = train.build_model(8)
    train.warm_start(model, Path(__file__).resolve().parents[1] / "vsflavr" / "models" / "flavr_s_2x.pth")
    old = load_checkpoint(Path(__file__).resolve().parents[1] / "vsflavr" / "models" / "flavr_s_2x.pth").model
    frames = torch.from_numpy(np.load(FOOTAGE.with_name("builtin_crop.npz"))["inputs"][:, :32, :32])
    frames = frames.permute(0, 3, 1, 2).float().div(255).unsqueeze(0)
    with torch.inference_mode():
        new_out, old_out = model.eval()(frames), old(frames)
    assert new_out.shape == (1, 7, 3, 32, 32)
    assert torch.allclose(new_out[:, 3], old_out[:, 0], atol=1e-5)
    blend = train.blend_at_phases(frames, 8)
    correction_new, correction_old = new_out - blend, (old_out - blend[:, 3:4])
    assert torch.allclose(correction_new[:, 1], correction_old[:, 0] * 0.5, atol=1e-5)  # t = 2/8: half of it


def test_windows_follow_the_recipe(tmp_path: Path, train) -> None:
    write_moving_pattern(tmp_path / "frames", frames=14)
    sampler = train.WindowSampler(tmp_path / "frames", np.random.default_rng(0))
    inputs, target = sampler.batch(4, 32)
    assert inputs.shape == (4, 4, 3, 32, 32) and target.shape == (4, 3, 32, 32)
    assert 0 <= float(inputs.min()) and float(inputs.max()) <= 1
