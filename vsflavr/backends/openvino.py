"""The OpenVINO backend: the loaded network converted by OpenVINO and run by its CPU plugin.

The PyTorch network is converted once (``openvino.convert_model``, about 5-15 s) and the result
saved as OpenVINO IR in the user cache directory under the weights' checksum, so a later run
reads it in a moment.  Each frame size is compiled on first use (with OpenVINO's own model cache
in the same directory) for the precision asked for.  Several VapourSynth requests at once are
served by a pool of infer requests, one more than OpenVINO's streams (by default one stream that
uses every core): concurrent calls neither wait on one request nor run more passes than the
streams the cores were split into, so they never oversubscribe the CPU.
"""

from __future__ import annotations

import hashlib
import logging
import os
import queue
import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, Literal

import platformdirs
import torch
from torch import Tensor

from .. import network
from ..network import FLAVR
from .base import Backend, Forward, Runner
from .tensorrt import weights_checksum

__all__ = [
    "INT8_CHOICE",
    "INT8_MODEL",
    "MISSING_OPENVINO",
    "OpenVINOBackend",
    "default_cache_dir",
    "has_int8",
    "openvino_available",
    "openvino_native_bf16",
    "openvino_version",
]

logger = logging.getLogger("vsflavr")

MISSING_OPENVINO = "backend='openvino' needs OpenVINO: pip install vsflavr[openvino]"

_OV_PRECISION = {"fp32": "f32", "bf16": "bf16", "int8": "f32"}
"""The CPU plugin's precision hint for each precision (int8: the quantised layers run in int8, the rest in f32)."""

INT8_MODEL = Path(__file__).resolve().parent.parent / "models" / "flavr_s_2x_int8.xml"
"""The built-in model quantised to int8 by ``tools/int8_builtin.py`` (see ``models/MODEL_CARD.md``)."""

INT8_CHOICE = (
    "the built-in model's int8 network: 2x OpenVINO fp32, within 0.02 dB of it on bikes.mp4 and bigbuckbunny.mp4"
)
"""Why ``precision="auto"`` runs int8 on CPUs without native bf16 (figures: docs, performance page)."""
_EXAMPLE_SIZE = (64, 64)
"""Frame size (H, W) of the example input the network is traced with; the IR keeps H and W dynamic."""


def default_cache_dir() -> Path:
    """Where converted networks and compiled blobs are kept: ``<user cache dir>/vsflavr/openvino``."""
    return Path(platformdirs.user_cache_dir("vsflavr")) / "openvino"


def _import_openvino() -> Any:
    """The openvino module; ValueError naming the extra when it is missing."""
    try:
        import openvino
    except ImportError:
        raise ValueError(MISSING_OPENVINO) from None
    return openvino


@cache
def openvino_available() -> bool:
    """Whether the ``openvino`` package is installed and imports."""
    try:
        _import_openvino()
    except ValueError:
        return False
    return True


def openvino_version() -> str:
    """OpenVINO's release (e.g. ``2026.4.1``), or ``"not installed"``."""
    return _import_openvino().get_version().split("-")[0] if openvino_available() else "not installed"


@cache
def openvino_native_bf16() -> bool:
    """Whether OpenVINO's CPU plugin computes bf16 natively on this CPU (avx512_bf16 or AMX)."""
    ov = _import_openvino()
    return "BF16" in ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")


@dataclass(frozen=True, kw_only=True)
class OpenVINOBackend(Backend):
    """FLAVR through OpenVINO on the CPU (installed with vsflavr on x86-64, elsewhere ``pip install vsflavr[openvino]``).

    Attributes:
        precision: ``"fp32"`` (within 1e-4 of the PyTorch fp32 network), ``"bf16"`` (within
            2e-2; on CPUs without native bf16 it falls back to fp32 with a logged message) or
            ``"int8"`` (the built-in model only: :data:`INT8_MODEL`, its convolutions in int8).
        streams: OpenVINO streams, i.e. passes that run at once, the cores split between them.
            ``1`` (default): each pass uses every core, one after the other.  ``None``: as many
            as OpenVINO finds best for throughput (on 2 cores: 2 streams of one core each).  On
            a 2-core AMD EPYC shared with other work (vspipe, bikes.mp4 at 2x) one stream was
            ahead in bf16 (9.9 against 7.5 fps) and behind in fp32 (3.3 against 4.6 fps); the
            default keeps the bf16 winner, which is also the faster single pass.
        cache_dir: directory of converted networks and compiled blobs; ``None``: :func:`default_cache_dir`.
        prefer_int8: with precision ``"fp32"``, run the int8 network instead where one is shipped for
            the weights (the built-in model): what ``precision="auto"`` does on CPUs without native bf16.
    """

    precision: Literal["fp32", "bf16", "int8"] = "fp32"
    streams: int | None = 1
    cache_dir: Path | None = None
    prefer_int8: bool = False

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.precision not in _OV_PRECISION:
            raise ValueError(f"backend='openvino' runs precision 'fp32', 'bf16' or 'int8', got {self.precision!r}")
        if self.streams is not None and (isinstance(self.streams, bool) or self.streams < 1):
            raise ValueError(f"streams must be a positive integer or None, got {self.streams!r}")

    def load(self, model: FLAVR) -> Runner:
        return Runner(
            self.forward(model),
            n_outputs=model.n_outputs,
            device=torch.device("cpu"),
            dtype=torch.float32,
            lanes=os.cpu_count() or 1,  # the infer request pools bound what runs at once
            tile_for=lambda height, width: self.tile_size,
            tile_overlap=self.tile_overlap,
        )

    def forward(self, model: FLAVR) -> Forward:
        """``model`` converted (or read from the cache) as the forward function a runner calls; safe to call at once."""
        ov = _import_openvino()
        precision = self.precision
        if precision == "bf16" and not openvino_native_bf16():
            logger.warning("vsflavr: this CPU has no native bf16 (avx512_bf16 or AMX); OpenVINO runs fp32 instead")
            precision = "fp32"
        model = model.to("cpu", torch.float32).eval().requires_grad_(False)
        cache_dir = self.cache_dir or default_cache_dir()
        if precision == "fp32" and self.prefer_int8 and (int8 := _int8_network(ov, model)) is not None:
            logger.info("vsflavr: precision int8 (%s)", INT8_CHOICE)
            precision, network = "int8", int8
        else:
            network = _int8(ov, model) if precision == "int8" else _converted(ov, model, cache_dir)
        return _Networks(ov, network, precision, self.streams, cache_dir)


