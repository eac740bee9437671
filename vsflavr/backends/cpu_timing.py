"""A one-off timing of the CPU backends for a network and input shape, kept on disk like cuDNN's benchmark cache.

Which CPU path is faster depends on the CPU, the library versions, the network's shape, the frame
size and the precision; a rule written from a few machines was wrong on the next one (an AVX2-only
EPYC ran OpenVINO 1.3x PyTorch on the official network where the rule had picked PyTorch).  So
``backend="auto"`` times both, once, on the first window of each size, and keeps the result in
``<user cache dir>/vsflavr/cpu-timing`` under a key of all of these (see :func:`timing_key`):
later runs on the same machine read it back.

A timing is cheap: one untimed pass each (compilation, allocation), then :data:`ROUNDS` rounds
over the candidates in turn, the fastest pass of each counting (other work on the machine only
ever adds time); while the two fastest are within 30 % of each other, more rounds follow, up to
:data:`MAX_ROUNDS` (two passes on a loaded machine once picked PyTorch at 5.7 s against 6.9 s for
OpenVINO, which then ran its passes in 4.1 s).  Large frames are timed on a centre crop of the same aspect whose pass is at most
:data:`BUDGET_FLOP` (:func:`timing_size`); the crop's sums are those of the same layers, so the
ranking carries over.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import math
import os
import threading
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import platformdirs
import torch
from torch import Tensor

from ..flops import pass_flop
from ..network import FLAVR
from .base import Forward
from .cpu import cpu_description
from .tensorrt import _vsflavr_version

__all__ = [
    "BUDGET_FLOP",
    "CLOSE",
    "ENV_TIMING",
    "MAX_ROUNDS",
    "ROUNDS",
    "Timing",
    "TimingCache",
    "default_timing_dir",
    "flop_per_pixel",
    "time_forwards",
    "timing_key",
    "timing_size",
]

logger = logging.getLogger("vsflavr")

ENV_TIMING = "VSFLAVR_CPU_TIMING"
"""Set to ``0`` to skip the timing: ``backend="auto"`` then follows its rule (see :mod:`.cpu_auto`)."""

ROUNDS = 2
"""Timed passes per candidate, after one untimed pass each, when the fastest is clearly ahead."""

MAX_ROUNDS = 5
"""Timed passes per candidate when the two fastest stay within :data:`CLOSE` of each other."""

CLOSE = 1.3
"""A lead of less than this factor is taken as possibly load, so more rounds are run (up to :data:`MAX_ROUNDS`)."""

BUDGET_FLOP = 6e11
"""The largest pass timed (600 GFLOP: the official network at 256x256, about 1-2 s on 2 cores in fp32)."""

_ISA_LIMITS = ("ONEDNN_MAX_CPU_ISA", "DNNL_MAX_CPU_ISA", "MKL_ENABLE_INSTRUCTIONS", "OMP_NUM_THREADS")
"""Environment variables that change the kernels or threads the libraries use, part of the key."""


def default_timing_dir() -> Path:
    """``<user cache dir>/vsflavr/cpu-timing``."""
    return Path(platformdirs.user_cache_dir("vsflavr")) / "cpu-timing"


@dataclass(frozen=True)
class Timing:
    """What a timing found: the fastest pass of each candidate (``inf`` where it failed) and the winner."""

    chosen: str
    seconds: dict[str, float]
    """Fastest timed pass of each candidate, in seconds, at :attr:`timed_size`."""
    timed_size: tuple[int, int]
    """(width, height) of the windows timed: the frame size, or a centre crop of it."""
    failures: dict[str, str]
    """Why a candidate could not run, by name."""

    def describe(self) -> str:
        """E.g. ``openvino 0.21 s, torch 0.48 s a pass at 640x272``."""
        width, height = self.timed_size
        figures = ", ".join(
            f"{name} {seconds:.3g} s" if math.isfinite(seconds) else f"{name} failed ({self.failures.get(name, '')})"
            for name, seconds in sorted(self.seconds.items(), key=lambda item: item[1])
        )
        return f"{figures} a pass at {width}x{height}"


def timing_key(model: FLAVR, precision: str, extra: Mapping[str, str] | None = None) -> dict[str, Any]:
    """What a timing depends on, except the input shape: the CPU, library versions, network shape, precision.

    Not the weights: speed does not depend on them.
    """
    key: dict[str, Any] = {
        "cpu": cpu_description(),
        "vsflavr": _vsflavr_version(),
        "torch": torch.__version__,
        "network": {
            "widths": list(model.widths),
            "blocks": list(model.blocks),
            "n_inputs": model.n_inputs,
            "n_outputs": model.n_outputs,
            "encoder_bias": model.encoder_bias,
            "skip": model.skip,
        },
        "precision": precision,
        "environment": {name: os.environ[name] for name in _ISA_LIMITS if name in os.environ},
    }
    key.update(extra or {})
    return key


def flop_per_pixel(model: FLAVR) -> float:
    """Operations of a pass of ``model`` per pixel of the frame (from a 64x64 pass)."""
    return pass_flop(model, 64, 64) / (64 * 64)


def timing_size(per_pixel: float, width: int, height: int, budget: float = BUDGET_FLOP) -> tuple[int, int]:
    """(width, height) to time: the frame itself if its pass (``per_pixel`` operations a pixel) is within
    ``budget``, else the largest centre crop of about the same aspect within it (multiples of 8, at least 64)."""
    flop = per_pixel * width * height
    if flop <= budget:
        return width, height
    scale = math.sqrt(budget / flop)
    crop_height = min(height, max(64, int(height * scale) // 8 * 8))
    return min(width, max(64, int(budget / (per_pixel * crop_height)) // 8 * 8)), crop_height


def _centre_crop(x: Tensor, width: int, height: int) -> Tensor:
    top, left = (x.shape[-2] - height) // 2, (x.shape[-1] - width) // 2
    return x[..., top : top + height, left : left + width].contiguous()


def time_forwards(candidates: Mapping[str, Forward], x: Tensor, mean: Tensor, width: int, height: int) -> Timing:
    """Time each candidate on ``x`` cropped to ``width`` x ``height``; the fastest that ran is chosen.

    Raises RuntimeError (with each reason) only when no candidate runs.
    """
    crop = _centre_crop(x, width, height)
    runs: dict[str, Forward] = {}
    failures: dict[str, str] = {}
    for name, forward in candidates.items():
        try:
            forward(crop, mean)
            runs[name] = forward
        except Exception as exc:  # noqa: BLE001 - a candidate that cannot run loses; the others go on
            failures[name] = f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}"
    if not runs:
        raise RuntimeError("; ".join(f"{name}: {why}" for name, why in failures.items()))
    best = dict.fromkeys(candidates, math.inf)
    for done in range(1, MAX_ROUNDS + 1):
        for name, forward in runs.items():
            start = time.perf_counter()
            forward(crop, mean)
            best[name] = min(best[name], time.perf_counter() - start)
        fastest = sorted(best[name] for name in runs)
        if done >= ROUNDS and (len(fastest) < 2 or fastest[1] > CLOSE * fastest[0]):
            break
    chosen = min(runs, key=lambda name: best[name])
    return Timing(chosen, best, (width, height), failures)


class TimingCache:
    """Timings on disk: one JSON file per key and input shape, written whole (atomic rename), read back as they are.

    Several processes may time the same key at once (the chunks of ``render`` on one machine); the first
    timing stored stays and :meth:`put` returns it, so every process on the machine runs the same backend
    and their frames agree bit for bit.
    """

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._lock = threading.Lock()

    def _stem(self, key: Mapping[str, Any]) -> str:
        return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]

    def path(self, key: Mapping[str, Any], shape: tuple[int, ...]) -> Path:
        """The file of ``key`` and input ``shape`` (B, T, 3, H, W)."""
        return self.directory / f"{self._stem(key)}-{'x'.join(map(str, shape))}.json"

    def get(self, key: Mapping[str, Any], shape: tuple[int, ...]) -> Timing | None:
        """The stored timing, or None if there is none (or it cannot be read: it is then timed again)."""
        try:
            data = json.loads(self.path(key, shape).read_text())
            if data["key"] != json.loads(json.dumps(key)):
                return None
            return _timing_from(data["timing"])
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def put(self, key: Mapping[str, Any], shape: tuple[int, ...], timing: Timing) -> Timing:
        """Store ``timing`` unless another process stored one first; returns the timing that stays.

        A readable timing already there wins (an unreadable one is replaced). A cache that cannot be
        written is logged and skipped: the run goes on with ``timing``.
        """
        path = self.path(key, shape)
        record = {"key": key, "shape": list(shape), "measured": time.strftime("%Y-%m-%d %H:%M:%S %z")}
        record["timing"] = {**asdict(timing), "seconds": {k: _finite(v) for k, v in timing.seconds.items()}}
        with self._lock:
            partial = path.with_name(f"{path.name}.{os.getpid()}.{threading.get_ident()}.partial")
            try:
                self.directory.mkdir(parents=True, exist_ok=True)
                partial.write_text(json.dumps(record, indent=1, sort_keys=True))
                try:
                    os.link(partial, path)  # atomic, and fails where a file is already there
                except FileExistsError:
                    earlier = self.get(key, shape)
                    if earlier is not None:
                        return earlier
                    partial.replace(path)  # unreadable or of another key: ours replaces it
                except OSError:
                    partial.replace(path)  # a file system without hard links: the last writer stays
            except OSError as exc:
                logger.warning("vsflavr: cannot keep the CPU timing in %s (%s); it will be timed again", path, exc)
            finally:
                with contextlib.suppress(OSError):
                    partial.unlink(missing_ok=True)
        return timing

    def stored(self, key: Mapping[str, Any]) -> list[tuple[tuple[int, ...], Timing]]:
        """Every timing stored for ``key``, by input shape."""
        found = []
        for path in sorted(self.directory.glob(f"{self._stem(key)}-*.json")):
            try:
                shape = tuple(int(n) for n in path.stem.split("-", 1)[1].split("x"))
            except ValueError:
                continue
            timing = self.get(key, shape)
            if timing is not None:
                found.append((shape, timing))
        return found


def _finite(seconds: float) -> float | None:
    return seconds if math.isfinite(seconds) else None


def _timing_from(data: Mapping[str, Any]) -> Timing:
    seconds = {str(k): math.inf if v is None else float(v) for k, v in data["seconds"].items()}
    width, height = data["timed_size"]
    if data["chosen"] not in seconds:
        raise ValueError("the chosen backend was not timed")
    return Timing(str(data["chosen"]), seconds, (int(width), int(height)), dict(data["failures"]))
