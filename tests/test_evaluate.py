"""The quality measure: metrics, the drop-frame clip's scene cuts, scores on real footage, and python -m vsflavr eval."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import torch
import vapoursynth as vs

pytest.importorskip("skimage")
pytest.importorskip("matplotlib")

from conftest import BIKES, TINY_WIDTHS, open_bikes

from vsflavr import evaluate as ev
from vsflavr.__main__ import main
from vsflavr.checkpoint import save_checkpoint
from vsflavr.network import FLAVR

core = vs.core


def test_psnr_on_the_0_255_scale() -> None:
    reference = np.zeros((3, 8, 8), np.float32)
    assert ev.psnr(reference, reference + 0.1) == pytest.approx(20.0)
    assert ev.psnr(reference, np.full_like(reference, 1 / 255)) == pytest.approx(20 * np.log10(255))
    assert ev.psnr(reference, reference) == ev.PSNR_CAP


def test_ssim_is_one_for_identical_frames_and_lower_otherwise() -> None:
    frame, other = np.random.default_rng(0).random((2, 3, 32, 32), dtype=np.float32)
    assert ev.ssim(frame, frame) == pytest.approx(1.0)
    assert ev.ssim(frame, other) < 0.1


def cut_after(clip: vs.VideoNode, frame: int, prop: str = "_SceneChangeNext") -> vs.VideoNode:
    """``clip`` with a scene cut marked between ``frame`` and ``frame + 1``."""
    n = frame if prop == "_SceneChangeNext" else frame + 1
    return clip[:n] + clip[n].std.SetFrameProps(**{prop: 1}) + clip[n + 1 :]


@pytest.mark.parametrize(
    ("multi", "cut", "prop", "spanning"),
    [
        (2, 4, "_SceneChangeNext", [0, 0, 1, 0, 0]),
        (2, 3, "_SceneChangePrev", [0, 1, 0, 0, 0]),
        (4, 4, "_SceneChangeNext", [0, 1, 0]),
        (4, 3, "_SceneChangePrev", [1, 0, 0]),
    ],
)
def test_kept_frames_know_the_cuts_in_their_gap(multi: int, cut: int, prop: str, spanning: list[int]) -> None:
    clip = cut_after(core.std.BlankClip(format=vs.RGBS, width=16, height=16, length=9), cut, prop)
    kept = ev.keep_every(clip, multi)
    assert kept.num_frames == len(spanning)
    frames = list(kept.frames())
    assert [f.props["_SceneChangeNext"] for f in frames] == spanning
    assert not any("_SceneChangePrev" in f.props for f in frames)


def test_scores_on_real_footage(tiny_2x: Path) -> None:
    clip = cut_after(open_bikes(24), 10)  # bikes has no cut of its own in its first 24 frames
    result = ev.evaluate(clip, 2, weights=tiny_2x, device="cpu")

    # 12 kept frames, 11 gaps of one dropped frame each; frame 23 has no right neighbour.
    assert [s.frame for s in result.scores] == list(range(1, 23, 2))
    assert result.cuts == [11]
    assert [s.frame for s in result.scores if s.cut] == [11]
    assert result.excluded == 1

    frames = [np.asarray(f[p]) for f in open_bikes(24).frames() for p in range(3)]
    pixels = np.clip(np.array(frames, np.float64).reshape(24, 3, 68, 160), 0, 1)
    for s in result.scores:
        mse = np.mean((pixels[s.frame] - pixels[s.frame - 1]) ** 2)
        assert s.psnr["repeat"] == pytest.approx(10 * np.log10(1 / mse), abs=1e-6)
        blend = (pixels[s.frame - 1] + pixels[s.frame + 1]) / 2
        assert s.psnr["blend"] == pytest.approx(10 * np.log10(1 / np.mean((pixels[s.frame] - blend) ** 2)), abs=1e-4)
        assert 0 < s.ssim["flavr"] <= 1
    included = [s.psnr["repeat"] for s in result.scores if not s.cut]
    assert result.mean("psnr", "repeat") == pytest.approx(np.mean(included))


def test_too_short_a_clip() -> None:
    with pytest.raises(ValueError, match="has 2 frames; scoring multi=2 needs at least 3"):
        ev.evaluate(open_bikes(2), 2)


def test_eval_command_writes_csv_and_plot(tiny_8x: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    table, plot = tmp_path / "scores.csv", tmp_path / "psnr.png"
    status = main(
        [
            "eval",
            str(BIKES),
            "--weights",
            str(tiny_8x),
            "--multi",
            "4",
            "--frames",
            "13",
            "--device",
            "cpu",
            "--csv",
            str(table),
            "--plot",
            str(plot),
            "-q",
        ]
    )
    out, err = capsys.readouterr()
    assert status == 0, err
    assert out.splitlines()[0].split() == ["method", "PSNR", "(dB)", "SSIM"]
    assert [line.split()[0] for line in out.splitlines()[1:4]] == ["flavr", "blend", "repeat"]
    assert "FLAVR vs blend:" in out and "over 9 rebuilt frames (0 excluded" in out
    with table.open(newline="") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["frame"]) for r in rows] == [1, 2, 3, 5, 6, 7, 9, 10, 11]
    assert set(rows[0]) == {
        "frame",
        "psnr_flavr",
        "psnr_blend",
        "psnr_repeat",
        "ssim_flavr",
        "ssim_blend",
        "ssim_repeat",
        "cut_excluded",
    }
    assert plot.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    assert f"wrote {table}" in err and f"wrote {plot}" in err


def test_eval_command_reports_a_bad_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["eval", str(tmp_path / "missing.mkv"), "-q"]) == 1
    assert capsys.readouterr().err.startswith("vsflavr eval: ")


@pytest.fixture
def blend_8x_builtin(places: dict[str, Path]) -> Path:
    """A built-in model on the 8x grid whose correction is zero: it returns the blend at each phase k/8."""
    model = FLAVR(7, widths=TINY_WIDTHS, skip="blend")
    torch.nn.init.zeros_(model.outconv[1].weight)
    torch.nn.init.zeros_(model.outconv[1].bias)
    places["builtin8"].parent.mkdir(parents=True)
    save_checkpoint(places["builtin8"], model)
    return places["builtin8"]


@pytest.mark.parametrize("multi", [4, 8])
@pytest.mark.parametrize("weights", [[], ["--weights", "builtin"]])
def test_eval_multi_with_a_builtin_model_on_a_finer_grid(
    blend_8x_builtin: Path, multi: int, weights: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """eval --multi 4 / 8 takes the built-in model's outputs at the phases of the dropped frames, where the
    blend baseline is computed: a model that returns the blend scores exactly as blending, frame by frame."""
    table = tmp_path / "scores.csv"
    args = ["eval", str(BIKES), "--multi", str(multi), "--frames", str(2 * multi + 1), "--device", "cpu"]
    assert main([*args, *weights, "--csv", str(table), "-q"]) == 0, capsys.readouterr().err
    with table.open(newline="") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["frame"]) for r in rows] == [n for n in range(1, 2 * multi) if n % multi]
    for row in rows:
        assert float(row["psnr_flavr"]) == pytest.approx(float(row["psnr_blend"]), abs=0.01)
        assert float(row["psnr_blend"]) != pytest.approx(float(row["psnr_repeat"]), abs=0.01)


def test_eval_multi_the_builtin_model_cannot_make(
    places: dict[str, Path], tiny_2x: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """With only a 2x built-in model installed, 3 frames of 4 cannot be rebuilt: one line that says what would."""
    places["builtin"].parent.mkdir(parents=True)
    places["builtin"].write_bytes(tiny_2x.read_bytes())
    assert main(["eval", str(BIKES), "--multi", "4", "--frames", "9", "--weights", "builtin", "-q"]) == 1
    lines = [line for line in capsys.readouterr().err.splitlines() if not line.startswith("flavr: the clip does not say")]
    err = "\n".join(lines)  # the log line naming the guessed colour props may come first; the error is one line
    assert len(lines) == 1 and err.startswith("vsflavr eval: ")
    assert "no built-in model makes multi=4 (installed: flavr_s_2x.pth (2x))" in err and "download 4x" in err


def test_a_peer_is_scored_by_the_same_protocol() -> None:
    """``rebuild=`` scores another interpolator; one that repeats the kept frame scores exactly as ``repeat``."""
    def repeat(kept: vs.VideoNode, multi: int) -> vs.VideoNode:
        return core.std.Interleave([kept] * multi)

    evaluation = ev.evaluate(open_bikes(9), 4, rebuild=repeat, name="peer")
    assert evaluation.methods == ("peer", "blend", "repeat") and len(evaluation.scores) == 6
    assert all(s.psnr["peer"] == s.psnr["repeat"] for s in evaluation.scores)
