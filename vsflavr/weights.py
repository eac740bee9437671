"""Find the FLAVR checkpoint that serves a frame-rate factor.

Places are searched in one order: the explicit ``weights=`` path, the directories in
``VSFLAVR_WEIGHTS_DIR`` (separated like ``PATH``), the user data directory
(``platformdirs.user_data_dir("vsflavr")/weights``), and the ``weights/`` folder of a
vsflavr checkout.  The exact checkpoint (``FLAVR_2x.pth`` for multi=2) is preferred in every
place before a larger one is used: an 8x checkpoint also gives 2x (its output at 4/8) and 4x
(2/8, 4/8, 6/8), and a 4x one gives 2x (2/4).

Nothing is ever downloaded unless asked: ``auto_download=True`` or
``VSFLAVR_AUTO_DOWNLOAD=1``.  This module never imports VapourSynth; the filter turns its
errors into ``vs.Error``.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

import platformdirs

from .checkpoint import Checkpoint, CheckpointError, load_checkpoint
from .download import MULTIS, DownloadError, download_weights, file_name

__all__ = [
    "ENV_AUTO_DOWNLOAD",
    "ENV_WEIGHTS_DIR",
    "FoundWeights",
    "WeightsNotFound",
    "builtin_model",
    "default_download_dir",
    "find_weights",
    "resolve_checkpoint",
    "search_dirs",
    "user_weights_dir",
]

logger = logging.getLogger("vsflavr")

ENV_WEIGHTS_DIR = "VSFLAVR_WEIGHTS_DIR"
ENV_AUTO_DOWNLOAD = "VSFLAVR_AUTO_DOWNLOAD"
REPO_WEIGHTS_DIR = Path(__file__).resolve().parent.parent / "weights"
BUILTIN_MODELS = {
    2: Path(__file__).resolve().parent / "models" / "flavr_s_2x.pth",
    8: Path(__file__).resolve().parent / "models" / "flavr_s_8x.pth",
}
"""vsflavr's own small models by grid, shipped in the package (see vsflavr/models/MODEL_CARD.md): the last
resort when no official checkpoint serves a multi.  :func:`builtin_model` picks one."""


class WeightsNotFound(Exception):
    """No checkpoint serves the requested multi; the message lists where vsflavr looked and how to download one."""


@dataclass(frozen=True)
class FoundWeights:
    """The checkpoint chosen for a requested multi.

    ``stride`` is ``checkpoint multi // requested multi``: 1 for the exact checkpoint,
    4 when an 8x checkpoint gives 2x.
    """

    path: Path
    multi: int
    stride: int
    checkpoint: Checkpoint

    @property
    def outputs(self) -> tuple[int, ...]:
        """Indices of the network outputs that give the requested frames, in time order."""
        return tuple(range(self.stride - 1, self.multi - 1, self.stride))


def builtin_model(multi: int | None) -> Path | None:
    """The built-in model for ``multi``, or ``None`` where no installed one serves it.

    An integer multi gets the coarsest grid it divides: flavr_s_2x for multi=2, the grid it was trained
    for, where it is better than the 8x model's middle phase; flavr_s_8x for 4 and 8.  ``None`` (a
    fractional rate change, or dedup) gets the finest grid, the smallest timing error.
    """
    grids = sorted(grid for grid, path in BUILTIN_MODELS.items() if path.is_file())
    if multi is None:
        return BUILTIN_MODELS[grids[-1]] if grids else None
    return next((BUILTIN_MODELS[grid] for grid in grids if grid % multi == 0), None)


def search_dirs() -> list[tuple[Path, str]]:
    """The directories searched for checkpoints, in order, each with where it comes from."""
    env = [Path(d) for d in os.environ.get(ENV_WEIGHTS_DIR, "").split(os.pathsep) if d]
    dirs = [(d, ENV_WEIGHTS_DIR) for d in env]
    dirs.append((user_weights_dir(), "user data directory"))
    dirs.append((REPO_WEIGHTS_DIR, "vsflavr checkout"))
    return dirs


def user_weights_dir() -> Path:
    """The per-user weights directory, e.g. ``~/.local/share/vsflavr/weights`` on Linux."""
    return Path(platformdirs.user_data_dir("vsflavr")) / "weights"


def default_download_dir() -> Path:
    """Where downloads go: the first ``VSFLAVR_WEIGHTS_DIR`` entry if set, else the user data directory."""
    return search_dirs()[0][0]


def find_weights(
    multi: int,
    weights: str | os.PathLike[str] | None = None,
    *,
    auto_download: bool | None = None,
) -> FoundWeights:
    """Find and load the checkpoint that gives ``multi`` times the frame rate.

    Args:
        multi: requested frame-rate factor, 2, 4 or 8.
        weights: a checkpoint file to use (any name; its multi is read from the file), or a
            directory to search instead of the usual places.
        auto_download: download the official checkpoint when none is found.  ``None`` reads
            ``VSFLAVR_AUTO_DOWNLOAD`` (``1`` turns it on); off by default, so an encode never
            starts a download by surprise.

    Raises:
        WeightsNotFound: nothing serves ``multi``; the message names the download command
            and every directory searched.
        CheckpointError: the file found cannot be used (corrupt, another architecture, or a
            checkpoint whose multi is not a multiple of ``multi``).
    """
    if multi not in MULTIS:
        raise ValueError(f"multi must be one of {', '.join(map(str, MULTIS))}, got {multi}")
    if weights is not None and not Path(weights).is_dir():
        return _use_file(Path(weights), multi)
    dirs = [(Path(weights), "weights=")] if weights is not None else search_dirs()
    found = _search(dirs, multi)
    if found is not None:
        return found
    if auto_download is None:
        auto_download = os.environ.get(ENV_AUTO_DOWNLOAD, "").strip().lower() in ("1", "true", "yes", "on")
    if not auto_download:
        raise WeightsNotFound(_not_found_message(dirs, multi))
    return _download(dirs[0][0] if weights is not None else default_download_dir(), dirs, multi)


def _candidates(multi: int) -> list[int]:
    """Checkpoint multis that serve ``multi``, best first: the exact one, then larger ones."""
    return [m for m in MULTIS if m % multi == 0]


def _search(dirs: list[tuple[Path, str]], multi: int) -> FoundWeights | None:
    for candidate in _candidates(multi):
        for directory, _ in dirs:
            path = directory / file_name(candidate)
            if path.is_file():
                return _use_file(path, multi)
    return None


def _use_file(path: Path, multi: int) -> FoundWeights:
    if not path.exists():
        raise WeightsNotFound(f"weights file {path} does not exist")
    checkpoint = load_checkpoint(path)
    have = checkpoint.architecture.multi
    if have % multi:
        raise CheckpointError(
            f"weights file {path} is a {have}x checkpoint; it cannot give multi={multi} "
            f"(use {' or '.join(file_name(m) for m in _candidates(multi))})"
        )
    stride = have // multi
    if stride > 1:
        phases = ", ".join(f"{k * stride}/{have}" for k in range(1, multi))
        logger.info("using the %sx checkpoint %s for multi=%s (its outputs at %s)", have, path, multi, phases)
    return FoundWeights(path=path, multi=have, stride=stride, checkpoint=checkpoint)


def _download(directory: Path, dirs: list[tuple[Path, str]], multi: int) -> FoundWeights:
    logger.warning("no FLAVR %sx checkpoint found; downloading it to %s (auto_download)", multi, directory)
    try:
        return _use_file(download_weights(multi, directory), multi)
    except DownloadError as exc:
        raise WeightsNotFound(f"{_not_found_message(dirs, multi)}\nThe automatic download failed: {exc}") from None


def _not_found_message(dirs: list[tuple[Path, str]], multi: int) -> str:
    also = [file_name(m) for m in _candidates(multi)[1:]]
    wanted = file_name(multi) + (f" (or {', '.join(also)}, which also serve {multi}x)" if also else "")
    searched = "\n".join(f"  {directory} ({origin})" for directory, origin in dirs)
    return (
        f"no FLAVR checkpoint for multi={multi}: looked for {wanted} in\n{searched}\n"
        f"Download it with: python -m vsflavr download {multi}x "
        f"(or pass weights=PATH, or set {ENV_AUTO_DOWNLOAD}=1 to download on first use)"
    )


def resolve_checkpoint(
    weights: str | os.PathLike[str] | None, multi: int | None, *, auto_download: bool | None = None
) -> Checkpoint:
    """The checkpoint the filter uses, in the documented order.

    Args:
        weights: a checkpoint file (used as it is, whatever its multi); a directory to search
            instead of the usual places; ``"official"`` for official checkpoints only;
            ``"builtin"`` for the built-in model :func:`builtin_model` picks for ``multi``; ``None`` for
            official checkpoints found by :func:`find_weights`, else that built-in model.
        multi: the integer rate factor asked for, or ``None`` for a fractional rate change,
            which prefers the finest grid found (8x, then 4x, then 2x).
        auto_download: as for :func:`find_weights`.
    """
    if weights == "builtin":
        return _builtin(multi)
    official_only = weights == "official"
    if official_only:
        weights = None
    if weights is not None and not Path(weights).is_dir():
        return load_checkpoint(weights)
    if multi is not None and multi not in MULTIS:
        raise WeightsNotFound(
            f"the official FLAVR checkpoints make multi 2, 4 and 8, not {multi}; "
            "use one of those, fps_num/fps_den, or weights=PATH to a checkpoint that makes it"
        )
    try:
        if multi is not None:
            return find_weights(multi, weights, auto_download=auto_download).checkpoint
        for finest in (8, 4):
            try:
                return find_weights(finest, weights, auto_download=False).checkpoint
            except WeightsNotFound:
                pass
        return find_weights(2, weights, auto_download=auto_download).checkpoint
    except WeightsNotFound:
        path = None if official_only or weights is not None else builtin_model(multi)
        if path is None:
            raise  # no built-in model's grid makes this multi: ask for the official checkpoint
    builtin = load_checkpoint(path)
    logger.warning(
        "no official FLAVR checkpoint found; using vsflavr's built-in model %s. For the official model's "
        "quality run: python -m vsflavr download %sx",
        builtin.path.name,
        multi or builtin.architecture.multi,
    )
    return builtin


def _builtin(multi: int | None) -> Checkpoint:
    """The built-in checkpoint :func:`builtin_model` picks, loaded; WeightsNotFound when none serves ``multi``."""
    path = builtin_model(multi)
    if path is None:
        installed = [f"{file.name} ({grid}x)" for grid, file in BUILTIN_MODELS.items() if file.is_file()]
        raise WeightsNotFound(
            f"no built-in model makes multi={multi} (installed: {', '.join(installed)}); "
            f"use an official checkpoint: python -m vsflavr download {multi}x"
            if installed
            else f"the built-in models are not installed in {BUILTIN_MODELS[2].parent}; reinstall vsflavr"
        )
    return load_checkpoint(path)
