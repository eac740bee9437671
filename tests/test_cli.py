"""python -m vsflavr info and check-weights, run in-process as a user runs them."""

from __future__ import annotations

import hashlib
import shutil
import sys
from pathlib import Path

import pytest
import torch

from vsflavr import backends
from vsflavr.__main__ import main
from vsflavr.checkpoint import load_checkpoint


def put(source: Path, target: Path) -> Path:
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source, target)
    return target


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    status = main(list(argv))
    out, err = capsys.readouterr()
    return status, out, err


def test_info_lists_versions_directories_and_files(
    places: dict[str, Path], tiny_8x: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    found = put(tiny_8x, places["repo"] / "FLAVR_8x.pth")
    status, out, _ = run(capsys, "info")
    assert status == 0
    for name in ("vsflavr", "python", "torch", "vapoursynth", "numpy", "CUDA devices", "default run"):
        assert f"\n{name} " in f"\n{out}"
    assert f"  {places['env']}  (VSFLAVR_WEIGHTS_DIR, does not exist)\n" in out
    assert f"  {places['data']}  (user data directory, does not exist)\n" in out
    assert f"  {places['repo']}  (vsflavr checkout)\n    FLAVR_8x.pth  8x  2.6 MiB\n" in out
    assert f"  flavr_s_2x.pth  not installed ({places['builtin']})\n" in out
    assert f"  flavr_s_8x.pth  not installed ({places['builtin8']})\n" in out
    for multi in (2, 4):
        assert (
            f"FLAVR_{multi}x.pth: run `python -m vsflavr download {multi}x`, or put the file in {places['env']}" in out
        )
    assert "FLAVR_8x.pth: run" not in out
    assert out.endswith(f"A default flavr() call with multi=2 uses:\n  {found} (8x)\n")


@pytest.mark.parametrize(
    ("native", "expected"),
    [(True, "cpu, bf16 (the CPU has native bf16)"), (False, "cpu, fp32 (no native bf16 on this CPU)")],
)
def test_info_says_where_and_in_which_precision_a_default_call_runs(
    native: bool, expected: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(backends, "cpu_supports_bf16", lambda: native)
    status, out, _ = run(capsys, "info")
    assert status == 0
    line = next(line for line in out.splitlines() if line.startswith("default run  "))
    assert line.startswith(f"default run  {expected}; ")  # then the CPU path and why
    assert line.split("; ", 1)[1].startswith(("OpenVINO: ", "OpenVINO int8: ", "PyTorch: ", "timed: "))


def test_info_reads_the_multi_from_the_file_and_shows_the_builtin_model(
    places: dict[str, Path], tiny_2x: Path, tiny_8x: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    put(tiny_8x, places["env"] / "FLAVR_2x.pth")
    put(tiny_2x, places["builtin"])
    (places["env"] / "FLAVR_4x.pth").write_bytes(b"<html>quota exceeded</html>")
    status, out, _ = run(capsys, "info")
    assert status == 1  # a checkpoint found cannot be used
    assert "    FLAVR_2x.pth  8x  " in out
    assert "    FLAVR_4x.pth  unusable: weights file " in out and "is an HTML page" in out
    assert "Built-in models (used when no official checkpoint serves a multi):\n  flavr_s_2x.pth  2x  " in out
    assert "  flavr_s_8x.pth  not installed (" in out


def test_info_reports_a_broken_cuda_install_instead_of_crashing(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def broken(*args: object) -> int:
        raise RuntimeError("CUDA driver initialization failed, you might not have a CUDA gpu.\nmore detail")

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", broken)
    monkeypatch.setattr(torch.cuda, "get_device_name", broken)
    status, out, err = run(capsys, "info")
    assert status in (0, 1) and "Traceback" not in out + err
    assert "\nCUDA devices unavailable (RuntimeError: CUDA driver initialization failed, you might not" in out
    assert "\ndefault run  cuda:0" not in out and "more detail" not in out


def test_info_with_nothing_found_says_what_flavr_would_say(
    places: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    status, out, _ = run(capsys, "info")
    assert status == 0
    default = out.split("A default flavr() call with multi=2 uses:\n")[1]
    assert default.startswith("  nothing: no FLAVR checkpoint for multi=2")
    assert "python -m vsflavr download 2x" in default


def test_check_weights(tiny_8x: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = run(capsys, "check-weights", str(tiny_8x))
    assert status == 0
    fields = dict(line.split(maxsplit=1) for line in out.splitlines())
    model = load_checkpoint(tiny_8x).model
    assert fields["multi"] == "8 (7 in-between frames per gap)"
    assert fields["variant"] == "encoder convolutions with bias"
    assert fields["widths"] == "8, 16, 32, 64"
    assert fields["blocks"] == "2, 2, 2, 2"
    assert fields["skip"] == "mean"
    assert fields["parameters"] == f"{sum(p.numel() for p in model.parameters()):,}"
    assert fields["sha256"] == hashlib.sha256(tiny_8x.read_bytes()).hexdigest()
    assert fields["metadata"] == '{"skip": "mean"}'


def test_check_weights_2x_has_no_encoder_bias(tiny_2x: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _, out, _ = run(capsys, "check-weights", str(tiny_2x))
    assert "multi       2 (1 in-between frame per gap)\n" in out
    assert "variant     encoder convolutions without bias\n" in out


@pytest.mark.parametrize(
    ("content", "reason"),
    [(b"PK\x03\x04 truncated zip", "truncated, corrupt or not a PyTorch checkpoint"), (None, "does not exist")],
)
def test_check_weights_fails_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: bytes | None, reason: str
) -> None:
    path = tmp_path / "broken.pth"
    if content is not None:
        path.write_bytes(content)
    status, out, err = run(capsys, "check-weights", str(path))
    assert status == 1
    assert out == ""
    assert err.startswith(f"vsflavr check-weights: weights file {path} ") and reason in err
    assert err.count("\n") == 1


@pytest.mark.parametrize(("command", "extra"), [("export-onnx", "onnx"), ("eval", "eval")])
def test_a_missing_extra_names_the_install_command(
    command: str, extra: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    module, imported = {"onnx": ("vsflavr.export", "onnxruntime"), "eval": ("vsflavr.evaluate", "skimage.metrics")}[
        extra
    ]
    monkeypatch.delitem(sys.modules, module, raising=False)
    monkeypatch.setitem(sys.modules, imported, None)  # import fails as if it were not installed
    package = imported.partition(".")[0]
    args = (
        [str(tmp_path / "a.pth"), str(tmp_path / "a.onnx")] if command == "export-onnx" else [str(tmp_path / "a.mkv")]
    )
    assert main([command, *args]) == 2
    assert capsys.readouterr().err == (
        f"vsflavr {command}: needs the Python package {package}; install it with: pip install 'vsflavr[{extra}]'\n"
    )
