"""``python -m vsflavr bench``: vsflavr's backends against the official way of running FLAVR.

The baseline is what the official ``interpolate.py`` does: the network in fp32, batch 1,
``torch.no_grad()``, nothing else.  It runs in the same process on the same inputs as
every backend, so each backend's speed-up and its difference from the fp32 output are
measured, not assumed.  Each row also gives the work of one pass (GFLOP counted from the
network's layer shapes at the frame size, a multiply-add being 2, :mod:`vsflavr.flops`) and
the rate it was done at (GFLOP/s), to compare with the CPU's or GPU's peak.  After a first
pass each (compilation happens there), the timed passes go round the baseline and the backends in turn, and the fastest pass of each
counts: on a shared machine, other work only ever adds time.  Inputs are synthetic footage-like frames (smooth gradients and
texture moving a few pixels per frame), so no file is needed; the network is the
official architecture with seeded random weights unless a checkpoint is given (``builtin``: the built-in
model).  On the CPU the table starts with a ``# CPU:`` line naming the CPU and its relevant flags.
"""

from __future__ import annotations

import copy
import ctypes
import math
import re
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache, partial
from pathlib import Path
from typing import TextIO

import torch
from torch import Tensor

from .backends import Backend, select_backend
from .backends.cpu import cpu_description
from .backends.openvino import openvino_available
from .checkpoint import load_checkpoint
from .errors import first_line, one_line
from .flops import pass_flop
from .network import FLAVR
from .weights import builtin_model

__all__ = ["Row", "default_specs", "parse_size", "run_bench", "sample_frames"]

BASELINE = "official fp32"
_M_MMAP_THRESHOLD = -3  # glibc's mallopt parameter number
COLUMNS = (
    "size",
    "multi",
    "backend",
    "passes/s",
    "out fps",
    "GFLOP/pass",
    "GFLOP/s",
    "first s",
    "peak MiB",
    "max diff",
    "x baseline",
)


@dataclass(frozen=True)
class Row:
    """One measured line of the table."""

    size: str
    multi: int
    backend: str
    seconds: float
    flop: int
    """Operations of one pass (:func:`~vsflavr.flops.pass_flop`), the same for every backend of a size."""
    first_seconds: float
    peak_bytes: int | None
    max_diff: float
    ratio: float

    def cells(self) -> tuple[str, ...]:
        peak = "n/a" if self.peak_bytes is None else f"{self.peak_bytes / 2**20:.0f}"
        return (
            self.size,
            str(self.multi),
            self.backend,
            f"{1 / self.seconds:.4g}",
            f"{self.multi / self.seconds:.4g}",
            f"{self.flop / 1e9:.4g}",
            f"{self.flop / 1e9 / self.seconds:.4g}",
            f"{self.first_seconds:.1f}",
            peak,
            f"{self.max_diff:.1e}",
            f"{self.ratio:.2f}",
        )


def parse_size(text: str) -> tuple[int, int]:
    """``"WxH"`` -> (width, height); both multiples of 8."""
    match = re.fullmatch(r"(\d+)x(\d+)", text)
    if not match or int(match[1]) % 8 or int(match[2]) % 8 or not int(match[1]) or not int(match[2]):
        raise ValueError(f"size must be WIDTHxHEIGHT, both positive multiples of 8, e.g. 256x256; got {text!r}")
    return int(match[1]), int(match[2])


def default_specs(device: torch.device) -> list[str]:
    """The backends measured when none are named: PyTorch in each precision the device runs fast."""
    if device.type == "cuda":
        return ["torch:fp16", "torch:bf16"]
    return ["torch:fp32", "torch:bf16", *(["openvino:fp32", "openvino:bf16"] if openvino_available() else [])]


def sample_frames(width: int, height: int) -> Tensor:
    """Four footage-like frames (1, 4, 3, H, W) in 0..1: gradients and texture panning 3 px a frame."""
    generator = torch.Generator().manual_seed(0)
    y = torch.arange(height, dtype=torch.float32)[:, None]
    x = torch.arange(width, dtype=torch.float32)[None, :]
    grain = torch.rand(3, height + 12, width + 12, generator=generator) * 0.06
    frames = []
    for t in range(4):
        shift = 3 * t
        u = x + shift
        base = torch.stack(
            [
                0.45 + 0.25 * torch.sin(u / 23) * torch.cos(y / 31),
                0.40 + 0.20 * torch.sin((u + y) / 17) + 0.15 * (y / height),
                0.35 + 0.25 * torch.cos(u / 41 - y / 29),
            ]
        )
        frames.append(base + grain[:, 6 : 6 + height, 12 - shift : 12 - shift + width])
    return torch.stack(frames).clamp(0, 1).unsqueeze(0)


