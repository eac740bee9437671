"""What ``python -m vsflavr info`` and ``check-weights`` print: versions, checkpoints found, one checkpoint's details.

Each function returns the lines to print, so the command line only prints them.
"""

from __future__ import annotations

import hashlib
import json
import logging
import platform
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import vapoursynth as vs

from . import __version__, weights
from .backends import AutoCPUBackend, resolve_device, select_backend
from .backends.cpu import cpu_description
from .backends.openvino import openvino_available, openvino_version
from .checkpoint import CheckpointError, load_checkpoint
from .download import MULTIS, file_name
from .errors import one_line

__all__ = ["UNUSABLE", "checkpoint_report", "environment_report", "weights_report"]

UNUSABLE = "unusable: "
"""What :func:`weights_report` writes before the reason a checkpoint it found cannot be used."""


def environment_report() -> list[str]:
    """Versions of vsflavr and what it runs on, and the CUDA devices torch sees."""
    return [
        f"vsflavr      {__version__}",
        f"python       {platform.python_version()} ({platform.system()} {platform.machine()})",
        f"torch        {torch.__version__}",
        f"vapoursynth  {vs.core.core_version} (API {vs.core.api_version})",
        f"numpy        {np.__version__}",
        f"openvino     {_openvino_version()}",
        f"CPU          {_or_reason(cpu_description)}",
        f"CUDA devices {_or_reason(lambda: ', '.join(_cuda_devices()) or 'none')}",
        f"default run  {_or_reason(_default_run)}",
    ]


def _or_reason(describe: Callable[[], str]) -> str:
    """``describe()``, or why it failed in one line (a broken CUDA install must not stop the report)."""
    try:
        return describe()
    except Exception as exc:  # noqa: BLE001 - any failure of the driver or of torch is reported, not raised
        return f"unavailable ({one_line(exc)})"


def _default_run() -> str:
    """Where and in which precision ``flavr(clip)`` runs with device, backend and precision left at auto."""
    device = resolve_device(None)
    settings = select_backend("auto", device, "auto")
    if device.type == "cpu":
        why = "the CPU has native bf16" if settings.precision == "bf16" else "no native bf16 on this CPU"
        line = f"cpu, {settings.precision} ({why})"
        if isinstance(settings, AutoCPUBackend):
            quiet = logging.getLogger("vsflavr")
            level = quiet.level
            quiet.setLevel(logging.ERROR)  # the weights report below already says which checkpoint is used
            try:
                model = weights.resolve_checkpoint(None, 2, auto_download=False).model
            except (CheckpointError, weights.WeightsNotFound):
                return line
            finally:
                quiet.setLevel(level)
            line += f"; {settings.describe(model)}"
        return line
    return f"{device} ({torch.cuda.get_device_name(device)}), {settings.precision}"


def _openvino_version() -> str:
    if not openvino_available():
        return "not installed (pip install vsflavr[openvino] for the fastest CPU backend)"
    return openvino_version()


def _cuda_devices() -> list[str]:
    if not torch.cuda.is_available():
        return []
    devices = []
    for index in range(torch.cuda.device_count()):
        props = torch.cuda.get_device_properties(index)
        devices.append(f"cuda:{index} {props.name} ({props.total_memory / 2**30:.0f} GiB)")
    return devices


def weights_report() -> list[str]:
    """Where checkpoints are searched and found, what is missing and how to get it, and the default choice."""
    lines = ["Checkpoints, searched in this order:"]
    found: set[int] = set()
    for directory, origin in weights.search_dirs():
        lines.append(f"  {directory}  ({origin}{'' if directory.is_dir() else ', does not exist'})")
        for multi in MULTIS:
            path = directory / file_name(multi)
            if path.is_file():
                lines.append(f"    {_describe_file(path)}")
                found.add(multi)
    lines.append("Built-in models (used when no official checkpoint serves a multi):")
    for builtin in weights.BUILTIN_MODELS.values():
        lines.append(f"  {_describe_file(builtin) if builtin.is_file() else f'{builtin.name}  not installed'} ({builtin})")
    missing = [m for m in MULTIS if m not in found]
    if missing:
        lines.append("Missing official checkpoints:")
        lines += [
            f"  {file_name(m)}: run `python -m vsflavr download {m}x`, or put the file in {weights.default_download_dir()}"
            for m in missing
        ]
    lines.append("A default flavr() call with multi=2 uses:")
    try:
        checkpoint = weights.resolve_checkpoint(None, 2, auto_download=False)
    except (CheckpointError, weights.WeightsNotFound) as exc:
        lines += [f"  nothing: {line}" if i == 0 else f"  {line}" for i, line in enumerate(str(exc).splitlines())]
    else:
        lines.append(f"  {checkpoint.path} ({checkpoint.architecture.multi}x)")
    return lines


def _describe_file(path: Path) -> str:
    """``NAME  Kx  SIZE`` read from the file itself, or the loader's reason it cannot be used."""
    try:
        multi = f"{load_checkpoint(path).architecture.multi}x"
    except CheckpointError as exc:
        multi = f"{UNUSABLE}{exc}"
    return f"{path.name}  {multi}  {_size(path.stat().st_size)}"


def _size(size: int) -> str:
    return f"{size / 2**20:.1f} MiB" if size >= 2**20 else f"{size / 2**10:.1f} KiB"


def checkpoint_report(path: str | Path) -> list[str]:
    """What a checkpoint file holds, read with the filter's own loader.

    Raises:
        CheckpointError: the file cannot be used; the message says why in one line.
    """
    path = Path(path)
    checkpoint = load_checkpoint(path)
    a = checkpoint.architecture
    with path.open("rb") as f:
        sha256 = hashlib.file_digest(f, "sha256").hexdigest()
    return [
        f"file        {path} ({path.stat().st_size:,} bytes)",
        f"sha256      {sha256}",
        f"multi       {a.multi} ({a.n_outputs} in-between frame{'s' if a.n_outputs > 1 else ''} per gap)",
        f"variant     encoder convolutions {'with' if a.encoder_bias else 'without'} bias",
        f"widths      {', '.join(map(str, a.widths))}",
        f"blocks      {', '.join(map(str, a.blocks))}",
        f"inputs      {a.n_inputs} frames",
        f"skip        {a.skip}",
        f"parameters  {sum(p.numel() for p in checkpoint.model.parameters()):,}",
        f"metadata    {json.dumps(checkpoint.metadata, sort_keys=True, default=str) if checkpoint.metadata else 'none'}",
    ]
