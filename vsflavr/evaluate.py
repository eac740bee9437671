"""How well FLAVR rebuilds the frames of a clip, next to frame blending and frame repetition.

Every ``multi``-th frame of the clip is kept and the others are dropped; FLAVR rebuilds the
dropped ones from the kept ones (``vsflavr.flavr(kept, multi=multi)``), and each rebuilt
frame is compared with the original: PSNR (RGB, 0..255 scale) and SSIM.  Two simple
methods get the same scores: **blend**, the linear blend of the two kept neighbours at the
frame's time, and **repeat**, the kept frame before it.

Scene cuts are found on the original clip (the built-in detector and any
``_SceneChangeNext``/``_SceneChangePrev`` already on it) and handed to the clip of kept
frames: a kept frame is marked as followed by a cut when a cut lies anywhere before the
next kept frame.  Frames of such a gap cannot be rebuilt from their neighbours by any
method; they are scored but left out of the means.  Frames after the last kept frame
have no right neighbour and are not scored.  All frames are clamped to 0..1 before scoring.

:func:`evaluate_twos` measures ``dedup`` the same way: the clip is put "on twos" (every even
frame held twice, the copy with light noise, as a drawing held on twos by an encoder), and
``flavr(twos, multi=1, dedup=True)`` must rebuild the odd frames that the copies replaced.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from collections.abc import Callable
from pathlib import Path
from typing import Literal

import numpy as np
import vapoursynth as vs
from matplotlib.figure import Figure
from skimage.metrics import structural_similarity
from tqdm import tqdm

from . import flavr
from .formats import coding_of, to_network
from .frames import frame_to_tensor
from .scenes import DEFAULT_THRESHOLD, is_cut, mark_scene_changes

__all__ = [
    "METHODS",
    "PSNR_CAP",
    "Evaluation",
    "FrameScore",
    "evaluate",
    "evaluate_twos",
    "keep_every",
    "on_twos",
    "open_rgbs",
    "plot_psnr",
    "psnr",
    "ssim",
    "summary",
    "write_csv",
]

METHODS = ("flavr", "blend", "repeat")
"""The rebuilding methods compared, in report order."""

TWOS_METHODS = ("dedup", "held", "blend")
"""What :func:`evaluate_twos` compares: ``flavr(multi=1, dedup=True)``, the held copy itself (what
``dedup=False`` shows at that time, at any multi: source frames pass through), and the blend of the two drawings."""

PSNR_CAP = 100.0
"""PSNR given to a frame rebuilt without any error (its true PSNR is infinite)."""


def psnr(reference: np.ndarray, rebuilt: np.ndarray) -> float:
    """PSNR in dB of two RGB frames in 0..1, on the 0..255 scale (the same number); at most :data:`PSNR_CAP`."""
    mse = float(np.mean(np.square(reference.astype(np.float64) - rebuilt)))
    return PSNR_CAP if mse == 0 else min(PSNR_CAP, 10 * math.log10(1 / mse))


def ssim(reference: np.ndarray, rebuilt: np.ndarray) -> float:
    """SSIM of two (3, H, W) RGB frames in 0..1, the mean over channels, with Wang et al.'s Gaussian 11x11 window."""
    return float(
        structural_similarity(
            reference,
            rebuilt,
            channel_axis=0,
            data_range=1.0,
            gaussian_weights=True,
            sigma=1.5,
            use_sample_covariance=False,
        )
    )


@dataclass(frozen=True)
class FrameScore:
    """The scores of one dropped frame, rebuilt by each method."""

    frame: int
    """Its number in the original clip."""
    cut: bool
    """Its gap spans a scene cut: left out of the means."""
    psnr: dict[str, float]
    ssim: dict[str, float]


@dataclass(frozen=True)
class Evaluation:
    """Every scored frame, and where the original clip's scene cuts are."""

    multi: int
    scores: list[FrameScore]
    cuts: list[int]
    """Original frames that start a new shot (a cut lies just before them)."""
    methods: tuple[str, ...] = METHODS
    """The methods scored, in report order; the summary gives the first one's gain over the second."""

    @property
    def excluded(self) -> int:
        """How many scored frames are left out of the means because their gap spans a cut."""
        return sum(s.cut for s in self.scores)

    def mean(self, metric: Literal["psnr", "ssim"], method: str) -> float:
        """Mean ``metric`` (``"psnr"`` or ``"ssim"``) of ``method`` over the frames not excluded; NaN if none."""
        values = [getattr(s, metric)[method] for s in self.scores if not s.cut]
        return float(np.mean(values)) if values else math.nan


def open_rgbs(path: str | Path, frames: int | None = None) -> vs.VideoNode:
    """Open a video file with BestSource as float RGB, limited to its first ``frames``.

    Converted as :func:`vsflavr.flavr` converts what FLAVR reads: with the file's own matrix, range
    and chroma location, guessed from the frame size where the file does not say (see :mod:`vsflavr.formats`).
    """
    clip = vs.core.bs.VideoSource(str(path))
    if frames is not None:
        clip = clip[: min(frames, clip.num_frames)]
    return to_network(clip, coding_of(clip))