@contextmanager
def _peak_memory(device: torch.device) -> Iterator[Callable[[], int | None]]:
    """Measures the peak memory above the level at entry: CUDA allocations, or resident memory (Linux)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        start = torch.cuda.memory_allocated(device)
        peak: list[int | None] = [None]
        yield lambda: peak[0]
        peak[0] = torch.cuda.max_memory_allocated(device) - start
        return
    status = Path("/proc/self/status")
    _return_freed_memory()
    try:
        Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM, the peak resident set size
        start = _status_bytes(status, "VmRSS")
    except OSError:
        yield lambda: None
        return
    result: list[int | None] = [None]
    yield lambda: result[0]
    result[0] = _status_bytes(status, "VmHWM") - start


@cache
def _return_freed_memory() -> None:
    """Make glibc hand large freed blocks back to the system, so resident memory follows live memory.

    By default glibc raises its mmap threshold after big frees and keeps later blocks on its
    heap: memory freed by one backend would then hide the next one's peak.
    """
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return
    libc.mallopt(_M_MMAP_THRESHOLD, 1 << 16)


def _status_bytes(status: Path, field: str) -> int:
    match = re.search(rf"^{field}:\s+(\d+) kB", status.read_text(), re.MULTILINE)
    assert match, field
    return int(match[1]) * 1024


@dataclass
class _Timing:
    """One way of running the network, measured over interleaved rounds."""

    run: Callable[[], Tensor]
    output: Tensor
    first: float
    best: float = math.inf
    peak: int | None = None

    @classmethod
    def start(cls, run: Callable[[], Tensor]) -> _Timing:
        """The first pass (compilation, allocator warm-up), timed apart from the others."""
        start = time.perf_counter()
        output = run()
        return cls(run, output, time.perf_counter() - start)

    def time_pass(self, device: torch.device) -> None:
        """One more timed pass: keeps the fastest time and the largest peak memory."""
        with _peak_memory(device) as peak:
            start = time.perf_counter()
            self.run()
            elapsed = time.perf_counter() - start
        self.best = min(self.best, elapsed)
        if (used := peak()) is not None:
            self.peak = max(self.peak or 0, used)


def _official(model: FLAVR, frames: Tensor, device: torch.device) -> Callable[[], Tensor]:
    """The official interpolate.py's way: fp32 model on the device, batch 1, no_grad, result to the CPU."""
    model = model.to(device).eval()

    def run() -> Tensor:
        with torch.no_grad():
            return model(frames.to(device)).cpu()

    return run


def _network(multi: int, weights: Path | None) -> FLAVR:
    if weights == Path("builtin"):
        weights = builtin_model(multi)
        if weights is None:
            raise ValueError(f"--multi {multi} cannot be made by any built-in model")
    if weights is not None:
        model = load_checkpoint(weights).model
        if model.n_outputs + 1 < multi or (model.n_outputs + 1) % multi:
            raise ValueError(f"--multi {multi} cannot be made by the {model.n_outputs + 1}x checkpoint {weights}")
        return model
    torch.manual_seed(0)
    return FLAVR(multi - 1).eval().requires_grad_(False)


def _backend(spec: str, device: torch.device) -> Backend:
    name, _, precision = spec.partition(":")
    return select_backend(name, device, precision or "auto")


def run_bench(
    *,
    sizes: Sequence[tuple[int, int]],
    multis: Sequence[int],
    specs: Sequence[str],
    device: torch.device,
    repeats: int,
    weights: Path | None = None,
    out: TextIO,
) -> int:
    """Print the table to ``out``; returns 1 if a backend could not run, else 0."""
    failed = 0
    if device.type == "cpu":
        print(f"# CPU: {cpu_description()}", file=out, flush=True)
    print(" | ".join(COLUMNS), file=out, flush=True)
    for multi in multis:
        network = _network(multi, weights)
        for width, height in sizes:
            size = f"{width}x{height}"
            frames = sample_frames(width, height)
            flop = pass_flop(network, width, height)
            timings = {BASELINE: _Timing.start(_official(copy.deepcopy(network), frames, device))}
            unavailable = []
            for spec in specs:
                try:
                    runner = _backend(spec, device).load(copy.deepcopy(network))
                    timings[spec] = _Timing.start(partial(runner, frames))
                except Exception as exc:  # noqa: BLE001 - a backend that fails (TensorRT, out of memory) is a row
                    unavailable.append(f"{size} | {multi} | {spec} | unavailable: {_reason(exc)}")
            # Rounds over every backend in turn, so that load from other work hits them all alike.
            for _ in range(repeats):
                for spec, timing in list(timings.items()):
                    try:
                        timing.time_pass(device)
                    except Exception as exc:  # as above, for a failure after the first pass
                        if spec == BASELINE:
                            raise
                        del timings[spec]
                        unavailable.append(f"{size} | {multi} | {spec} | unavailable: {_reason(exc)}")
            baseline = timings[BASELINE]
            for label, timing in timings.items():
                diff = (timing.output - baseline.output).abs().max().item()
                row = Row(
                    size, multi, label, timing.best, flop, timing.first, timing.peak, diff, baseline.best / timing.best
                )
                print(" | ".join(row.cells()), file=out, flush=True)
            for line in unavailable:
                print(line, file=out, flush=True)
            failed |= bool(unavailable)
    return failed


def _reason(exc: Exception) -> str:
    """Why a backend could not run, in one line: the message of a ValueError, else the type and first line."""
    return first_line(exc) if isinstance(exc, ValueError) else one_line(exc)
