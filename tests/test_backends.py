"""Backends: same frames as the eager fp32 network within each precision's tolerance, clear errors, tiling."""

from __future__ import annotations

import itertools
import logging
import sys
import threading
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import make_checkpoint, open_bikes

from vsflavr import backends
from vsflavr.backends import (
    AutoCPUBackend,
    CPUBackend,
    CUDABackend,
    OpenVINOBackend,
    Runner,
    TensorRTBackend,
    cpu_supports_bf16,
    select_backend,
)
from vsflavr.backends import cpu as cpu_module
from vsflavr.backends.cuda import auto_tile
from vsflavr.backends.tensorrt import MISSING_TRT, engine_key, weights_checksum
from vsflavr.backends.tiling import axis_weights, plan_axis, run_tiled
from vsflavr.checkpoint import load_checkpoint
from vsflavr.frames import pad_to_multiple
from vsflavr.network import FLAVR

FP32_TOLERANCE = 1e-4
BF16_TOLERANCE = 2e-2
FP16_TOLERANCE = 2e-2
CPU = torch.device("cpu")
needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


def frames(batch: int = 1, height: int = 40, width: int = 56, seed: int = 0) -> torch.Tensor:
    return torch.rand(batch, 4, 3, height, width, generator=torch.Generator().manual_seed(seed))


def reference(weights: Path, x: torch.Tensor) -> torch.Tensor:
    """The network as loaded, fp32, eager: what every backend must reproduce."""
    with torch.inference_mode():
        return load_checkpoint(weights).model(x)


def bikes_window(first: int = 10) -> torch.Tensor:
    """Four consecutive frames of the test footage (1, 4, 3, 72, 160), padded like the filter pads them."""
    clip = open_bikes(first + 4)
    planes = [np.stack([np.asarray(clip.get_frame(i)[p]) for p in range(3)]) for i in range(first, first + 4)]
    return pad_to_multiple(torch.from_numpy(np.stack(planes))).unsqueeze(0)


@pytest.mark.parametrize("fixture", ["tiny_2x", "tiny_8x"])
def test_cpu_fp32_matches_eager(fixture: str, request: pytest.FixtureRequest) -> None:
    weights: Path = request.getfixturevalue(fixture)
    x = frames(batch=2)
    runner = CPUBackend(precision="fp32").load(load_checkpoint(weights).model)
    out = runner(x)
    assert out.dtype == torch.float32 and out.device == CPU
    assert runner.n_outputs == load_checkpoint(weights).architecture.n_outputs
    torch.testing.assert_close(out, reference(weights, x), rtol=0, atol=FP32_TOLERANCE)


def test_cpu_bf16_matches_eager_within_bf16_tolerance(tiny_8x: Path) -> None:
    x = frames()
    out = CPUBackend(precision="bf16").load(load_checkpoint(tiny_8x).model)(x)
    torch.testing.assert_close(out, reference(tiny_8x, x), rtol=0, atol=BF16_TOLERANCE)


def test_bf16_falls_back_to_fp32_with_a_message_on_cpus_without_it(
    tiny_2x: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(cpu_module, "cpu_supports_bf16", lambda: False)
    x = frames()
    with caplog.at_level(logging.WARNING, logger="vsflavr"):
        out = CPUBackend(precision="bf16").load(load_checkpoint(tiny_2x).model)(x)
    assert "no native bf16" in caplog.text and "fp32" in caplog.text
    torch.testing.assert_close(out, reference(tiny_2x, x), rtol=0, atol=FP32_TOLERANCE)


def test_bf16_support_is_read_from_the_cpu_flags() -> None:
    flags = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").is_file() else ""
    assert cpu_supports_bf16() == (
        ("avx512_bf16" in flags or "amx_bf16" in flags) and torch.backends.mkldnn.is_available()
    )


def test_cpu_fp32_runs_no_3x3x3_convolution_in_slow_conv3d(tiny_2x: Path) -> None:
    """PyTorch's reference slow_conv3d (most of the built-in model's fp32 time) runs only the 1x1x1 gates."""
    x = frames(height=64, width=96)
    runner = CPUBackend(precision="fp32").load(load_checkpoint(tiny_2x).model)

    def slow_kernels(run: Callable[[], object]) -> set[str]:
        """The weight shapes that went through slow_conv3d."""
        with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU], record_shapes=True) as prof:
            run()
        events = prof.key_averages(group_by_input_shape=True)
        return {str(e.input_shapes[1][2:]) for e in events if e.key == "aten::slow_conv3d_forward"}

    assert "[3, 3, 3]" in slow_kernels(lambda: reference(tiny_2x, x))  # without the fix: the test can fail
    assert slow_kernels(lambda: runner(x)) <= {"[1, 1, 1]"}
    torch.testing.assert_close(runner(x), reference(tiny_2x, x), rtol=0, atol=FP32_TOLERANCE)


