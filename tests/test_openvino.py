"""The OpenVINO backend: the PyTorch network's frames within each precision's tolerance, caching, concurrency,
tiling and clear errors (the CPU's automatic choice: test_cpu_auto.py).  Skipped where OpenVINO is not installed."""

from __future__ import annotations

import logging
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
import torch
import vapoursynth as vs
from conftest import open_bikes
from parity import fixture, write_official_checkpoint
from test_backends import BF16_TOLERANCE, FP32_TOLERANCE, bikes_window, frames, reference

import vsflavr
from vsflavr.__main__ import main
from vsflavr.backends import CPUBackend, OpenVINOBackend, select_backend
from vsflavr.backends import openvino as ov_module
from vsflavr.backends.openvino import MISSING_OPENVINO
from vsflavr.bench import BASELINE, COLUMNS
from vsflavr.checkpoint import load_checkpoint
from vsflavr.network import FLAVR

pytest.importorskip("openvino")

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One cache directory for the module, so each network is converted once."""
    return tmp_path_factory.mktemp("openvino-cache")


@pytest.mark.parametrize("fixture_name", ["tiny_2x", "tiny_8x"])
def test_fp32_matches_the_pytorch_network(fixture_name: str, request: pytest.FixtureRequest, cache: Path) -> None:
    weights: Path = request.getfixturevalue(fixture_name)
    runner = OpenVINOBackend(precision="fp32", cache_dir=cache).load(load_checkpoint(weights).model)
    x = frames(batch=2)
    out = runner(x)
    assert out.dtype == torch.float32 and out.shape == (2, runner.n_outputs, 3, 40, 56)
    torch.testing.assert_close(out, reference(weights, x), rtol=0, atol=FP32_TOLERANCE)


def test_fp32_and_bf16_on_footage(tiny_8x: Path, cache: Path) -> None:
    x = bikes_window()
    expected = reference(tiny_8x, x)
    for precision, tolerance in (("fp32", FP32_TOLERANCE), ("bf16", BF16_TOLERANCE)):
        out = OpenVINOBackend(precision=precision, cache_dir=cache).load(load_checkpoint(tiny_8x).model)(x)
        torch.testing.assert_close(out, expected, rtol=0, atol=tolerance)


@pytest.mark.parametrize(("name", "multi"), [("flavr_2x", 2), ("flavr_8x", 8)])
def test_official_parity_fixtures(tmp_path: Path, cache: Path, name: str, multi: int) -> None:
    """The official architecture through OpenVINO gives the reference code's frames (and PyTorch's)."""
    meta, arrays = fixture(name)
    weights = write_official_checkpoint(meta, tmp_path / f"FLAVR_{multi}x.pth")
    x = torch.from_numpy(arrays["inputs"]).transpose(0, 1)  # (B, 4, 3, H, W)
    expected = torch.from_numpy(arrays["outputs"]).transpose(0, 1)
    out = OpenVINOBackend(precision="fp32", cache_dir=cache).load(load_checkpoint(weights).model)(x)
    torch.testing.assert_close(out, reference(weights, x), rtol=0, atol=FP32_TOLERANCE)
    torch.testing.assert_close(out, expected, rtol=0, atol=FP32_TOLERANCE)


def test_bf16_falls_back_to_fp32_with_a_message_without_native_bf16(
    tiny_2x: Path, cache: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(ov_module, "openvino_native_bf16", lambda: False)
    x = frames()
    with caplog.at_level(logging.WARNING, logger="vsflavr"):
        out = OpenVINOBackend(precision="bf16", cache_dir=cache).load(load_checkpoint(tiny_2x).model)(x)
    assert "no native bf16" in caplog.text and "fp32" in caplog.text
    torch.testing.assert_close(out, reference(tiny_2x, x), rtol=0, atol=FP32_TOLERANCE)


def test_second_load_reads_the_cache_instead_of_converting(
    tiny_2x: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    x = frames()
    first = OpenVINOBackend(cache_dir=tmp_path).load(load_checkpoint(tiny_2x).model)(x)
    assert len(list(tmp_path.glob("flavr_*.xml"))) == 1 and len(list(tmp_path.glob("flavr_*.bin"))) == 1
    assert list((tmp_path / "compiled").iterdir()), "OpenVINO's compiled-model cache is empty"
    assert not list(tmp_path.glob("*partial*"))

    import openvino

    def no_conversion(*args: object, **kwargs: object) -> None:
        raise AssertionError("converted again although the cache holds the network")

    monkeypatch.setattr(openvino, "convert_model", no_conversion)
    second = OpenVINOBackend(cache_dir=tmp_path).load(load_checkpoint(tiny_2x).model)(x)
    assert torch.equal(first, second)
    other = FLAVR(1, widths=(8, 16, 32, 64))  # other weights: a new conversion, not the cached one
    with pytest.raises(AssertionError, match="converted again"):
        OpenVINOBackend(cache_dir=tmp_path).load(other)
    other.skip = "blend"  # the same weights with another skip: another graph
    other.load_state_dict(load_checkpoint(tiny_2x).model.state_dict())
    with pytest.raises(AssertionError, match="converted again"):
        OpenVINOBackend(cache_dir=tmp_path).load(other)


@pytest.mark.parametrize("streams", [1, None])
def test_concurrent_calls_give_the_bytes_of_one_at_a_time(tiny_2x: Path, cache: Path, streams: int | None) -> None:
    runner = OpenVINOBackend(streams=streams, cache_dir=cache).load(load_checkpoint(tiny_2x).model)
    inputs = [frames(seed=s) for s in range(6)]
    alone = [runner(x) for x in inputs]
    together: dict[int, torch.Tensor] = {}

    def work(i: int) -> None:
        together[i] = runner(inputs[i])

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(inputs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for i, out in enumerate(alone):
        assert torch.equal(together[i], out)
        torch.testing.assert_close(out, reference(tiny_2x, inputs[i]), rtol=0, atol=FP32_TOLERANCE)


def test_tiles_match_the_pytorch_backends_tiles(tiny_2x: Path, cache: Path) -> None:
    x = frames(height=96, width=136)
    model = load_checkpoint(tiny_2x).model
    tiled = OpenVINOBackend(tile_size=64, tile_overlap=16, cache_dir=cache).load(model)(x)
    torch_tiled = CPUBackend(tile_size=64, tile_overlap=16).load(load_checkpoint(tiny_2x).model)(x)
    torch.testing.assert_close(tiled, torch_tiled, rtol=0, atol=FP32_TOLERANCE)
    assert (tiled - reference(tiny_2x, x)).abs().max() > 0  # tiles really ran: they differ from whole frames


def test_filter_runs_openvino_on_footage(tiny_2x: Path) -> None:
    clip = open_bikes(8)
    ov_clip = vsflavr.flavr(clip, weights=tiny_2x, device="cpu", backend="openvino", precision="fp32")
    torch_clip = vsflavr.flavr(clip, weights=tiny_2x, device="cpu", backend="torch", precision="fp32")
    assert ov_clip.num_frames == torch_clip.num_frames == 16
    for n in (3, 7, 9):
        a, b = ov_clip.get_frame(n), torch_clip.get_frame(n)
        assert a.props["FLAVRInterpolated"] == 1
        for p in range(3):
            assert np.abs(np.asarray(a[p]) - np.asarray(b[p])).max() <= FP32_TOLERANCE


def test_missing_openvino_is_a_clear_error(tiny_2x: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "openvino", None)  # import fails as if not installed
    with pytest.raises(ValueError, match=r"^backend='openvino' needs OpenVINO: pip install vsflavr\[openvino\]$"):
        OpenVINOBackend().load(load_checkpoint(tiny_2x).model)
    with pytest.raises(vs.Error, match=r"^flavr: backend='openvino' needs OpenVINO: pip install vsflavr\[openvino\]"):
        vsflavr.flavr(open_bikes(8), weights=tiny_2x, device="cpu", backend="openvino")
    assert MISSING_OPENVINO.endswith("pip install vsflavr[openvino]")


@pytest.mark.parametrize(
    ("device", "precision", "message"),
    [
        ("cuda:0", "auto", r"backend='openvino' runs on the CPU"),
        ("cpu", "fp16", r"precision='fp16' is for GPUs"),
    ],
)
def test_openvino_refuses_what_it_cannot_do(device: str, precision: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        select_backend("openvino", torch.device(device), precision)
    with pytest.raises(ValueError, match=r"runs precision 'fp32', 'bf16' or 'int8', got 'fp16'"):
        OpenVINOBackend(precision="fp16")  # type: ignore[arg-type]


def test_bench_rows_for_the_builtin_model(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["bench", "--size", "64x40", "--repeats", "1", "--weights", "builtin", "--device", "cpu"]
    assert main([*argv, "--backends", "torch:fp32", "openvino:fp32", "openvino:bf16"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0].startswith("# CPU: ") and lines[1] == " | ".join(COLUMNS)
    rows = [[cell.strip() for cell in line.split("|")] for line in lines[2:]]
    assert [row[2] for row in rows] == [BASELINE, "torch:fp32", "openvino:fp32", "openvino:bf16"]
    for row in rows:
        assert float(row[3]) > 0 and float(row[9]) <= (BF16_TOLERANCE if "bf16" in row[2] else FP32_TOLERANCE)
