"""``backend="auto"`` on the CPU: PyTorch or OpenVINO, whichever runs faster on this CPU, timed once.

On the first window of each size, both backends run a few passes on it (a crop of it for large
frames) and the faster one serves that size from then on; the timing is kept in the user cache
dir under the CPU, the library versions, the network's shape and the precision
(:mod:`.cpu_timing`), so later runs on the machine start with the answer.  ``python -m vsflavr
info`` prints the stored timings.

Without timing (``VSFLAVR_CPU_TIMING=0``, or ``timing=False``) the rule is OpenVINO: it was the
faster CPU path on every CPU measured, for both networks, in ``python -m vsflavr bench`` (ratios
within one run, 2 cores each): the built-in model at 640x272 OpenVINO fp32 at 6.9x the official
code against 3.8x for PyTorch on an AVX2-only EPYC (Zen 3), 8.9x against 3.9x on a Zen 5 EPYC
(AVX-512, avx512_bf16); the official architecture at 256x256 1.20x against 0.92x (Zen 3), 1.30x
against 1.01x (Zen 5), and in bf16 on a Xeon with AMX 2.39x against 1.9-2.0x.  Without the
``openvino`` package: PyTorch.

With ``prefer_int8`` (``precision="auto"`` on CPUs without native bf16) the built-in model runs
OpenVINO's int8 network, untimed: no other backend runs int8.
"""

from __future__ import annotations

import logging
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch
from torch import Tensor

from ..network import FLAVR
from .base import Backend, Forward, Runner
from .cpu import CPUBackend
from .cpu_timing import ENV_TIMING, TimingCache, default_timing_dir, flop_per_pixel, time_forwards, timing_key
from .cpu_timing import timing_size as _timing_size
from .openvino import INT8_CHOICE, OpenVINOBackend, has_int8, openvino_available, openvino_version

__all__ = ["RULE", "AutoCPUBackend"]

logger = logging.getLogger("vsflavr")

RULE = "OpenVINO: by rule, it was the faster CPU path on every CPU measured (Zen 3, Zen 5, Xeon with AMX)"
NO_OPENVINO = "PyTorch: OpenVINO, faster on every CPU measured, is not installed (pip install vsflavr[openvino])"
_NAMES = {"openvino": "OpenVINO", "torch": "PyTorch"}