def test_cpu_compile_matches_eager(tiny_2x: Path) -> None:
    x = frames(height=32, width=32)
    out = CPUBackend(precision="fp32", compile=True).load(load_checkpoint(tiny_2x).model)(x)
    torch.testing.assert_close(out, reference(tiny_2x, x), rtol=0, atol=FP32_TOLERANCE)


def test_cpu_compile_without_a_compiler_says_so(tiny_2x: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cpu_module.shutil, "which", lambda name: None)
    with pytest.raises(ValueError, match=r"needs a C\+\+ compiler"):
        CPUBackend(compile=True).load(load_checkpoint(tiny_2x).model)


def test_concurrent_calls_give_the_same_frames(tiny_2x: Path) -> None:
    runner = CPUBackend().load(load_checkpoint(tiny_2x).model)
    inputs = [frames(seed=s) for s in range(4)]
    results: dict[int, torch.Tensor] = {}

    def work(i: int) -> None:
        results[i] = runner(inputs[i])

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for i, x in enumerate(inputs):
        torch.testing.assert_close(results[i], reference(tiny_2x, x), rtol=0, atol=FP32_TOLERANCE)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error shown without a GPU")
def test_cuda_backend_without_a_gpu_is_a_clear_error(tiny_2x: Path) -> None:
    with pytest.raises(ValueError, match=r"needs a CUDA GPU and torch sees none; use device='cpu'"):
        CUDABackend(device=torch.device("cuda", 0)).load(load_checkpoint(tiny_2x).model)


def test_trt_without_torch_tensorrt_is_a_clear_error(tiny_2x: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "torch_tensorrt", None)  # import fails as if not installed
    with pytest.raises(ValueError, match=r"^backend='trt' needs torch-tensorrt: pip install vsflavr\[trt\]$"):
        TensorRTBackend(device=torch.device("cuda", 0)).load(load_checkpoint(tiny_2x).model)
    assert MISSING_TRT == "backend='trt' needs torch-tensorrt: pip install vsflavr[trt]"


@pytest.mark.parametrize(
    ("backend", "device", "precision", "expected"),
    [
        ("auto", "cpu", "fp32", AutoCPUBackend(precision="fp32")),
        ("openvino", "cpu", "bf16", OpenVINOBackend(precision="bf16")),
        ("torch", "cpu", "bf16", CPUBackend(precision="bf16")),
        ("compile", "cpu", "fp32", CPUBackend(precision="fp32", compile=True)),
        ("auto", "cuda:0", "auto", CUDABackend(device=torch.device("cuda", 0), precision="fp16")),
        ("torch", "cuda:0", "bf16", CUDABackend(device=torch.device("cuda", 0), precision="bf16")),
        (
            "compile",
            "cuda:0",
            "fp16",
            CUDABackend(device=torch.device("cuda", 0), compile="max-autotune-no-cudagraphs"),
        ),
        ("trt", "cuda:0", "auto", TensorRTBackend(device=torch.device("cuda", 0), precision="fp16")),
    ],
)
def test_select_backend(backend: str, device: str, precision: str, expected: object) -> None:
    assert select_backend(backend, torch.device(device), precision) == expected


