"""The GPU code paths, checked on the CPU with fakes: a fake torch_tensorrt, faked torch.cuda functions, recorders.

No GPU is needed: each test replaces exactly what it must (the CUDA calls, the TensorRT
package) and checks what vsflavr's own code does with it.
"""

from __future__ import annotations

import importlib.machinery
import sys
import threading
import time
import types
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import torch
import vapoursynth as vs

import vsflavr
from vsflavr import bench
from vsflavr.__main__ import main
from vsflavr.backends import CPUBackend, CUDABackend, Runner, TensorRTBackend
from vsflavr.backends import base as base_module
from vsflavr.backends import cuda as cuda_module
from vsflavr.backends.cuda import auto_tile, bf16_supported, cudnn_settings
from vsflavr.backends.tensorrt import ENGINE_FORMAT
from vsflavr.backends.tiling import check_tiling, plan_axis, run_tiled
from vsflavr.checkpoint import load_checkpoint

CPU = torch.device("cpu")
GiB = 2**30


def frames(height: int = 32, width: int = 32, seed: int = 0) -> torch.Tensor:
    return torch.rand(1, 4, 3, height, width, generator=torch.Generator().manual_seed(seed))


# --- defect 1: TensorRT -------------------------------------------------------------------------------------------


def fake_torch_tensorrt(version: str, calls: list[dict[str, object]]) -> types.ModuleType:
    """torch_tensorrt ``version`` as far as vsflavr uses it, enforcing that release's rules on compile's arguments.

    2.10-2.12 default to ``use_explicit_typing=True`` and then assert that ``enabled_precisions``
    holds nothing but fp32 (read from their wheels' dynamo/_compiler.py); 2.13 removed both arguments.  ``save`` wants a ``.pt2`` file, as torch.export does.
    """
    minor = int(version.split(".")[1])
    trt = types.ModuleType("torch_tensorrt")
    trt.__version__ = version

    def compile(module: torch.nn.Module, *, ir: str, inputs: list[torch.Tensor], **settings: object) -> object:
        removed = {"enabled_precisions", "use_explicit_typing"} & set(settings)
        if minor >= 13 and removed:
            raise TypeError(f"compile() got an unexpected keyword argument {min(removed)!r}")
        if settings.get("use_explicit_typing", True) and set(settings.get("enabled_precisions", ())) - {torch.float32}:
            raise AssertionError(
                "When use_explicit_typing is enabled, only torch.float32 is allowed in enabled_precisions"
            )
        weights = {p.dtype for p in module.parameters()}
        calls.append({"ir": ir, "weights": weights, "inputs": {t.dtype for t in inputs}, **settings})
        return module

    def save(compiled: object, path: str, *, inputs: list[torch.Tensor]) -> None:
        if not path.endswith(".pt2"):
            raise ValueError(f"torch.export.save wants a .pt2 file, got {path}")
        Path(path).write_bytes(b"engine")

    def load(path: str) -> object:
        def engine(x: torch.Tensor, mean: torch.Tensor) -> torch.Tensor:
            return torch.zeros(x.shape[0], 1, 3, *x.shape[-2:], dtype=x.dtype)

        return types.SimpleNamespace(module=lambda: engine)

    trt.compile, trt.save, trt.load = compile, save, load
    return trt


@contextmanager
def fake_trt_install(monkeypatch: pytest.MonkeyPatch, version: str) -> Iterator[list[dict[str, object]]]:
    """torch-tensorrt ``version`` installed next to a torch of the same minor version, on a fake GPU."""
    calls: list[dict[str, object]] = []
    monkeypatch.setitem(sys.modules, "torch_tensorrt", fake_torch_tensorrt(version, calls))
    monkeypatch.setitem(sys.modules, "tensorrt", types.SimpleNamespace(__version__="10.16.1"))
    monkeypatch.setattr(torch, "__version__", f"{version.rsplit('.', 1)[0]}.0+cu130")
    monkeypatch.setattr(cuda_module, "require_cuda", lambda device, what: None)
    monkeypatch.setattr(torch.cuda, "synchronize", lambda device=None: None)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "Fake GPU")
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (20 * GiB, 24 * GiB))
    yield calls