@dataclass(frozen=True, kw_only=True)
class AutoCPUBackend(Backend):
    """The faster of :class:`OpenVINOBackend` and :class:`CPUBackend` for each frame size (see the module docstring).

    Attributes:
        precision: ``"fp32"`` or ``"bf16"``, passed on to both.
        timing: time both on the first window of each size (cached); ``False``: follow the rule;
            ``None`` (default): time unless the environment variable ``VSFLAVR_CPU_TIMING`` is ``0``.
        cache_dir: where timings are kept; ``None``: ``<user cache dir>/vsflavr/cpu-timing``.
        prefer_int8: with precision ``"fp32"``, run OpenVINO's int8 network instead (not timed) where
            one is shipped for the weights (the built-in model); ``precision="auto"`` on CPUs without native bf16.
    """

    precision: Literal["fp32", "bf16"] = "fp32"
    timing: bool | None = None
    cache_dir: Path | None = None
    prefer_int8: bool = False

    def _int8(self, model: FLAVR) -> bool:
        return self.prefer_int8 and self.precision == "fp32" and has_int8(model)

    def _times(self) -> bool:
        return self.timing if self.timing is not None else os.environ.get(ENV_TIMING, "1").strip() != "0"

    def _key(self, model: FLAVR) -> dict[str, object]:
        return timing_key(model, self.precision, {"openvino": openvino_version()})

    def _cache(self) -> TimingCache:
        return TimingCache(self.cache_dir or default_timing_dir())

    def describe(self, model: FLAVR) -> str:
        """What this backend runs ``model`` with on this CPU, and from what: the timings stored, or the rule.

        Starts with ``"OpenVINO: "``, ``"OpenVINO int8: "`` or ``"PyTorch: "`` when one backend serves every
        size, else ``"timed: "``.
        """
        if not openvino_available():
            return NO_OPENVINO
        if self._int8(model):
            return f"OpenVINO int8: {INT8_CHOICE}"
        if not self._times():
            return f"{RULE} ({ENV_TIMING}=0: not timed)"
        cache = self._cache()
        stored = cache.stored(self._key(model))
        if not stored:
            return (
                "timed: OpenVINO or PyTorch, whichever runs faster on the first window of each frame size "
                f"(nothing timed yet for this network and precision; kept in {cache.directory})"
            )
        sizes = "; ".join(
            f"{shape[-1]}x{shape[-2]} {_NAMES[timing.chosen]} ({timing.describe()})" for shape, timing in stored
        )
        return f"timed: {sizes} (kept in {cache.directory})"

    def load(self, model: FLAVR) -> Runner:
        tiling = {"tile_size": self.tile_size, "tile_overlap": self.tile_overlap}
        if not openvino_available():
            logger.info("vsflavr: backend %s", NO_OPENVINO)
            return CPUBackend(precision=self.precision, **tiling).load(model)
        openvino = OpenVINOBackend(precision=self.precision, prefer_int8=self.prefer_int8, **tiling)
        if self._int8(model):
            return openvino.load(model)  # logs the int8 choice
        if not self._times():
            logger.info("vsflavr: backend %s", RULE)
            return openvino.load(model)
        key, per_pixel = self._key(model), flop_per_pixel(model)
        # OpenVINO traces the network as it is, so it goes before PyTorch's in-place changes.
        forwards = {"openvino": OpenVINOBackend(precision=self.precision, **tiling).forward(model)}
        forwards["torch"] = CPUBackend(precision=self.precision, **tiling).forward(model)
        return Runner(
            _TimedChoice(forwards, self._cache(), key, per_pixel),
            n_outputs=model.n_outputs,
            device=torch.device("cpu"),
            dtype=torch.float32,
            lanes=os.cpu_count() or 1,  # OpenVINO's request pools bound its passes; PyTorch's run one at a time
            tile_for=lambda height, width: self.tile_size,
            tile_overlap=self.tile_overlap,
        )


class _TimedChoice:
    """The forward function of the timed choice: per input shape, the candidate the cache or a timing names."""

    def __init__(self, forwards: dict[str, Forward], cache: TimingCache, key: dict[str, object], per_pixel: float):
        self._forwards = forwards
        self._cache = cache
        self._key = key
        self._per_pixel = per_pixel
        self._chosen: dict[tuple[int, ...], str] = {}
        self._choosing = threading.Lock()
        self._one_torch_pass = threading.Lock()  # a PyTorch pass already uses every core

    def _choose(self, x: Tensor, mean: Tensor) -> str:
        shape = tuple(x.shape)
        with self._choosing:
            if shape in self._chosen:
                return self._chosen[shape]
            timing = self._cache.get(self._key, shape)
            source = "timing kept from an earlier run"
            if timing is None or timing.chosen not in self._forwards:
                width, height = _timing_size(self._per_pixel, shape[-1], shape[-2])
                mine = time_forwards(self._forwards, x, mean, width, height)
                kept = self._cache.put(self._key, shape, mine)
                timing = kept if kept.chosen in self._forwards else mine
                source = "timed now" if timing is mine else "timed now, but another process kept its timing first"
            logger.info(
                "vsflavr: backend for %dx%d windows: %s (%s: %s)",
                shape[-1],
                shape[-2],
                _NAMES[timing.chosen],
                source,
                timing.describe(),
            )
            self._chosen[shape] = timing.chosen
            return timing.chosen

    def __call__(self, x: Tensor, mean: Tensor) -> Tensor:
        name = self._chosen.get(tuple(x.shape)) or self._choose(x, mean)
        if name == "torch":
            with self._one_torch_pass:
                return self._forwards[name](x, mean)
        return self._forwards[name](x, mean)