@pytest.mark.parametrize("native_bf16", [True, False])
def test_auto_precision_on_the_cpu_is_bf16_where_it_is_native(
    native_bf16: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(backends, "cpu_supports_bf16", lambda: native_bf16)
    expected = "bf16" if native_bf16 else "fp32"
    # Without native bf16, OpenVINO paths also take the built-in model's int8 network (tests/test_int8.py).
    int8 = not native_bf16
    assert select_backend("auto", torch.device("cpu"), "auto") == AutoCPUBackend(precision=expected, prefer_int8=int8)
    assert select_backend("openvino", torch.device("cpu"), "auto") == OpenVINOBackend(
        precision=expected, prefer_int8=int8
    )
    assert select_backend("auto", torch.device("cpu"), "fp32") == AutoCPUBackend(precision="fp32")
    assert select_backend("torch", torch.device("cpu"), "auto") == CPUBackend(precision=expected)
    assert select_backend("compile", torch.device("cpu"), "auto") == CPUBackend(precision=expected, compile=True)


@pytest.mark.parametrize(
    ("backend", "device", "precision", "message"),
    [
        ("fast", "cpu", "auto", r"backend must be one of 'auto', 'torch', 'compile', 'trt', 'openvino', got 'fast'"),
        ("auto", "cpu", "int4", r"precision must be 'auto', 'fp32', 'fp16', 'bf16' or 'int8', got 'int4'"),
        ("torch", "cpu", "int8", r"precision='int8' runs on the CPU through OpenVINO: use device='cpu' with"),
        ("compile", "cpu", "int8", r"precision='int8' runs on the CPU through OpenVINO"),
        ("auto", "cuda:0", "int8", r"precision='int8' runs on the CPU through OpenVINO"),
        ("auto", "cpu", "fp16", r"precision='fp16' is for GPUs"),
        ("trt", "cpu", "auto", r"backend='trt' needs a CUDA GPU"),
    ],
)
def test_select_backend_refuses(backend: str, device: str, precision: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        select_backend(backend, torch.device(device), precision)


@pytest.mark.parametrize(
    ("tile_size", "overlap", "message"),
    [
        (100, 16, r"tile_size must be a multiple of 8, at least 64"),
        (32, 8, r"tile_size must be a multiple of 8, at least 64"),
        (128, -1, r"tile_overlap must be an integer >= 0"),
        (128, 64, r"tile_overlap \(64\) must be less than half of tile_size \(128\)"),
    ],
)
def test_bad_tiling_is_refused(tile_size: int, overlap: int, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        CPUBackend(tile_size=tile_size, tile_overlap=overlap)


@pytest.mark.parametrize(("size", "tile", "overlap"), [(72, 64, 16), (160, 64, 16), (1088, 512, 32), (200, 64, 0)])
def test_tiles_cover_the_axis_and_weights_sum_to_one(size: int, tile: int, overlap: int) -> None:
    spans = plan_axis(size, tile, overlap)
    assert spans[0][0] == 0 and spans[-1][1] == size
    assert all(stop - start == min(tile, size) for start, stop in spans)
    assert all(a[1] - b[0] >= overlap for a, b in itertools.pairwise(spans))
    total = torch.zeros(size)
    for i, (start, stop) in enumerate(spans):
        total[start:stop] += axis_weights(spans, i)
    torch.testing.assert_close(total, torch.ones(size))


def test_tiles_blend_without_seams() -> None:
    """A position-independent forward gives exactly the whole-frame result, tiled."""
    x = frames(height=136, width=200)

    def forward(t: torch.Tensor) -> torch.Tensor:
        return t[:, 1:3] * 2 - 0.5

    torch.testing.assert_close(run_tiled(forward, x, 64, 16), forward(x), rtol=0, atol=1e-6)


@pytest.mark.parametrize("skip", ["mean", "blend"])
def test_tiled_output_is_close_to_whole_frames_on_footage(tmp_path: Path, skip: str) -> None:
    """Tiles share the whole frame's mean; only FLAVR's SE gates, which pool over the input, differ.

    On footage (160x72, tiles of 64 with 16 px overlap) the difference measured 4.3e-4 at
    most and 2.1e-5 on average away from the frame's edge, for both output paths.  With
    each tile centred on its own mean it was 0.24 / 0.096 (official 'mean' skip).
    """
    weights = make_checkpoint(tmp_path / f"{skip}.pth", 1, seed=1, skip=skip)
    x = bikes_window()
    whole = CPUBackend().load(load_checkpoint(weights).model)(x)
    tiled = CPUBackend(tile_size=64, tile_overlap=16).load(load_checkpoint(weights).model)(x)
    inner = (tiled - whole)[..., 8:-8, 8:-8].abs()
    assert inner.max().item() < 2e-3
    assert inner.mean().item() < 1e-4


def test_auto_tile_uses_whole_frames_when_they_fit() -> None:
    assert auto_tile(1088, 1920, free_bytes=40 * 2**30, element_size=2, lanes=2) is None
    side = auto_tile(2160, 3840, free_bytes=8 * 2**30, element_size=2, lanes=2)
    assert side is not None and side % 8 == 0 and 128 <= side < 2160
    assert side * side * 4096 <= 8 * 2**30 * 0.8 / 2
    assert auto_tile(2160, 3840, free_bytes=2**20, element_size=2, lanes=1) == 128


def test_engine_key_holds_every_build_input() -> None:
    inputs = {
        "shape": (1, 4, 3, 1088, 1920),
        "precision": "fp16",
        "gpu_name": "NVIDIA GeForce RTX 4090",
        "versions": {"torch": "2.14.1+cu130", "torch_tensorrt": "2.14.0", "tensorrt": "10.13.0.35"},
        "weights_sha256": "0123456789abcdef" * 4,
    }
    key = engine_key(**inputs)  # type: ignore[arg-type]
    assert key == (
        "flavr_1x4x3x1088x1920_fp16_NVIDIA-GeForce-RTX-4090_tensorrt-10.13.0.35_torch-2.14.1+cu130_"
        "torch-tensorrt-2.14.0_0123456789abcdef"
    )
    changes = {
        "shape": (1, 4, 3, 544, 960),
        "precision": "bf16",
        "gpu_name": "NVIDIA H100 80GB HBM3",
        "versions": {"torch": "2.14.1+cu130", "torch_tensorrt": "2.14.0", "tensorrt": "10.14.1"},
        "weights_sha256": "fedcba9876543210" * 4,
    }
    for name, value in changes.items():
        assert engine_key(**{**inputs, name: value}) != key, name  # type: ignore[arg-type]
    assert all(c.isalnum() or c in "._+-" for c in key)


def test_weights_checksum_follows_the_weights() -> None:
    torch.manual_seed(0)
    a = FLAVR(1, widths=(8, 16, 32, 64))
    torch.manual_seed(0)
    b = FLAVR(1, widths=(8, 16, 32, 64))
    assert weights_checksum(a) == weights_checksum(b)
    with torch.no_grad():
        b.outconv[1].bias[0] += 1e-6
    assert weights_checksum(a) != weights_checksum(b)


def test_runner_is_what_the_pipeline_calls(tiny_2x: Path) -> None:
    runner = CPUBackend().load(load_checkpoint(tiny_2x).model)
    assert isinstance(runner, Runner) and runner.n_outputs == 1


@pytest.mark.gpu
@needs_cuda
@pytest.mark.parametrize("precision", ["fp16", "bf16"])
def test_cuda_matches_eager(tiny_8x: Path, precision: str) -> None:
    x = frames(batch=2, height=64, width=96)
    backend = CUDABackend(device=torch.device("cuda", 0), precision=precision)
    out = backend.load(load_checkpoint(tiny_8x).model)(x)
    assert out.dtype == torch.float32 and out.device == CPU
    torch.testing.assert_close(out, reference(tiny_8x, x), rtol=0, atol=FP16_TOLERANCE)


@pytest.mark.gpu
@needs_cuda
def test_cuda_streams_serve_parallel_requests(tiny_2x: Path) -> None:
    runner = CUDABackend(device=torch.device("cuda", 0), streams=3, tile_size=64, tile_overlap=16).load(
        load_checkpoint(tiny_2x).model
    )
    inputs = [frames(height=96, width=128, seed=s) for s in range(6)]
    results: dict[int, torch.Tensor] = {}
    threads = [threading.Thread(target=lambda i=i: results.__setitem__(i, runner(inputs[i]))) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    one_stream = CUDABackend(device=torch.device("cuda", 0), streams=1, tile_size=64, tile_overlap=16)
    serial = one_stream.load(load_checkpoint(tiny_2x).model)
    for i, x in enumerate(inputs):
        torch.testing.assert_close(results[i], serial(x), rtol=0, atol=FP16_TOLERANCE)


@pytest.mark.gpu
@needs_cuda
def test_cuda_compile_matches_eager(tiny_2x: Path) -> None:
    x = frames(height=64, width=64)
    backend = CUDABackend(device=torch.device("cuda", 0), compile="max-autotune-no-cudagraphs")
    out = backend.load(load_checkpoint(tiny_2x).model)(x)
    torch.testing.assert_close(out, reference(tiny_2x, x), rtol=0, atol=FP16_TOLERANCE)


@pytest.mark.gpu
@needs_cuda
def test_trt_engine_is_built_once_and_reused(tiny_2x: Path, tmp_path: Path) -> None:
    pytest.importorskip("torch_tensorrt")
    x = frames(height=64, width=64)
    backend = TensorRTBackend(device=torch.device("cuda", 0), cache_dir=tmp_path)
    out = backend.load(load_checkpoint(tiny_2x).model)(x)
    torch.testing.assert_close(out, reference(tiny_2x, x), rtol=0, atol=FP16_TOLERANCE)
    engines = list(tmp_path.glob("*.pt2"))
    assert len(engines) == 1 and "1x4x3x64x64_fp16" in engines[0].name
    again = backend.load(load_checkpoint(tiny_2x).model)(x)
    assert list(tmp_path.glob("*.pt2")) == engines
    torch.testing.assert_close(again, out, rtol=0, atol=1e-3)
