"""vsflavr: FLAVR frame interpolation for VapourSynth.

import vsflavr
clip = vsflavr.flavr(clip, multi=2)
"""

from __future__ import annotations

import logging
import os
from fractions import Fraction

import vapoursynth as vs

from .backends import DEFAULT_OVERLAP, resolve_device, select_backend
from .checkpoint import Checkpoint, CheckpointError
from .pipeline import interpolate
from .scenes import DEFAULT_THRESHOLD, mark_scene_changes
from .schedule import Schedule
from .weights import WeightsNotFound, resolve_checkpoint

__all__ = ["flavr"]
__version__ = "0.1.0"

logger = logging.getLogger("vsflavr")


def flavr(
    clip: vs.VideoNode,
    multi: int | None = None,
    *,
    fps_num: int | None = None,
    fps_den: int | None = None,
    weights: str | os.PathLike[str] | None = None,
    device: int | str | None = None,
    precision: str = "auto",
    backend: str = "auto",
    tile_size: int | None = None,
    tile_overlap: int = DEFAULT_OVERLAP,
    sc: bool = True,
    sc_threshold: float | None = DEFAULT_THRESHOLD,
    auto_download: bool | None = None,
) -> vs.VideoNode:
    """Interpolate frames with FLAVR, raising the frame rate by ``multi`` or to ``fps_num / fps_den``.

    Args:
        clip: constant-format, constant-size, constant-rate RGBS or RGBH clip.
        multi: integer rate factor (default 2): output has ``clip.num_frames * multi`` frames,
            source frame ``i`` is output frame ``i * multi`` unchanged, and the ``multi - 1``
            frames after it are interpolated.  The checkpoint's multi must be a multiple of it.
        fps_num, fps_den: a target frame rate instead of ``multi`` (for example 60000/1001
            from 24000/1001); at least the source rate.  Each output frame takes the nearest
            phase k/multi of the checkpoint's grid (timing error at most half a phase step),
            or the source frame itself when its time falls on one.  ``fps_den`` defaults to 1.
        weights: a checkpoint file (official ``FLAVR_2x/4x/8x.pth`` or vsflavr's own), a directory
            to search, ``"official"`` (official checkpoints only) or ``"builtin"``.  ``None``: the
            official checkpoints found in the usual places (see weights/README.md), else the
            built-in model.
        device: CUDA GPU index (0, 1, ...), ``"cuda:N"`` or ``"cpu"``.  ``None``: the first GPU
            if there is one, otherwise the CPU (slow).
        precision: ``"auto"`` (fp16 on a GPU; on the CPU bf16 where the CPU has native bf16,
            avx512_bf16 or AMX, else fp32), ``"fp32"``, ``"fp16"`` (GPU) or ``"bf16"``.
            On CPUs with avx512_bf16 or AMX, ``"bf16"`` is about twice as fast as fp32.
        backend: how the network runs.  ``"auto"``: on a GPU PyTorch; on the CPU OpenVINO or PyTorch,
            whichever measured faster for the network and CPU (``python -m vsflavr info`` says which);
            ``"torch"``: PyTorch (on a GPU with two CUDA streams); ``"openvino"``: OpenVINO (CPU only;
            a dependency on x86-64, elsewhere ``pip install vsflavr[openvino]``); ``"compile"``: through ``torch.compile`` (the first frame of a clip takes
            minutes, later ones run faster); ``"trt"``: TensorRT engines (GPU, ``pip install
            vsflavr[trt]``), built once per frame size and kept in the user cache directory.
        tile_size: run frames as overlapping square tiles of this side (multiple of 8, >= 64) to
            save memory.  ``None``: whole frames, except on a GPU whose free memory is too small.
        tile_overlap: pixels shared by neighbouring tiles, blended with linear ramps (default 32).
        sc: never interpolate across a scene cut.  A gap that spans a cut is filled with
            copies of the frame before it, and no 4-frame window reaches across a cut.
        sc_threshold: built-in cut detection threshold, the mean absolute luma difference
            (0..1) between neighbouring frames; default 0.12.  ``None`` turns the built-in
            detector off and uses only ``_SceneChangeNext``/``_SceneChangePrev`` already on the clip.
        auto_download: download missing official weights (default off, or env ``VSFLAVR_AUTO_DOWNLOAD=1``).

    Returns:
        A clip of the same format and size at the new rate.  Interpolated frames carry
        ``FLAVRInterpolated = 1`` and ``FLAVRPhase`` (their position between the two source
        frames, 0..1); every other property comes from the nearest source frame.
    """
    source_rate = _check_clip(clip)
    ratio = _check_rate(source_rate, multi, fps_num, fps_den)
    if not isinstance(sc, bool):
        raise vs.Error(f"flavr: sc must be True or False, got {sc!r}")
    if sc_threshold is not None and (
        isinstance(sc_threshold, bool) or not isinstance(sc_threshold, int | float) or not 0 < sc_threshold < 1
    ):
        raise vs.Error(f"flavr: sc_threshold must be a number between 0 and 1 (default {DEFAULT_THRESHOLD}) or None")
    try:
        torch_device = resolve_device(device)
        settings = select_backend(backend, torch_device, precision, tile_size=tile_size, tile_overlap=tile_overlap)
    except ValueError as exc:
        raise vs.Error(f"flavr: {exc}") from None

    integer_multi = int(ratio) if fps_num is None else None
    checkpoint = _load_weights(weights, integer_multi, auto_download)
    grid = checkpoint.architecture.multi
    if integer_multi is not None and grid % integer_multi:
        raise vs.Error(
            f"flavr: multi={integer_multi} cannot be made by the loaded {grid}x checkpoint {checkpoint.path} (it "
            f"makes phases k/{grid}); use a multi that divides {grid}, a checkpoint whose multi is a multiple of "
            f"{integer_multi}, or fps_num/fps_den for the nearest phases"
        )
    try:
        runner = settings.load(checkpoint.model)
    except ValueError as exc:
        raise vs.Error(f"flavr: {exc}") from None
    if sc and sc_threshold is not None:
        clip = mark_scene_changes(clip, sc_threshold)
    schedule = Schedule(clip.num_frames, ratio, grid)
    return interpolate(clip, schedule, runner, source_rate * ratio, use_cuts=sc)


