"""The TensorRT backend: FLAVR compiled by torch-tensorrt, engines cached on disk.

An engine is built for one input shape (the padded frame, or the tile) the first time
that shape is seen: that takes minutes.  It is saved in the user cache directory under a
name holding every input of the build (see :func:`engine_key`), and later runs load it in
seconds; a change of GPU, vsflavr or library version, precision or weights builds a new one.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import logging
import os
import re
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import platformdirs
import torch
from torch import Tensor

from ..errors import one_line
from ..network import FLAVR
from .base import Forward, Runner
from .cuda import GPUBackend

__all__ = ["TensorRTBackend", "default_cache_dir", "engine_key", "weights_checksum"]

logger = logging.getLogger("vsflavr")

MISSING_TRT = "backend='trt' needs torch-tensorrt: pip install vsflavr[trt]"


def default_cache_dir() -> Path:
    """Where engines are kept: ``<user cache dir>/vsflavr/trt`` (e.g. ~/.cache/vsflavr/trt on Linux)."""
    return Path(platformdirs.user_cache_dir("vsflavr")) / "trt"


def weights_checksum(model: FLAVR) -> str:
    """SHA-256 of the network's parameters and buffers: names, dtypes, shapes and bytes."""
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(f"{name}:{tensor.dtype}:{tuple(tensor.shape)};".encode())
        digest.update(tensor.detach().cpu().contiguous().view(torch.uint8).numpy())
    return digest.hexdigest()


def engine_key(
    *, shape: tuple[int, ...], precision: str, gpu_name: str, versions: Mapping[str, str], weights_sha256: str
) -> str:
    """The file name (without suffix) of the engine built from these inputs; safe on every file system.

    ``versions`` maps library names to versions (vsflavr with :data:`ENGINE_FORMAT`, torch,
    torch_tensorrt, tensorrt).  Only the first 16 hex digits of the weights' checksum are
    kept: enough to tell files apart.
    """
    parts = [
        "flavr",
        "x".join(str(n) for n in shape),
        precision,
        gpu_name,
        *(f"{name}-{version}" for name, version in sorted(versions.items())),
        weights_sha256[:16],
    ]
    return "_".join(re.sub(r"[^A-Za-z0-9.+-]+", "-", part) for part in parts)


ENGINE_FORMAT = "f1"
"""Changes whenever vsflavr's network code or the way engines are built changes, so older engines are not used."""


def _import_tensorrt() -> tuple[Any, Mapping[str, str]]:
    """torch_tensorrt and the versions that go into an engine's key; ValueError saying what to do when unusable."""
    try:
        import tensorrt
        import torch_tensorrt
    except ModuleNotFoundError:
        raise ValueError(MISSING_TRT) from None
    except Exception as exc:  # noqa: BLE001 - a broken install fails in many ways (a missing libnvinfer, ABI errors)
        raise ValueError(
            f"backend='trt': torch-tensorrt is installed but does not import ({one_line(exc)}); reinstall it "
            "with pip install --force-reinstall vsflavr[trt], or use backend='torch'"
        ) from None
    if _minor(torch_tensorrt.__version__) != _minor(torch.__version__):
        raise ValueError(
            f"backend='trt': torch-tensorrt {torch_tensorrt.__version__} is built for another torch than "
            f"{torch.__version__}; install the matching one: pip install 'torch-tensorrt=={_minor(torch.__version__)}.*'"
        )
    versions = {
        "vsflavr": f"{_vsflavr_version()}-{ENGINE_FORMAT}",
        "torch": torch.__version__,
        "torch_tensorrt": torch_tensorrt.__version__,
        "tensorrt": tensorrt.__version__,
    }
    return torch_tensorrt, versions


def _vsflavr_version() -> str:
    """The installed vsflavr's version ("unknown" when run from a checkout that was never installed)."""
    try:
        return importlib.metadata.version("vsflavr")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def _minor(version: str) -> str:
    """``"2.12"`` from ``"2.12.1+cu130"``."""
    return ".".join(version.split("+")[0].split(".")[:2])


@dataclass(frozen=True, kw_only=True)
class TensorRTBackend(GPUBackend):
    """FLAVR as TensorRT engines on an NVIDIA GPU (needs the ``trt`` extra: ``pip install vsflavr[trt]``).

    Attributes:
        cache_dir: directory of built engines; ``None``: :func:`default_cache_dir`.
    """

    cache_dir: Path | None = None

    def load(self, model: FLAVR) -> Runner:
        torch_tensorrt, versions = _import_tensorrt()
        checksum = weights_checksum(model)
        model = self.prepare(model, "backend='trt'")
        engines = _Engines(self, model, torch_tensorrt, versions, checksum)
        return self.runner(engines, model.n_outputs)


class _Engines:
    """The forward function of the TensorRT backend: one engine per input shape, built or loaded on first use."""

    def __init__(
        self, backend: TensorRTBackend, model: FLAVR, trt: Any, versions: Mapping[str, str], checksum: str
    ) -> None:
        self._backend = backend
        self._model = model
        self._trt = trt
        self._versions = versions
        self._checksum = checksum
        self._engines: dict[tuple[int, ...], Forward] = {}
        self._lock = threading.Lock()

    def __call__(self, x: Tensor, mean: Tensor) -> Tensor:
        shape = tuple(x.shape)
        engine = self._engines.get(shape)
        if engine is None:
            with self._lock:
                engine = self._engines.get(shape) or self._engine(shape)
                self._engines[shape] = engine
        return engine(x.contiguous(), mean.contiguous())

    def _engine(self, shape: tuple[int, ...]) -> Forward:
        backend = self._backend
        key = engine_key(
            shape=shape,
            precision=backend.precision,
            gpu_name=torch.cuda.get_device_name(backend.device),
            versions=self._versions,
            weights_sha256=self._checksum,
        )
        path = (backend.cache_dir or default_cache_dir()) / f"{key}.pt2"
        if not path.is_file():
            logger.info("vsflavr: building a TensorRT engine for %s (minutes, once): %s", shape, path)
            example = torch.zeros(shape, device=backend.device, dtype=backend.dtype)
            example_mean = torch.zeros(shape[0], 3, 1, 1, 1, device=backend.device, dtype=backend.dtype)
            # The network is already in the target dtype and its inputs too, so the engine runs in that
            # dtype with the defaults of every torch-tensorrt: 2.10-2.12 type explicitly and refuse
            # enabled_precisions with it; 2.13 removed both arguments.  TF32 off: fp32 means fp32.
            compiled = self._trt.compile(
                self._model,
                ir="dynamo",
                inputs=[example, example_mean],
                device=backend.device,
                min_block_size=1,
                disable_tf32=backend.precision == "fp32",
            )
            path.parent.mkdir(parents=True, exist_ok=True)
            partial = path.with_name(f"{key}.{os.getpid()}.partial.pt2")
            self._trt.save(compiled, str(partial), inputs=[example, example_mean])
            partial.replace(path)
        engine: Forward = self._trt.load(str(path)).module()
        return engine
