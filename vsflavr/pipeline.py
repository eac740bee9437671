"""The VapourSynth glue: clip -> schedule -> window of frames -> backend -> clip."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from fractions import Fraction

import torch
import vapoursynth as vs

from .backends import Runner
from .frames import frame_to_tensor, pad_to_multiple, write_tensor
from .gapcache import OnceCache
from .heldframes import HeldFrames
from .retime import Copy, DrawingTimeline, Retime, Tween
from .scenes import is_cut
from .schedule import Schedule, window

__all__ = ["interpolate", "interpolate_drawings"]

# Gaps kept after their forward pass.  Output frames of one gap are requested together
# (VapourSynth asks for neighbouring frames in parallel), so a few per thread suffice.
_GAPS_PER_THREAD = 2
_MIN_GAPS = 4


def _remap(clip: vs.VideoNode, length: int, rate: Fraction, source_of: Callable[[int], int]) -> vs.VideoNode:
    """A clip of ``length`` frames at ``rate`` whose frame ``n`` is ``clip[source_of(n)]``."""
    template = clip.std.BlankClip(length=length, fpsnum=rate.numerator, fpsden=rate.denominator, keep=True)
    return template.std.FrameEval(lambda n: clip[source_of(n)])


def _gap_cache[K]() -> OnceCache[K, torch.Tensor]:
    """The bounded cache of forward passes: a few per VapourSynth thread."""
    return OnceCache(max(_MIN_GAPS, _GAPS_PER_THREAD * vs.core.num_threads))


def _forward(backend: Runner, frames: Sequence[vs.VideoFrame]) -> torch.Tensor:
    """One forward pass on the window (I-1, I0, I1, I2): every in-between frame, cropped to the clip's size."""
    x = torch.stack([frame_to_tensor(f) for f in frames])
    height, width = x.shape[-2:]
    out = backend(pad_to_multiple(x).unsqueeze(0))[0]
    return out[..., :height, :width]


def interpolate(
    clip: vs.VideoNode,
    schedule: Schedule,
    backend: Runner,
    rate: Fraction,
    use_cuts: bool,
) -> vs.VideoNode:
    """Build the output clip at ``rate``; ``use_cuts`` honours the clip's scene-change properties."""
    last = clip.num_frames - 1
    # Window members for the gap after frame i, clamped at the clip's ends: i-1, i, i+1, i+2.
    shifted = [
        clip[0] + clip[:-1] if last else clip,
        clip,
        clip[1:] + clip[-1] if last else clip,
        clip[2:] + clip[-1] * 2 if last > 1 else clip[-1] * clip.num_frames,
    ]
    length = schedule.output_frames
    members = [_remap(c, length, rate, lambda n: schedule.position(n).source) for c in shifted]
    cache: OnceCache[int, torch.Tensor] = _gap_cache()
    duration = rate.denominator, rate.numerator

    def cut_after(frames: dict[int, vs.VideoFrame], i: int) -> bool:
        return use_cuts and is_cut(frames[i], frames[i + 1])

    def run_gap(gap: int, frames: dict[int, vs.VideoFrame]) -> torch.Tensor:
        indices = window(gap, clip.num_frames, lambda i: cut_after(frames, i))
        return _forward(backend, [frames[i] for i in indices])

    def make_frame(n: int, f: list[vs.VideoFrame]) -> vs.VideoFrame:
        pos = schedule.position(n)
        i = pos.source
        frames = {max(i - 1, 0): f[0], i: f[1], min(i + 1, last): f[2], min(i + 2, last): f[3]}
        copy = pos.is_source or cut_after(frames, i)
        if copy:
            out = f[1].copy()
        else:
            result = cache.get(i, lambda: run_gap(i, frames))
            nearest = f[1] if 2 * pos.phase < schedule.grid else f[2]
            out = write_tensor(result[pos.phase - 1], nearest)
        props = out.props
        props["FLAVRInterpolated"] = int(not copy)
        props["FLAVRPhase"] = 0.0 if copy else pos.phase / schedule.grid
        props["_DurationNum"], props["_DurationDen"] = duration
        # Cuts, moved to the output timeline: the first output frame of a new shot gets
        # _SceneChangePrev, the last one before it _SceneChangeNext.
        starts_shot = (
            pos.is_source and i > 0 and n > 0 and schedule.position(n - 1).source < i and cut_after(frames, i - 1)
        )
        ends_shot = n + 1 < length and schedule.position(n + 1).source > i and cut_after(frames, i)
        props["_SceneChangePrev"] = int(starts_shot)
        props["_SceneChangeNext"] = int(ends_shot)
        return out

    return members[1].std.ModifyFrame(members, make_frame)


def interpolate_drawings(
    clip: vs.VideoNode,
    retime: Retime,
    held: HeldFrames,
    backend: Runner,
    rate: Fraction,
    *,
    grid: int,
    max_hold: int,
    anchor: str,
) -> vs.VideoNode:
    """``dedup=True``: the held drawings of each shot at even times (see :mod:`vsflavr.retime`), at ``rate``.

    Output frames are exact keys or FLAVR's phase of a window of four drawings; one forward pass
    serves every output frame between two drawings.  Properties: ``FLAVRDrawing`` (the source
    frame of the drawing shown, or of the earlier one of the pair), ``FLAVRHold`` (its hold in
    source frames), ``FLAVRPhase``, ``FLAVRInterpolated`` and the scene-change marks of :func:`interpolate`.
    """
    length = retime.output_frames
    timelines = {s.start: DrawingTimeline(s, grid=grid, max_hold=max_hold, anchor=anchor) for s in held.shots}
    duration = rate.denominator, rate.numerator

    def plan(n: int) -> Copy | Tween:
        return retime.frame(n, lambda i: timelines[held.shot(i).start])

    def member(k: int) -> vs.VideoNode:
        def source_of(n: int) -> int:
            item = plan(n)
            return item.window[k] if isinstance(item, Tween) else item.source

        return _remap(clip, length, rate, source_of)

    members = [member(k) for k in range(4)]
    cache: OnceCache[tuple[int, ...], torch.Tensor] = _gap_cache()

    def make_frame(n: int, f: list[vs.VideoFrame]) -> vs.VideoFrame:
        item = plan(n)
        if isinstance(item, Copy):
            out, phase = f[1].copy(), 0
        else:
            result = cache.get(item.window, lambda: _forward(backend, f))
            out, phase = write_tensor(result[item.phase - 1], f[1] if 2 * item.phase < grid else f[2]), item.phase
        shot = held.shot(retime.source(n))
        props = out.props
        props["FLAVRInterpolated"] = int(phase > 0)
        props["FLAVRPhase"] = phase / grid
        props["FLAVRDrawing"] = item.drawing
        props["FLAVRHold"] = item.hold
        props["_DurationNum"], props["_DurationDen"] = duration
        props["_SceneChangePrev"] = int(n > 0 and retime.source(n - 1) < shot.start)
        props["_SceneChangeNext"] = int(n + 1 < length and retime.source(n + 1) >= shot.end)
        return out

    return members[1].std.ModifyFrame(members, make_frame)
