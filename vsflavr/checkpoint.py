"""Read and write FLAVR checkpoints.

Accepted files: the official ``FLAVR_2x/4x/8x.pth`` (a dict with ``state_dict`` whose keys
carry DataParallel's ``module.`` prefix), a bare state dict with or without that prefix,
and vsflavr's own checkpoints (the same, plus a ``vsflavr`` dict of metadata).  Every
hyper-parameter is read from tensor shapes and the key set; nothing is guessed from the
file name.  Files are read with ``weights_only=True``: a file that carries pickled code
is refused, never executed.

This module never imports VapourSynth.
"""

from __future__ import annotations

import pickle
import re
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from .errors import first_line, one_line
from .network import FLAVR, Skip

__all__ = ["Architecture", "Checkpoint", "CheckpointError", "load_checkpoint", "read_architecture", "save_checkpoint"]

METADATA_KEY = "vsflavr"
_N_INPUTS = 4
"""Frames FLAVR reads per pass (I-1, I0, I1, I2), as every official checkpoint."""


class CheckpointError(Exception):
    """A weights file that cannot be used; the message names the file and the problem."""


@dataclass(frozen=True)
class Architecture:
    """Hyper-parameters of a FLAVR network, as read from a checkpoint."""

    n_outputs: int
    widths: tuple[int, int, int, int]
    blocks: tuple[int, int, int, int]
    encoder_bias: bool
    n_inputs: int
    skip: Skip

    @property
    def multi(self) -> int:
        """Frame-rate factor of one forward pass: ``n_outputs + 1``."""
        return self.n_outputs + 1

    def build(self, device: torch.device | str = "cpu") -> FLAVR:
        return FLAVR(
            self.n_outputs,
            widths=self.widths,
            blocks=self.blocks,
            encoder_bias=self.encoder_bias,
            n_inputs=self.n_inputs,
            skip=self.skip,
        ).to(device)


@dataclass(frozen=True)
class Checkpoint:
    """A loaded checkpoint: the network in eval mode (fp32, CPU), its architecture and metadata."""

    path: Path
    model: FLAVR
    architecture: Architecture
    metadata: dict[str, Any] = field(default_factory=dict)


def canonical_state_dict(obj: object) -> tuple[dict[str, Tensor], dict[str, Any]]:
    """Unwrap ``state_dict`` and strip ``module.``; returns (state dict, vsflavr metadata).

    Raises ValueError when ``obj`` is not a dict of plain CPU float tensors, or its
    metadata is not a dict of plain values (str, numbers, lists, dicts).
    """
    if not isinstance(obj, Mapping):
        raise ValueError(f"holds a {type(obj).__name__}, not a dict of tensors")
    metadata = obj.get(METADATA_KEY)
    if metadata is None:
        metadata = {}
    if not isinstance(metadata, Mapping) or not _is_plain(metadata):
        raise ValueError(f"has '{METADATA_KEY}' metadata that is not a dict of plain values")
    state = obj.get("state_dict", obj)
    if not isinstance(state, Mapping):
        raise ValueError("its 'state_dict' entry is not a dict of tensors")
    tensors = {str(k).removeprefix("module."): v for k, v in state.items() if isinstance(v, Tensor)}
    if not tensors:
        raise ValueError("holds no tensors; it is not a model checkpoint")
    for key, tensor in tensors.items():
        if tensor.layout != torch.strided or tensor.device.type != "cpu" or not tensor.is_floating_point():
            raise ValueError(f"has {key} as a {tensor.layout} {tensor.dtype} tensor on {tensor.device}, not CPU floats")
        if not tensor.is_contiguous():
            # A model's state_dict is saved contiguous; other strides come from a damaged file.
            raise ValueError(f"has {key} with strides {tensor.stride()} for shape {tuple(tensor.shape)}; the file is damaged")
        # Strides of size-1 dimensions address nothing but can be anything in a file; some consumers
        # (OpenVINO's converter) need the standard ones.  A view, no copy.
        tensors[key] = tensor.as_strided(tensor.shape, torch.empty(tensor.shape, device="meta").stride())
    return tensors, dict(metadata)


