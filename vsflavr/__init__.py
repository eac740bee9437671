"""vsflavr: FLAVR frame interpolation for VapourSynth.

import vsflavr
clip = vsflavr.flavr(clip, multi=2)
"""

from __future__ import annotations

import logging
import os
from fractions import Fraction

import torch
import vapoursynth as vs

from .backends import DEFAULT_OVERLAP, Backend, Runner, resolve_device, select_backend
from .checkpoint import Checkpoint, CheckpointError
from .errors import one_line
from .formats import check_format, coding_of
from .heldframes import DEFAULT_THRESHOLD as DEFAULT_HELD_THRESHOLD
from .heldframes import HeldFrames
from .pipeline import interpolate, interpolate_drawings
from .retime import ANCHORS, Retime
from .scenes import DEFAULT_THRESHOLD, mark_scene_changes
from .schedule import Schedule
from .timestamps import frame_times
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
    dedup: bool = False,
    dedup_threshold: float = DEFAULT_HELD_THRESHOLD,
    dedup_max_hold: int = 3,
    dedup_anchor: str = "start",
    dedup_log: str | os.PathLike[str] | None = None,
) -> vs.VideoNode:
    """Interpolate frames with FLAVR, raising the frame rate by ``multi`` or to ``fps_num / fps_den``.

    Args:
        clip: the clip as its source filter gives it: YUV (4:2:0, 4:2:2, 4:4:4, ...), GRAY or RGB,
            8-16 bit integer or 16/32-bit float, of one format and size.  It comes back in exactly
            its format; FLAVR reads it converted to RGB with its own ``_Matrix``, ``_Range`` and
            ``_ChromaLocation`` (guessed from its size where missing, with a log line saying how to
            state them), and only the frames it makes are converted back.  Every frame that shows a
            source frame is that frame, bit for bit.  A variable-rate clip (``fps_num == 0``, each
            frame's ``_DurationNum/_DurationDen``) needs ``fps_num``/``fps_den``.
        multi: integer rate factor (default 2): output has ``clip.num_frames * multi`` frames,
            source frame ``i`` is output frame ``i * multi`` unchanged, and the ``multi - 1``
            frames after it are interpolated.  The checkpoint's multi must be a multiple of it.
        fps_num, fps_den: a target frame rate instead of ``multi`` (for example 60000/1001
            from 24000/1001); at least the source rate.  Each output frame takes the nearest
            phase k/multi of the checkpoint's grid (timing error at most half a phase step),
            or the source frame itself when its time falls on one.  ``fps_den`` defaults to 1.
            With a variable-rate clip, output frame ``n`` shows time ``n * fps_den / fps_num`` of
            the source's own timestamps (the sum of the durations before each frame).
        weights: a checkpoint file (official ``FLAVR_2x/4x/8x.pth`` or vsflavr's own), a directory
            to search, ``"official"`` (official checkpoints only) or ``"builtin"``.  ``None``: the
            official checkpoints found in the usual places (see weights/README.md), else a
            built-in model: flavr_s_2x for ``multi=2``, flavr_s_8x (8x grid) for multi 4 and 8,
            fractional rates and ``dedup``.
        device: CUDA GPU index (0, 1, ...), ``"cuda:N"`` or ``"cpu"``.  ``None``: the first GPU
            if there is one, otherwise the CPU (slow).
        precision: ``"auto"`` (fp16 on a GPU; on the CPU bf16 where the CPU has native bf16,
            avx512_bf16 or AMX, else fp32, or int8 for the built-in 2x model), ``"fp32"``, ``"fp16"``
            (GPU), ``"bf16"`` or ``"int8"`` (CPU through OpenVINO, the built-in 2x model only: its
            shipped int8 network, 0.02 dB below fp32 on the test footage).
            On CPUs with avx512_bf16 or AMX, ``"bf16"`` is about twice as fast as fp32.
        backend: how the network runs.  ``"auto"``: on a GPU PyTorch; on the CPU OpenVINO or PyTorch,
            whichever a one-off timing on this CPU found faster for the network, frame size and
            precision (kept in the user cache dir; ``python -m vsflavr info`` says which);
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
        dedup: for animation drawn on twos or threes: find held drawings (frames repeating the one
            before) and give every drawing of a shot an even share of time, so the motion is even
            instead of "still, then a jump".  Same frame count and rate as without it; ``multi=1``
            (only with ``dedup``) keeps the rate and replaces held copies by in-between drawings.
            An 8x checkpoint is preferred: with a 2x one only the middle of two drawings exists.
        dedup_threshold: the largest local difference (fraction of full range, default 3/255) of
            a held copy, measured on 16x16 px windows of luma after ignoring per-pixel codec noise
            below 3/255.  Raise it for noisy or grainy sources whose holds are missed, lower it
            if small changes (a blink, a mouth) are taken for holds; ``dedup_log`` shows the values.
        dedup_max_hold: the longest run of frames showing one drawing that is part of the cadence
            (default 3: twos and threes).  Longer runs are stills: they stay still, and only their
            last frames move to the next drawing.
        dedup_anchor: ``"start"`` (default): a drawing's time is its first frame, as drawn (lip
            sync, impacts); ``"center"``: the middle of its hold (moves each drawing by half a
            hold, e.g. 21 ms on twos at 23.976 fps).
        dedup_log: a CSV file receiving one row per source frame: frame, difference from the
            previous frame and from its run's first frame, duplicate or not, run, shot, override.
            A ``FLAVRHeld`` property on a source frame (1 held, 0 new drawing) overrides the detector.

    Returns:
        A clip of the same format and size at the new (constant) rate.  Interpolated frames carry
        ``FLAVRInterpolated = 1`` and ``FLAVRPhase`` (their position between the two source
        frames, 0..1); every other property comes from the nearest source frame.  Every frame
        sets ``_DurationNum/_DurationDen`` (the new rate) and ``_SceneChangeNext/_SceneChangePrev``
        (cuts moved to the new timeline); source frames keep all their other properties.  With
        ``dedup``, frames also carry ``FLAVRDrawing`` (the source frame of the drawing shown,
        or of the earlier of the two) and ``FLAVRHold`` (that drawing's hold in frames).
    """
    source_rate = _check_clip(clip)
    _check_dedup(dedup, dedup_threshold, dedup_max_hold, dedup_anchor, dedup_log)
    ratio = _check_rate(source_rate, multi, fps_num, fps_den, dedup)
    if not isinstance(sc, bool):
        raise vs.Error(f"flavr: sc must be True or False, got {sc!r}")
    if sc_threshold is not None and (
        isinstance(sc_threshold, bool) or not isinstance(sc_threshold, int | float) or not 0 < sc_threshold < 1
    ):
        raise vs.Error(f"flavr: sc_threshold must be a number between 0 and 1 (default {DEFAULT_THRESHOLD}) or None")
    coding = coding_of(clip)
    times = None
    if source_rate is None:
        times = frame_times(clip)
        average = clip.num_frames / times[-1]
        if ratio < average:
            raise vs.Error(
                f"flavr: the target rate {ratio} is slower than the clip's average {float(average):.3f} fps; "
                "vsflavr only raises the rate"
            )
    rate = ratio if source_rate is None else source_rate * ratio
    try:
        torch_device = resolve_device(device)
        settings = select_backend(backend, torch_device, precision, tile_size=tile_size, tile_overlap=tile_overlap)
    except ValueError as exc:
        raise vs.Error(f"flavr: {exc}") from None
    except Exception as exc:  # noqa: BLE001 - torch asking a broken CUDA install
        raise vs.Error(
            f"flavr: cannot ask CUDA for device {device!r} ({one_line(exc)}); check the GPU and its driver with "
            "`python -m vsflavr info`, or use device='cpu'"
        ) from None

    integer_multi = int(ratio) if fps_num is None else None
    checkpoint = _load_weights(weights, None if dedup else integer_multi, auto_download)  # dedup: the finest grid
    grid = checkpoint.architecture.multi
    if integer_multi is not None and grid % integer_multi:
        raise vs.Error(
            f"flavr: multi={integer_multi} cannot be made by the loaded {grid}x checkpoint {checkpoint.path} (it "
            f"makes phases k/{grid}); use a multi that divides {grid}, a checkpoint whose multi is a multiple of "
            f"{integer_multi}, or fps_num/fps_den for the nearest phases"
        )
    runner = _start_backend(settings, checkpoint, backend, torch_device)
    if sc and sc_threshold is not None:
        clip = mark_scene_changes(clip, sc_threshold, coding)
    if dedup:
        if ratio != 1 and grid < 8:
            logger.warning(
                "flavr: dedup with a %dx checkpoint places in-betweens at the nearest 1/%d of the way between two "
                "drawings, which can leave motion uneven at this rate; an 8x checkpoint gives even motion (multi=1 "
                "fills twos with any checkpoint)",
                grid,
                grid,
            )
        try:
            held = HeldFrames(clip, dedup_threshold, use_cuts=sc, log=dedup_log, coding=coding)
        except OSError as exc:
            raise vs.Error(f"flavr: cannot write dedup_log {dedup_log}: {exc.strerror or exc}") from None
        retime = Retime(clip.num_frames, ratio, times)
        return interpolate_drawings(
            clip, retime, held, runner, rate, grid=grid, max_hold=dedup_max_hold, anchor=dedup_anchor, coding=coding
        )
    schedule = Schedule(clip.num_frames, ratio, grid, times)
    return interpolate(clip, schedule, runner, rate, use_cuts=sc, coding=coding)


