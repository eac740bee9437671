"""python -m vsflavr export-onnx: vs-mlrt's layout, dynamic sizes, fp32 and fp16, checked in onnxruntime."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

onnxruntime = pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")

from vsflavr.__main__ import main
from vsflavr.checkpoint import load_checkpoint
from vsflavr.export import TOLERANCE, VERIFY_SIZES, export_onnx, verify_onnx


@pytest.fixture(scope="module")
def exported_2x(tiny_2x: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("onnx") / "tiny_2x.onnx"
    export_onnx(load_checkpoint(tiny_2x), out)
    return out


def io(path: Path) -> list[tuple[str, list[int | str], str]]:
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return [(t.name, t.shape, t.type) for t in (*session.get_inputs(), *session.get_outputs())]


def test_dynamic_export_matches_torch_at_two_sizes(exported_2x: Path, tiny_2x: Path) -> None:
    checks = verify_onnx(exported_2x, load_checkpoint(tiny_2x), VERIFY_SIZES)
    assert [(c.height, c.width) for c in checks] == [(64, 96), (72, 136)]
    assert all(c.max_abs_diff <= TOLERANCE["fp32"] for c in checks)


def test_layout_is_what_vs_mlrt_feeds(exported_2x: Path, tiny_2x: Path) -> None:
    (name_in, shape_in, type_in), (name_out, shape_out, type_out) = io(exported_2x)
    assert (name_in, shape_in[:2], type_in) == ("frames", [1, 12], "tensor(float)")
    assert (name_out, shape_out[:2], type_out) == ("interpolated", [1, 3], "tensor(float)")
    assert all(isinstance(d, str) for d in shape_in[2:] + shape_out[2:])  # dynamic H, W

    # Four RGB clips, as vs-mlrt stacks their planes: I-1 R, G, B, I0 R, G, B, ...
    frames = torch.rand(1, 4, 3, 40, 56, generator=torch.Generator().manual_seed(3))
    session = onnxruntime.InferenceSession(str(exported_2x), providers=["CPUExecutionProvider"])
    (got,) = session.run(None, {"frames": frames.reshape(1, 12, 40, 56).numpy()})
    with torch.inference_mode():
        expected = load_checkpoint(tiny_2x).model(frames)  # (1, 1, 3, H, W)
    np.testing.assert_allclose(got, expected.reshape(1, 3, 40, 56).numpy(), atol=TOLERANCE["fp32"])


def test_command_fp16_fixed_size(tiny_8x: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "tiny_8x_fp16.onnx"
    status = main(["export-onnx", str(tiny_8x), str(out), "--fp16", "--height", "32", "--width", "48", "-q"])
    err = capsys.readouterr().err
    assert status == 0, err
    assert io(out) == [
        ("frames", [1, 12, 32, 48], "tensor(float16)"),
        ("interpolated", [1, 21, 32, 48], "tensor(float16)"),
    ]
    assert "fp16, input 'frames' (1, 12, 32, 48), output 'interpolated' (1, 21, 32, 48)" in err
    assert "onnxruntime vs torch at 48x32: max abs diff" in err and "(ok, tolerance 0.01)" in err


@pytest.mark.parametrize(
    ("args", "status", "message"),
    [
        (["--height", "64"], 2, "give both --height and --width"),
        (["--height", "60", "--width", "64"], 1, "height and width must be positive multiples of 8, got 60x64"),
        (["--height", "32", "--width", "32", "--opset", "17"], 1, "could not write opset 17 (it wrote 18); use an"),
    ],
)
def test_command_rejects_bad_sizes(
    tiny_2x: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], status: int, message: str
) -> None:
    out = tmp_path / "x.onnx"
    assert main(["export-onnx", str(tiny_2x), str(out), *args]) == status
    assert message in capsys.readouterr().err
    assert not out.exists()


def test_command_reports_a_bad_checkpoint(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["export-onnx", str(tmp_path / "none.pth"), str(tmp_path / "x.onnx")]) == 1
    assert "vsflavr export-onnx: weights file" in capsys.readouterr().err