def keep_every(clip: vs.VideoNode, multi: int) -> vs.VideoNode:
    """Frames 0, multi, 2 * multi, ... of ``clip`` (more than ``multi`` frames long), each with
    ``_SceneChangeNext`` = 1 when a cut of ``clip`` lies before the next kept frame (and no ``_SceneChangePrev``)."""
    # Clip r holds, at kept frame k, the original frame k * multi + r (the last frame past the end).
    spans = [(clip[r:] + clip[-1] * r if r else clip)[::multi] for r in range(multi + 1)]

    def mark(n: int, f: list[vs.VideoFrame]) -> vs.VideoFrame:
        out = f[0].copy()
        out.props["_SceneChangeNext"] = int(any(is_cut(f[r], f[r + 1]) for r in range(multi)))
        out.props.pop("_SceneChangePrev", None)
        return out

    return spans[0].std.ModifyFrame(spans, mark)


def evaluate(
    clip: vs.VideoNode,
    multi: int = 2,
    *,
    weights: str | Path | None = None,
    device: int | str | None = None,
    precision: str = "auto",
    sc_threshold: float | None = DEFAULT_THRESHOLD,
    progress: bool = False,
    rebuild: Callable[[vs.VideoNode, int], vs.VideoNode] | None = None,
    name: str = "flavr",
) -> Evaluation:
    """Drop all but every ``multi``-th frame of ``clip``, rebuild them with FLAVR, blending and repetition, score each.

    Args:
        clip: an RGBS or RGBH clip with at least ``multi + 1`` frames.
        multi: keep one frame in ``multi``; FLAVR rebuilds the others with ``flavr(kept, multi=multi)``.
        weights, device, precision: as for :func:`vsflavr.flavr`.
        sc_threshold: the built-in cut detector's threshold on the original clip, as for
            :func:`vsflavr.flavr`; ``None`` uses only the clip's own scene-change properties.
        progress: show a progress bar.
        rebuild: score another interpolator by the same protocol instead of FLAVR: called as
            ``rebuild(kept, multi)``, it returns ``multi`` frames per kept frame, the kept frame
            first (kept frames carry ``_SceneChangeNext`` where their gap spans a cut).
        name: the first method's name in the scores, e.g. ``"rife"`` for such a peer.
    """
    if clip.num_frames <= multi:
        raise ValueError(f"the clip has {clip.num_frames} frames; scoring multi={multi} needs at least {multi + 1}")
    original = clip if sc_threshold is None else mark_scene_changes(clip, sc_threshold)
    kept = keep_every(original, multi)
    if rebuild is None:
        rebuilt = flavr(kept, multi=multi, weights=weights, device=device, precision=precision, sc_threshold=None)
    else:
        rebuilt = rebuild(kept, multi)
    if rebuilt.num_frames < (kept.num_frames - 1) * multi:
        raise ValueError(f"{name} made {rebuilt.num_frames} frames from {kept.num_frames}; multi={multi} needs more")
    scores: list[FrameScore] = []
    cuts: list[int] = []
    for gap in tqdm(range(kept.num_frames - 1), desc="scoring", unit="gap", disable=not progress):
        first = gap * multi
        frames = [original.get_frame(first + r) for r in range(multi + 1)]
        cuts += [first + r + 1 for r in range(multi) if is_cut(frames[r], frames[r + 1])]
        left = kept.get_frame(gap)
        spans_cut = bool(left.props["_SceneChangeNext"])
        before, after = _pixels(left), _pixels(kept.get_frame(gap + 1))
        for r in range(1, multi):
            t = r / multi
            reference = _pixels(frames[r])
            candidates = {
                name: _pixels(rebuilt.get_frame(first + r)),
                "blend": (1 - t) * before + t * after,
                "repeat": before,
            }
            scores.append(_score(first + r, spans_cut, reference, candidates))
    return Evaluation(multi=multi, scores=scores, cuts=cuts, methods=(name, *METHODS[1:]))


def on_twos(clip: vs.VideoNode, noise: float = 1 / 255) -> vs.VideoNode:
    """``clip`` as if drawn on twos: frames 0, 0', 2, 2', 4, 4', ... (same length and rate).

    Each copy ``k'`` is frame ``k`` plus Gaussian noise of standard deviation ``noise`` (seeded
    by the frame number), rounded to 8-bit steps, as an encoder leaves a held drawing.  Cut
    marks: a copy has ``_SceneChangeNext`` when a cut of ``clip`` lies before the next even frame.
    """
    kept = keep_every(clip, 2)
    first = kept.std.RemoveFrameProps("_SceneChangeNext")

    def add_noise(n: int, f: vs.VideoFrame) -> vs.VideoFrame:
        out = f.copy()
        rng = np.random.default_rng(n)
        for p in range(out.format.num_planes):
            plane = np.asarray(out[p])
            noisy = np.round((plane + rng.normal(0, noise, plane.shape)) * 255) / 255
            np.copyto(plane, np.clip(noisy, 0, 1), casting="unsafe")
        return out

    return vs.core.std.Interleave([first, kept.std.ModifyFrame(kept, add_noise)])[: clip.num_frames]