def _check_clip(clip: vs.VideoNode) -> Fraction | None:
    """Check the clip's format and size; returns its frame rate (``None``: a variable rate)."""
    if not isinstance(clip, vs.VideoNode):
        raise vs.Error(f"flavr: clip must be a VideoNode, got {type(clip).__name__}")
    fmt = clip.format
    if fmt is None or fmt.id == vs.NONE:
        raise vs.Error(
            "flavr: the clip has a variable format; convert it to one format first, e.g. "
            "clip = core.resize.Bicubic(clip, format=vs.YUV420P10)"
        )
    if clip.width == 0 or clip.height == 0:
        raise vs.Error(
            "flavr: the clip has a variable frame size; resize it to one size first, e.g. "
            "clip = core.resize.Bicubic(clip, width=1920, height=1080)"
        )
    check_format(clip)
    return Fraction(clip.fps_num, clip.fps_den) if clip.fps_num else None


def _check_rate(
    source_rate: Fraction | None, multi: int | None, fps_num: int | None, fps_den: int | None, dedup: bool = False
) -> Fraction:
    """The output/input frame-rate ratio asked for by ``multi`` or ``fps_num``/``fps_den`` (``multi=1`` with dedup).

    For a variable-rate clip (``source_rate=None``): the target rate itself, which only ``fps_num`` can give.
    """
    if source_rate is None and fps_num is None:
        raise vs.Error(
            "flavr: the clip has a variable frame rate, so a multiple of it is no rate; give a target rate "
            "instead, e.g. flavr(clip, fps_num=60000, fps_den=1001)"
        )
    if fps_num is None and fps_den is None:
        multi = 2 if multi is None else multi
        if isinstance(multi, bool) or not isinstance(multi, int) or multi < 2 - dedup:
            also = "" if dedup else " (or 1 with dedup=True, which fills held drawings)"
            raise vs.Error(
                f"flavr: multi must be an integer >= 2{also}, got {multi!r}; for other rates use fps_num/fps_den"
            )
        return Fraction(multi)
    if multi is not None:
        raise vs.Error("flavr: give either multi or fps_num/fps_den, not both")
    if fps_num is None:
        raise vs.Error("flavr: fps_den needs fps_num too, e.g. fps_num=60000, fps_den=1001")
    fps_den = 1 if fps_den is None else fps_den
    for name, value in (("fps_num", fps_num), ("fps_den", fps_den)):
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise vs.Error(f"flavr: {name} must be a positive integer, got {value!r}")
    if source_rate is None:
        return Fraction(fps_num, fps_den)
    ratio = Fraction(fps_num, fps_den) / source_rate
    if ratio < 1:
        raise vs.Error(
            f"flavr: the target rate {fps_num}/{fps_den} is slower than the clip's {source_rate}; "
            "vsflavr only raises the rate (use core.std.AssumeFPS or a decimator to lower it)"
        )
    return ratio


