"""``python -m vsflavr bench`` in a CI-sized setting: it runs and prints every column; speed is never asserted."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from vsflavr.__main__ import main
from vsflavr.bench import BASELINE, COLUMNS, parse_size, sample_frames
from vsflavr.checkpoint import load_checkpoint
from vsflavr.flops import pass_flop


def table(text: str) -> list[list[str]]:
    """The rows of the table, without the ``# CPU:`` line above it."""
    return [
        [cell.strip() for cell in line.split("|")] for line in text.strip().splitlines() if not line.startswith("#")
    ]


def test_bench_prints_the_baseline_then_each_backend(tiny_2x: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["bench", "--size", "32x32", "64x40", "--repeats", "1", "--weights", str(tiny_2x), "--device", "cpu"]
    assert main([*argv, "--backends", "torch:fp32", "torch:bf16"]) == 0
    printed = capsys.readouterr().out
    network = load_checkpoint(tiny_2x).model
    assert printed.startswith("# CPU: ")  # the CPU's name and flags above the table
    rows = table(printed)
    assert tuple(rows[0]) == COLUMNS
    assert [(r[0], r[1], r[2]) for r in rows[1:]] == [
        (size, "2", backend) for size in ("32x32", "64x40") for backend in (BASELINE, "torch:fp32", "torch:bf16")
    ]
    for row in rows[1:]:
        passes, fps, gflop, rate, first, peak, diff, ratio = row[3:]
        assert float(passes) > 0 and float(fps) == pytest.approx(2 * float(passes), rel=2e-3)
        width, height = parse_size(row[0])
        assert float(gflop) == pytest.approx(pass_flop(network, width, height) / 1e9, rel=1e-3)
        assert float(rate) == pytest.approx(float(gflop) * float(passes), rel=2e-3)
        assert float(first) >= 0 and (peak == "n/a" or float(peak) >= 0) and float(ratio) > 0
        assert float(diff) <= (1e-4 if row[2] != "torch:bf16" else 2e-2)


def test_bench_reports_an_unavailable_backend_and_fails(tiny_2x: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["bench", "--size", "32x32", "--repeats", "1", "--weights", str(tiny_2x), "--device", "cpu"]
    assert main([*argv, "--backends", "trt:fp16"]) == 1
    assert "trt:fp16 | unavailable: backend='trt' needs a CUDA GPU" in capsys.readouterr().out


def test_bench_refuses_a_bad_size(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "--size", "30x30", "--device", "cpu"]) == 2
    assert "multiples of 8" in capsys.readouterr().err


def test_python_m_vsflavr_bench_runs(tiny_8x: Path) -> None:
    argv = ["--size", "32x32", "--multi", "2", "8", "--repeats", "1", "--weights", str(tiny_8x), "--device", "cpu"]
    done = subprocess.run(
        [sys.executable, "-m", "vsflavr", "bench", *argv, "--backends", "torch:fp32"],
        capture_output=True,
        encoding="utf-8", errors="replace",
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    rows = table(done.stdout)
    assert len(rows) == 5 and all(len(r) == len(COLUMNS) for r in rows)
    assert [r[1] for r in rows[1:]] == ["2", "2", "8", "8"]


def test_sizes_and_sample_frames() -> None:
    assert parse_size("640x360") == (640, 360)
    frames = sample_frames(48, 32)
    assert frames.shape == (1, 4, 3, 32, 48) and 0 <= frames.min() and frames.max() <= 1
    assert not torch.equal(frames[0, 0], frames[0, 1])  # it moves