def evaluate_twos(
    clip: vs.VideoNode,
    *,
    weights: str | Path | None = None,
    device: int | str | None = None,
    precision: str = "auto",
    sc_threshold: float | None = DEFAULT_THRESHOLD,
    progress: bool = False,
) -> Evaluation:
    """Put ``clip`` on twos (:func:`on_twos`), fill the holds with ``flavr(multi=1, dedup=True)``, score the odd frames.

    Each odd frame is scored as rebuilt by ``dedup``, as the held copy that replaced it
    (``held``, what ``dedup=False`` shows) and as the blend of its even neighbours; arguments as
    for :func:`evaluate`.  Frames whose neighbours straddle a cut of ``clip`` are left out of the means.
    """
    if clip.num_frames < 3:
        raise ValueError(f"the clip has {clip.num_frames} frames; putting it on twos needs at least 3")
    original = clip if sc_threshold is None else mark_scene_changes(clip, sc_threshold)
    twos = on_twos(original)
    rebuilt = flavr(twos, multi=1, dedup=True, weights=weights, device=device, precision=precision, sc_threshold=None)
    scores: list[FrameScore] = []
    cuts = [n for n in range(1, clip.num_frames) if is_cut(original.get_frame(n - 1), original.get_frame(n))]
    for frame in tqdm(range(1, clip.num_frames - 1, 2), desc="scoring", unit="frame", disable=not progress):
        held = twos.get_frame(frame)
        before, after = _pixels(twos.get_frame(frame - 1)), _pixels(twos.get_frame(frame + 1))
        reference = _pixels(original.get_frame(frame))
        candidates = {"dedup": _pixels(rebuilt.get_frame(frame)), "held": _pixels(held), "blend": (before + after) / 2}
        scores.append(_score(frame, bool(held.props.get("_SceneChangeNext", 0)), reference, candidates))
    return Evaluation(multi=2, scores=scores, cuts=cuts, methods=TWOS_METHODS)


def _score(frame: int, cut: bool, reference: np.ndarray, candidates: dict[str, np.ndarray]) -> FrameScore:
    """PSNR and SSIM of each candidate against ``reference``."""
    return FrameScore(
        frame=frame,
        cut=cut,
        psnr={m: psnr(reference, x) for m, x in candidates.items()},
        ssim={m: ssim(reference, x) for m, x in candidates.items()},
    )


def _pixels(frame: vs.VideoFrame) -> np.ndarray:
    """A frame as a (3, H, W) float32 array clamped to 0..1."""
    return frame_to_tensor(frame).clamp(0.0, 1.0).numpy()


def summary(evaluation: Evaluation) -> list[str]:
    """A table of mean PSNR and SSIM per method, and FLAVR's gain over blending."""
    lines = [f"{'method':<8} {'PSNR (dB)':>10} {'SSIM':>8}"]
    methods = evaluation.methods
    lines += [f"{m:<8} {evaluation.mean('psnr', m):>10.2f} {evaluation.mean('ssim', m):>8.4f}" for m in methods]
    scored = len(evaluation.scores) - evaluation.excluded
    gain = evaluation.mean("psnr", methods[0]) - evaluation.mean("psnr", methods[1])
    lines.append(
        f"{methods[0].upper()} vs {methods[1]}: {gain:+.2f} dB over {scored} rebuilt frames "
        f"({evaluation.excluded} excluded: their gap spans one of {len(evaluation.cuts)} scene cuts)"
    )
    return lines


def write_csv(evaluation: Evaluation, path: str | Path) -> None:
    """One row per scored frame: its number, PSNR and SSIM of each method, and whether it is excluded."""
    with Path(path).open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        methods = evaluation.methods
        writer.writerow(["frame", *(f"psnr_{m}" for m in methods), *(f"ssim_{m}" for m in methods), "cut_excluded"])
        for s in evaluation.scores:
            writer.writerow(
                [
                    s.frame,
                    *(f"{s.psnr[m]:.4f}" for m in methods),
                    *(f"{s.ssim[m]:.6f}" for m in methods),
                    int(s.cut),
                ]
            )


def plot_psnr(evaluation: Evaluation, path: str | Path, title: str = "") -> None:
    """A PNG of each method's PSNR over the clip, with scene cuts as dashed lines and excluded frames left blank."""
    figure = Figure(figsize=(10, 4), layout="constrained")
    ax = figure.subplots()
    frames = [s.frame for s in evaluation.scores]
    for method in evaluation.methods:
        ax.plot(frames, [math.nan if s.cut else s.psnr[method] for s in evaluation.scores], label=method, lw=1)
    for i, cut in enumerate(evaluation.cuts):
        ax.axvline(cut - 0.5, color="grey", ls="--", lw=0.8, label="scene cut" if i == 0 else None)
    ax.set(xlabel="frame", ylabel="PSNR (dB, RGB)", title=title or f"rebuilt frames, 1 kept in {evaluation.multi}")
    ax.legend()
    figure.savefig(Path(path), dpi=100)