def _check_dedup(dedup: bool, threshold: float, max_hold: int, anchor: str, log: object) -> None:
    """Check the dedup options (whether or not dedup is on, so a typo never waits for the day it is)."""
    if not isinstance(dedup, bool):
        raise vs.Error(f"flavr: dedup must be True or False, got {dedup!r}")
    if log is not None and not dedup:
        raise vs.Error("flavr: dedup_log is the log of dedup's detector; it needs dedup=True")
    if isinstance(threshold, bool) or not isinstance(threshold, int | float) or not 0 <= threshold < 1:
        raise vs.Error(
            f"flavr: dedup_threshold must be a fraction of full range in [0, 1), e.g. 3/255 (the default), "
            f"got {threshold!r}"
        )
    if isinstance(max_hold, bool) or not isinstance(max_hold, int) or max_hold < 2:
        raise vs.Error(f"flavr: dedup_max_hold must be an integer >= 2 (3 covers twos and threes), got {max_hold!r}")
    if anchor not in ANCHORS:
        raise vs.Error(f"flavr: dedup_anchor must be one of {', '.join(map(repr, ANCHORS))}, got {anchor!r}")


def _load_weights(weights: str | os.PathLike[str] | None, multi: int | None, auto_download: bool | None) -> Checkpoint:
    """The checkpoint to use (see :func:`vsflavr.weights.resolve_checkpoint`), errors as vs.Error."""
    try:
        return resolve_checkpoint(weights, multi, auto_download=auto_download)
    except (CheckpointError, WeightsNotFound) as exc:
        raise vs.Error(f"flavr: {exc}") from None


def _start_backend(settings: Backend, checkpoint: Checkpoint, backend: str, device: torch.device) -> Runner:
    """``settings.load`` with every failure as a one-line vs.Error that says what to do."""
    try:
        return settings.load(checkpoint.model)
    except ValueError as exc:
        raise vs.Error(f"flavr: {exc}") from None
    except torch.cuda.OutOfMemoryError:
        raise vs.Error(
            f"flavr: {device} ran out of memory loading the network; close other programs on the GPU, "
            "choose another device, or use device='cpu'"
        ) from None
    except Exception as exc:  # noqa: BLE001 - a driver, CUDA or library failure; the user needs its one line
        raise vs.Error(
            f"flavr: backend={backend!r} failed to start on {device} ({one_line(exc)}); check the GPU and its "
            "driver with `python -m vsflavr info`, or try backend='torch' or device='cpu'"
        ) from None