def _check_clip(clip: vs.VideoNode) -> Fraction:
    """Check the clip's format, size and rate; returns its frame rate."""
    if not isinstance(clip, vs.VideoNode):
        raise vs.Error(f"flavr: clip must be a VideoNode, got {type(clip).__name__}")
    fmt = clip.format
    if fmt is None or fmt.id == vs.NONE:
        raise vs.Error(
            "flavr: the clip has a variable format; convert it to one format first, e.g. "
            "clip = core.resize.Bicubic(clip, format=vs.RGBS, matrix_in_s='709')"
        )
    if clip.width == 0 or clip.height == 0:
        raise vs.Error(
            "flavr: the clip has a variable frame size; resize it to one size first, e.g. "
            "clip = core.resize.Bicubic(clip, width=1920, height=1080)"
        )
    if clip.fps_num == 0:
        raise vs.Error(
            "flavr: the clip has a variable frame rate; give it a constant one first, e.g. "
            "clip = core.std.AssumeFPS(clip, fpsnum=24000, fpsden=1001)"
        )
    if fmt.color_family != vs.RGB or fmt.sample_type != vs.FLOAT:
        if fmt.color_family == vs.YUV:
            fix = "clip = core.resize.Bicubic(clip, format=vs.RGBS, matrix_in_s='709')  # use the clip's matrix"
        elif fmt.color_family == vs.GRAY:
            fix = "clip = core.std.ShufflePlanes(core.resize.Point(clip, format=vs.GRAYS), [0, 0, 0], vs.RGB)"
        else:
            fix = "clip = core.resize.Point(clip, format=vs.RGBS)"
        raise vs.Error(f"flavr: input must be RGBS or RGBH, got {fmt.name}; convert it first: {fix}")
    return Fraction(clip.fps_num, clip.fps_den)


def _check_rate(source_rate: Fraction, multi: int | None, fps_num: int | None, fps_den: int | None) -> Fraction:
    """The output/input frame-rate ratio asked for by ``multi`` or ``fps_num``/``fps_den``."""
    if fps_num is None and fps_den is None:
        multi = 2 if multi is None else multi
        if isinstance(multi, bool) or not isinstance(multi, int) or multi < 2:
            raise vs.Error(f"flavr: multi must be an integer >= 2, got {multi!r}; for other rates use fps_num/fps_den")
        return Fraction(multi)
    if multi is not None:
        raise vs.Error("flavr: give either multi or fps_num/fps_den, not both")
    if fps_num is None:
        raise vs.Error("flavr: fps_den needs fps_num too, e.g. fps_num=60000, fps_den=1001")
    fps_den = 1 if fps_den is None else fps_den
    for name, value in (("fps_num", fps_num), ("fps_den", fps_den)):
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise vs.Error(f"flavr: {name} must be a positive integer, got {value!r}")
    ratio = Fraction(fps_num, fps_den) / source_rate
    if ratio < 1:
        raise vs.Error(
            f"flavr: the target rate {fps_num}/{fps_den} is slower than the clip's {source_rate}; "
            "vsflavr only raises the rate (use core.std.AssumeFPS or a decimator to lower it)"
        )
    return ratio


def _load_weights(weights: str | os.PathLike[str] | None, multi: int | None, auto_download: bool | None) -> Checkpoint:
    """The checkpoint to use (see :func:`vsflavr.weights.resolve_checkpoint`), errors as vs.Error."""
    try:
        return resolve_checkpoint(weights, multi, auto_download=auto_download)
    except (CheckpointError, WeightsNotFound) as exc:
        raise vs.Error(f"flavr: {exc}") from None