def _is_plain(value: object, depth: int = 0) -> bool:
    """Whether ``value`` is made of str, int, float, bool, None, lists and str-keyed dicts, at most 32 deep."""
    if depth > 32:
        return False
    if value is None or isinstance(value, str | int | float | bool):
        return True
    if isinstance(value, list | tuple):
        return all(_is_plain(item, depth + 1) for item in value)
    if isinstance(value, Mapping):
        return all(isinstance(k, str) and _is_plain(v, depth + 1) for k, v in value.items())
    return False


def _weight_shape(state: Mapping[str, Tensor], key: str, dims: int) -> tuple[int, ...]:
    """The shape of convolution weight ``key``: ``dims`` dimensions, none of them empty."""
    shape = tuple(state[key].shape)
    if len(shape) != dims or 0 in shape:
        raise ValueError(f"has {key} of shape {shape}, not a {dims}-d convolution weight")
    return shape


def read_architecture(state: Mapping[str, Tensor], metadata: Mapping[str, Any] | None = None) -> Architecture:
    """Derive the architecture from a canonical state dict's shapes and keys."""
    required = ["encoder.stem.0.weight", "outconv.1.weight", "feature_fuse.conv.0.weight"]
    required += [f"encoder.layer{i}.0.conv1.0.weight" for i in range(1, 5)]
    missing = [k for k in required if k not in state]
    if missing:
        raise ValueError(f"is not a FLAVR checkpoint: missing {', '.join(missing[:4])}")
    widths = tuple(_weight_shape(state, f"encoder.layer{i}.0.conv1.0.weight", 5)[0] for i in range(1, 5))
    blocks = []
    for i in range(1, 5):
        indices = {int(m.group(1)) for k in state if (m := re.match(rf"encoder\.layer{i}\.(\d+)\.", k))}
        if indices != set(range(len(indices))):
            raise ValueError(f"has the blocks of encoder stage {i} numbered {sorted(indices)[:6]}, not 0, 1, ...")
        blocks.append(len(indices))
    _weight_shape(state, "encoder.stem.0.weight", 5)
    head = _weight_shape(state, "outconv.1.weight", 4)
    if head[0] % 3:
        raise ValueError(f"has an output head of {head[0]} channels, not a multiple of 3")
    fuse_inputs = _weight_shape(state, "feature_fuse.conv.0.weight", 4)[1]
    if fuse_inputs != _N_INPUTS * widths[0]:
        raise ValueError(f"reads {fuse_inputs / widths[0]:g} frames; vsflavr's FLAVR reads {_N_INPUTS}")
    skip = (metadata or {}).get("skip", "mean")
    if skip not in ("mean", "blend"):
        raise ValueError(f"has an unknown skip {skip!r} in its metadata")
    return Architecture(
        n_outputs=head[0] // 3,
        widths=widths,  # type: ignore[arg-type]
        blocks=tuple(blocks),  # type: ignore[arg-type]
        encoder_bias="encoder.stem.0.bias" in state,
        n_inputs=_N_INPUTS,
        skip=skip,
    )


def _check_keys(model: FLAVR, state: Mapping[str, Tensor]) -> None:
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    wrong = [
        f"{k} {tuple(state[k].shape)} (expected {tuple(v.shape)})"
        for k, v in expected.items()
        if k in state and state[k].shape != v.shape
    ]
    problems = []
    if missing:
        problems.append(f"{len(missing)} missing keys ({', '.join(missing[:3])}{', ...' if len(missing) > 3 else ''})")
    if unexpected:
        problems.append(
            f"{len(unexpected)} unexpected keys ({', '.join(unexpected[:3])}{', ...' if len(unexpected) > 3 else ''})"
        )
    if wrong:
        problems.append(f"{len(wrong)} shape mismatches ({', '.join(wrong[:2])}{', ...' if len(wrong) > 2 else ''})")
    if problems:
        raise ValueError("does not match the FLAVR architecture: " + "; ".join(problems))