@pytest.mark.parametrize("version", ["2.10.0", "2.11.0", "2.12.1", "2.13.0", "2.14.0"])
@pytest.mark.parametrize("precision", ["fp16", "bf16", "fp32"])
def test_trt_builds_in_the_target_dtype_on_every_torch_tensorrt(
    version: str, precision: str, tiny_2x: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    dtype = {"fp16": torch.float16, "bf16": torch.bfloat16, "fp32": torch.float32}[precision]
    monkeypatch.setattr(cuda_module, "bf16_supported", lambda device: True)
    with fake_trt_install(monkeypatch, version) as calls:
        backend = TensorRTBackend(device=CPU, precision=precision, cache_dir=tmp_path)  # the fake GPU is the CPU
        out = backend.load(load_checkpoint(tiny_2x).model)(frames())
    assert out.shape == (1, 1, 3, 32, 32) and out.dtype == torch.float32
    (call,) = calls
    assert call["weights"] == {dtype} and call["inputs"] == {dtype}
    assert "enabled_precisions" not in call and "use_explicit_typing" not in call
    assert call["disable_tf32"] == (precision == "fp32")  # fp32 means fp32, as on the torch backend
    (engine,) = tmp_path.iterdir()
    assert engine.suffix == ".pt2" and f"_{precision}_Fake-GPU_" in engine.name
    assert f"vsflavr-{vsflavr.__version__}-{ENGINE_FORMAT}" in engine.name  # a change of network code rebuilds


def test_trt_for_another_torch_names_the_matching_version(
    tiny_2x: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with fake_trt_install(monkeypatch, "2.12.1"):
        monkeypatch.setattr(torch, "__version__", "2.14.1+cu130")
        with pytest.raises(ValueError, match=r"torch-tensorrt 2\.12\.1 is built for another torch than 2\.14\.1"):
            TensorRTBackend(device=CPU, cache_dir=tmp_path).load(load_checkpoint(tiny_2x).model)
        assert not list(tmp_path.iterdir())


def test_trt_that_fails_to_import_is_a_clear_error(
    tiny_2x: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delitem(sys.modules, "tensorrt", raising=False)
    monkeypatch.setattr(sys, "meta_path", [BrokenTensorRT(), *sys.meta_path])
    with pytest.raises(ValueError, match=r"torch-tensorrt is installed but does not import \(OSError: libnvinfer"):
        TensorRTBackend(device=CPU, cache_dir=tmp_path).load(load_checkpoint(tiny_2x).model)


class BrokenTensorRT:
    """A meta path finder whose ``tensorrt`` fails to import as a broken install does (a missing libnvinfer)."""

    def find_spec(self, name: str, path: object, target: object = None) -> importlib.machinery.ModuleSpec | None:
        return importlib.machinery.ModuleSpec(name, self) if name == "tensorrt" else None

    def create_module(self, spec: object) -> None:
        return None

    def exec_module(self, module: types.ModuleType) -> None:
        raise OSError("libnvinfer.so.10: cannot open shared object file: No such file or directory")


# --- defect 2: one compile per shape ----------------------------------------------------------------------------


class CompilingForward:
    """Stands for a torch.compile'd network: the first call of a shape "compiles" (slowly), unless cached."""

    def __init__(self) -> None:
        self.cache: set[tuple[int, ...]] = set()
        self.compiles: list[tuple[int, ...]] = []

    def __call__(self, x: torch.Tensor, mean: torch.Tensor) -> torch.Tensor:
        shape = tuple(x.shape)
        if shape not in self.cache:  # Dynamo checks its cache once, before waiting for another compile
            self.compiles.append(shape)
            time.sleep(0.3)
            self.cache.add(shape)
        return x[:, 1:3]


def together(runner: Runner, inputs: list[torch.Tensor]) -> list[torch.Tensor]:
    """``runner`` on each input, from one thread each, all released at once (as VapourSynth's requests arrive)."""
    barrier = threading.Barrier(len(inputs))
    results: dict[int, torch.Tensor] = {}

    def work(i: int) -> None:
        barrier.wait()
        results[i] = runner(inputs[i])

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(inputs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return [results[i] for i in range(len(inputs))]


def test_two_lanes_compile_each_shape_once() -> None:
    forward = CompilingForward()
    runner = Runner(forward, n_outputs=2, device=CPU, dtype=torch.float32, lanes=2)
    for size in ((32, 32), (40, 48)):
        inputs = [frames(*size, seed=0), frames(*size, seed=1)]
        for x, out in zip(inputs, together(runner, inputs), strict=True):
            torch.testing.assert_close(out, x[:, 1:3])
    assert forward.compiles == [(1, 4, 3, 32, 32), (1, 4, 3, 40, 48)]


# --- defect 3: no host copies per tile --------------------------------------------------------------------------


def test_tiles_make_their_blend_weights_on_the_device(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each ``.to(device)`` in the tile loop is a blocking copy from pageable host memory on a GPU."""
    copies: list[object] = []
    original = torch.Tensor.to

    def recording_to(self: torch.Tensor, *args: object, **kwargs: object) -> torch.Tensor:
        copies.append(args or kwargs)
        return original(self, *args, **kwargs)

    x = frames(136, 200)
    expected = x[:, 1:3] * 2 - 0.5
    monkeypatch.setattr(torch.Tensor, "to", recording_to)
    out = run_tiled(lambda t: t[:, 1:3] * 2 - 0.5, x, 64, 16)
    monkeypatch.undo()
    assert copies == []
    torch.testing.assert_close(out, expected, rtol=0, atol=1e-6)


# --- defect 4: bf16 asked of the chosen GPU ---------------------------------------------------------------------


@pytest.fixture
def two_gpus(monkeypatch: pytest.MonkeyPatch) -> None:
    """cuda:0 an RTX 3090 (8.6, bf16), cuda:1 a T4 (7.5, no bf16); torch's own bf16 check says yes (emulation)."""
    capability = {0: (8, 6), 1: (7, 5)}
    name = {0: "NVIDIA GeForce RTX 3090", 1: "Tesla T4"}
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *args, **kwargs: True)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: capability[torch.device(device).index])
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: name[torch.device(device).index])


@pytest.mark.usefixtures("two_gpus")
def test_bf16_is_checked_on_the_chosen_gpu(tiny_2x: Path) -> None:
    assert bf16_supported(torch.device("cuda", 0)) and not bf16_supported(torch.device("cuda", 1))
    backend = CUDABackend(device=torch.device("cuda", 1), precision="bf16")
    with pytest.raises(ValueError, match=r"^the CUDA backend: Tesla T4 has no bf16; use precision='fp16'$"):
        backend.load(load_checkpoint(tiny_2x).model)


# --- defect 5: the lane's device is current before its stream -----------------------------------------------------


@pytest.fixture
def fake_streams(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, object]]:
    """torch.cuda.Stream, device() and stream() replaced by recorders; returns the contexts entered, in order."""
    active: list[tuple[str, object]] = []

    class Stream:
        def __init__(self, device: torch.device) -> None:
            self.device = device

        def synchronize(self) -> None:
            pass

    def recorder(kind: str) -> object:
        @contextmanager
        def context(value: object) -> Iterator[None]:
            active.append((kind, value))
            try:
                yield
            finally:
                active.remove((kind, value))

        return context

    monkeypatch.setattr(torch.cuda, "Stream", Stream)
    monkeypatch.setattr(torch.cuda, "device", recorder("device"))
    monkeypatch.setattr(torch.cuda, "stream", recorder("stream"))
    monkeypatch.setattr(base_module, "pinned_empty", lambda shape: torch.empty(shape))
    return active


def test_cuda_lane_makes_its_device_current_before_entering_its_stream(
    fake_streams: list[tuple[str, object]],
) -> None:
    lane = base_module._CudaLane(CPU, torch.float32)  # the CPU stands in for the lane's GPU
    seen: list[list[tuple[str, object]]] = []

    def compute(x: torch.Tensor) -> torch.Tensor:
        seen.append(list(fake_streams))
        return x * 2

    x = frames()
    torch.testing.assert_close(lane.run(x, compute), x * 2)
    assert seen == [[("device", CPU), ("stream", lane.stream)]]
    assert fake_streams == []


# --- defect 6: cuDNN settings scoped to vsflavr's passes; fp32 is not TF32 ---------------------------------------


def test_cuda_backend_scopes_cudnn_settings_to_its_passes(tiny_2x: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.backends.cudnn, "benchmark", False)
    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", True)  # torch's default: fp32 convolutions in TF32
    monkeypatch.setattr(cuda_module.GPUBackend, "prepare", lambda self, model, what: model.eval())
    monkeypatch.setattr(
        cuda_module.GPUBackend,
        "runner",
        lambda self, forward, n_outputs: Runner(forward, n_outputs=n_outputs, device=CPU, dtype=torch.float32),
    )
    model = load_checkpoint(tiny_2x).model
    during: list[tuple[bool, bool]] = []
    model.register_forward_hook(
        lambda *args: during.append((torch.backends.cudnn.benchmark, torch.backends.cudnn.allow_tf32))
    )
    runner = CUDABackend(device=torch.device("cuda", 0), precision="fp32").load(model)
    assert (torch.backends.cudnn.benchmark, torch.backends.cudnn.allow_tf32) == (False, True)
    runner(frames())
    assert during == [(True, False)]
    assert (torch.backends.cudnn.benchmark, torch.backends.cudnn.allow_tf32) == (False, True)


def test_cudnn_settings_hold_until_the_last_concurrent_pass_ends(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.backends.cudnn, "benchmark", False)
    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", True)
    first, second = cudnn_settings(), cudnn_settings()
    first.__enter__()
    second.__enter__()
    first.__exit__(None, None, None)
    assert (torch.backends.cudnn.benchmark, torch.backends.cudnn.allow_tf32) == (True, False)
    second.__exit__(None, None, None)
    assert (torch.backends.cudnn.benchmark, torch.backends.cudnn.allow_tf32) == (False, True)


# --- defects 8 and 9: automatic tiles -----------------------------------------------------------------------------


@pytest.mark.parametrize("overlap", [64, 100, 128, 200])
def test_automatic_tiles_leave_room_for_the_users_overlap(overlap: int, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (256 * 2**20, 24 * GiB))
    backend = CUDABackend(device=torch.device("cuda", 0), tile_overlap=overlap)
    tile = backend.tile_for(2160, 3840)
    assert tile is not None and tile % 8 == 0
    check_tiling(tile, overlap)  # the same rule as a tile_size given by the user
    spans = plan_axis(2160, tile, overlap)
    assert spans[0][0] == 0 and spans[-1][1] == 2160


@pytest.mark.parametrize("free_gib", [3, 6, 12, 20])
def test_automatic_tiles_do_not_move_with_free_memory_a_half_percent_apart(free_gib: int) -> None:
    """TensorRT builds an engine per tile size (minutes): a run with a little less free memory must reuse it."""
    sides = {
        auto_tile(2160, 3840, free_bytes=int(free_gib * GiB * factor), element_size=2, lanes=2)
        for factor in (1.0, 0.9975, 0.995)
    }
    assert len(sides) == 1 and None not in sides


# --- defect 10: the bench reports a failing backend as a row ----------------------------------------------------


class FailingBackend:
    def __init__(self, fail_on_call: int) -> None:
        self.fail_on_call = fail_on_call

    def load(self, model: object) -> object:
        calls = [0]

        def run(x: torch.Tensor) -> torch.Tensor:
            calls[0] += 1
            if calls[0] >= self.fail_on_call:
                raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB\nmore lines")
            return x[:, 1:2]

        return run


def test_bench_reports_a_failing_backend_as_unavailable(
    tiny_2x: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    real = bench._backend
    fakes = {"first:fp16": FailingBackend(1), "later:fp16": FailingBackend(2)}
    monkeypatch.setattr(bench, "_backend", lambda spec, device: fakes.get(spec) or real(spec, device))
    argv = ["bench", "--size", "32x32", "--repeats", "2", "--weights", str(tiny_2x), "--device", "cpu"]
    assert main([*argv, "--backends", "first:fp16", "torch:fp32", "later:fp16"]) == 1
    lines = [line for line in capsys.readouterr().out.splitlines() if not line.startswith("#")]  # the CPU line
    assert [line.split(" | ")[2] for line in lines[1:3]] == [bench.BASELINE, "torch:fp32"]
    for spec in fakes:
        assert f"32x32 | 2 | {spec} | unavailable: OutOfMemoryError: CUDA out of memory. Tried to allocate" in (
            "\n".join(lines)
        )
    assert len(lines) == 5


# --- defect 11: failures of a backend through flavr(); bounded pinned buffers ------------------------------------


@pytest.mark.parametrize(
    ("error", "message"),
    [
        (torch.cuda.OutOfMemoryError("CUDA out of memory."), r"^flavr: cpu ran out of memory loading the network; "),
        (
            RuntimeError("CUDA error: no kernel image is available for execution on the device\nCUDA kernel errors"),
            (
                r"^flavr: backend='torch' failed to start on cpu \(RuntimeError: CUDA error: no kernel image is "
                r"available for execution on the device\); check the GPU and its driver with `python -m vsflavr info`"
            ),
        ),
        (ValueError("backend='trt' needs torch-tensorrt"), r"^flavr: backend='trt' needs torch-tensorrt$"),
    ],
)
def test_backend_failures_are_vs_errors_with_what_to_do(
    error: Exception, message: str, tiny_2x: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def load(self: object, model: object) -> object:
        raise error

    monkeypatch.setattr(CPUBackend, "load", load)
    clip = vs.core.std.BlankClip(width=32, height=24, format=vs.RGBS, length=3)
    with pytest.raises(vs.Error, match=message) as raised:
        vsflavr.flavr(clip, weights=tiny_2x, device="cpu", backend="torch")
    assert "\n" not in str(raised.value)


def test_pinned_buffers_are_one_window_per_lane(fake_streams: list[tuple[str, object]]) -> None:
    lane = base_module._CudaLane(CPU, torch.float32)
    for height in (32, 40, 48, 32):
        lane.run(frames(height, 56), lambda x: x[:, 1:2])
    assert sorted(lane._pinned) == ["in", "out"]
    assert lane._pinned["in"].shape == (1, 4, 3, 32, 56) and lane._pinned["out"].shape == (1, 1, 3, 32, 56)


def test_out_of_memory_in_a_frame_says_what_to_do(tiny_2x: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A GPU running out of memory on the first frame of a size, not at load: the error's last line says what to do."""

    def forward(x: torch.Tensor, mean: torch.Tensor) -> torch.Tensor:
        raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB\nmore lines")

    original = CPUBackend.load

    def load(self: CPUBackend, model: object) -> Runner:
        runner = original(self, model)
        return Runner(forward, n_outputs=runner.n_outputs, device=runner.device, dtype=runner.dtype)

    monkeypatch.setattr(CPUBackend, "load", load)
    clip = vs.core.std.BlankClip(width=32, height=24, format=vs.RGBS, length=3)
    out = vsflavr.flavr(clip, weights=tiny_2x, device="cpu", backend="torch")
    with pytest.raises(vs.Error) as raised:
        out.get_frame(1)
    assert str(raised.value).strip().splitlines()[-1] == (
        "RuntimeError: flavr: cpu ran out of memory on a 32x24 window; set tile_size (e.g. 512) to run it in "
        "tiles, close other programs on the GPU, or lower core.num_threads"
    )


def test_a_broken_cuda_install_is_a_vs_error(tiny_2x: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken() -> int:
        raise RuntimeError("Unexpected error from cudaGetDeviceCount(). Did you run some cuda functions before?\nmore")

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", broken)
    clip = vs.core.std.BlankClip(width=32, height=24, format=vs.RGBS, length=3)
    with pytest.raises(
        vs.Error,
        match=r"^flavr: cannot ask CUDA for device 1 \(RuntimeError: Unexpected error from "
        r"cudaGetDeviceCount\(\)\. Did you run some cuda functions before\?\); check the GPU",
    ) as raised:
        vsflavr.flavr(clip, weights=tiny_2x, device=1)
    assert "\n" not in str(raised.value)