def _network_key(model: FLAVR) -> str:
    """16 hex digits naming the converted graph: the weights, the skip mode and the network's source code."""
    digest = hashlib.sha256(f"{weights_checksum(model)};{model.skip};".encode())
    digest.update(Path(network.__file__).read_bytes())
    return digest.hexdigest()[:16]


def _converted(ov: Any, model: FLAVR, cache_dir: Path) -> Any:
    """``model`` as an OpenVINO model with dynamic frame size, read from the cache or converted and saved there."""
    path = cache_dir / f"flavr_{_network_key(model)}_openvino-{openvino_version()}.xml"
    if path.is_file() and path.with_suffix(".bin").is_file():
        return ov.Core().read_model(path)
    logger.info("vsflavr: converting the network for OpenVINO (seconds, once): %s", path)
    height, width = _EXAMPLE_SIZE
    frames = torch.rand(1, model.n_inputs, 3, height, width)
    mean = torch.rand(1, 3, 1, 1, 1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the tracer's notes on deprecated torch.jit and constant shapes
        converted = ov.convert_model(model, example_input=(frames, mean))
    cache_dir.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f"{path.stem}.{os.getpid()}.{threading.get_ident()}.partial.xml")
    ov.save_model(converted, partial, compress_to_fp16=False)
    partial.with_suffix(".bin").replace(path.with_suffix(".bin"))
    partial.replace(path)
    return converted


def has_int8(model: FLAVR) -> bool:
    """Whether an int8 network of ``model`` is shipped (:data:`INT8_MODEL`, made from the built-in model)."""
    return openvino_available() and _int8_network(_import_openvino(), model) is not None


def _int8_network(ov: Any, model: FLAVR) -> Any | None:
    if not INT8_MODEL.is_file():
        return None
    network = ov.Core().read_model(INT8_MODEL)
    return network if network.get_rt_info(["vsflavr", "weights_sha256"]).astype(str) == weights_checksum(model) else None


def _int8(ov: Any, model: FLAVR) -> Any:
    """The int8 network of ``model``: the shipped one, made from the built-in model's weights; ValueError for others."""
    network = _int8_network(ov, model)
    if network is not None:
        return network
    raise ValueError(
        "precision='int8' exists for the built-in 2x model only (flavr_s_2x: weights='builtin' with multi=2); "
        "use 'fp32' or 'bf16' for these weights"
    )


class _Networks:
    """The forward function of the OpenVINO backend: one compiled model per input shape, with a pool of requests."""

    def __init__(self, ov: Any, model: Any, precision: str, streams: int | None, cache_dir: Path) -> None:
        self._core = ov.Core()
        self._model = model
        self._config = {
            "INFERENCE_PRECISION_HINT": _OV_PRECISION[precision],
            "PERFORMANCE_HINT": "THROUGHPUT" if streams is None else "LATENCY",
            "CACHE_DIR": str(cache_dir / "compiled"),
        }
        if streams is not None:
            self._config["NUM_STREAMS"] = str(streams)
        self._pools: dict[tuple[int, ...], queue.Queue[Any]] = {}
        self._lock = threading.Lock()

    def _pool(self, shape: tuple[int, ...]) -> queue.Queue[Any]:
        pool = self._pools.get(shape)
        if pool is None:
            with self._lock:
                pool = self._pools.get(shape) or self._compile(shape)
                self._pools[shape] = pool
        return pool

    def _compile(self, shape: tuple[int, ...]) -> queue.Queue[Any]:
        model = self._model.clone()
        model.reshape({0: list(shape), 1: [shape[0], 3, 1, 1, 1]})
        compiled = self._core.compile_model(model, "CPU", self._config)
        pool: queue.Queue[Any] = queue.Queue()
        # One request more than OpenVINO needs busy: a caller's copies overlap another's pass.
        for _ in range(compiled.get_property("OPTIMAL_NUMBER_OF_INFER_REQUESTS") + 1):
            pool.put(compiled.create_infer_request())
        return pool

    @contextmanager
    def _request(self, shape: tuple[int, ...]) -> Iterator[Any]:
        pool = self._pool(shape)
        request = pool.get()
        try:
            yield request
        finally:
            pool.put(request)

    def __call__(self, x: Tensor, mean: Tensor) -> Tensor:
        x, mean = x.float().contiguous(), mean.float().contiguous()
        with self._request(tuple(x.shape)) as request:
            request.infer([x.numpy(), mean.numpy()], share_inputs=True)
            return torch.from_numpy(request.get_output_tensor(0).data.copy())