def _read_file(path: Path) -> object:
    """The object pickled in ``path``, read with ``weights_only=True``; CheckpointError for any failure."""
    if not path.is_file():
        raise CheckpointError(f"weights file {path} does not exist")
    try:
        with path.open("rb") as f:
            head = f.read(512)
    except OSError as exc:
        raise CheckpointError(f"weights file {path} cannot be read ({exc.strerror or exc})") from None
    if head.lstrip().lower().startswith((b"<!doctype html", b"<html")):
        raise CheckpointError(
            f"weights file {path} is an HTML page, not a checkpoint (a download that returned an error, "
            "quota or sign-in page?); download it again"
        )
    try:
        return torch.load(path, map_location="cpu", weights_only=True, mmap=zipfile.is_zipfile(path))
    except pickle.UnpicklingError as exc:
        if "unsupported global" in str(exc).lower():
            raise CheckpointError(
                f"weights file {path} contains pickled Python objects or code; vsflavr loads only plain tensors "
                "(weights_only=True) and refuses it. Re-save the state dict with torch.save, or use a trusted file."
            ) from None
        raise CheckpointError(f"weights file {path} is corrupt or not a PyTorch checkpoint") from None
    except Exception as exc:  # noqa: BLE001 - torch.load fails in many ways on damaged bytes; each means the same
        # A checkpoint is a zip (torch >= 1.6) or a pickle (protocol 2 and later start with 0x80).
        looks_like = head.startswith((b"PK\x03\x04", b"\x80"))
        reason = _first_sentence(exc) if looks_like else f"it starts with {head[:8]!r}, neither a zip nor a pickle"
        raise CheckpointError(
            f"weights file {path} is truncated, corrupt or not a PyTorch checkpoint ({reason}); download it again"
        ) from None


def _first_sentence(exc: BaseException) -> str:
    """The first sentence of an exception's message (torch.load's run on for lines), or its type's name."""
    return first_line(exc).split(". ")[0].removesuffix(".")


_PROBE_LIMIT = 1e4
"""The largest output value a usable network gives on 0..1 frames; damaged weights (a byte-swapped or
bit-flipped exponent) give 1e20 and more, or NaN."""


def _probe(model: FLAVR) -> float:
    """The largest magnitude of the network's output on a fixed 16x16 window of noise; NaN if any value is NaN.

    Every weight reaches the output at this size, so a NaN or infinite weight shows here.
    """
    frames = torch.rand(1, _N_INPUTS, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        out = model(frames)
    return float("nan") if out.isnan().any() else out.abs().max().item()


def load_checkpoint(path: str | Path) -> Checkpoint:
    """Load a FLAVR checkpoint file into a network in eval mode (fp32, CPU).

    Raises :class:`CheckpointError` naming the file and what is wrong, in one line, for
    whatever the file holds: missing, truncated or damaged, not a checkpoint, pickled
    code, another architecture, empty or non-finite weights, metadata of the wrong type.
    """
    path = Path(path)
    obj = _read_file(path)
    try:
        state, metadata = canonical_state_dict(obj)
        architecture = read_architecture(state, metadata)
        with torch.device("meta"):
            model = architecture.build("meta")
        _check_keys(model, state)
        model.load_state_dict(state, strict=True, assign=True)
        model.float().eval().requires_grad_(False)
        if not (largest := _probe(model)) <= _PROBE_LIMIT:
            raise ValueError(f"gives values of {largest:.3g} on a test window of 0..1 frames: damaged weights")
    except ValueError as exc:
        raise CheckpointError(f"weights file {path} {exc}") from None  # vsflavr's own one-line reasons
    except Exception as exc:  # noqa: BLE001 - what passed the checks above and still fails is a damaged file too
        raise CheckpointError(f"weights file {path} is damaged or not a FLAVR checkpoint ({one_line(exc)})") from None
    return Checkpoint(path=path, model=model, architecture=architecture, metadata=metadata)


def save_checkpoint(path: str | Path, model: FLAVR, metadata: Mapping[str, Any] | None = None) -> None:
    """Save ``model`` in the official layout (``state_dict`` with ``module.`` keys).

    ``metadata`` (plain Python values only) is stored under the ``vsflavr`` key; the
    network's ``skip`` is always recorded there so the loader rebuilds it exactly.
    """
    meta = dict(metadata or {})
    meta["skip"] = model.skip
    state = {f"module.{k}": v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    torch.save({"state_dict": state, METADATA_KEY: meta}, Path(path))
