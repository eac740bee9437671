"""The VapourSynth glue: clip -> schedule -> window of frames -> backend -> clip."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from fractions import Fraction

import torch
import vapoursynth as vs

from .backends import Runner
from .formats import Coding, from_network, to_network
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


def _shifted(clip: vs.VideoNode) -> list[vs.VideoNode]:
    """Window members for the gap after frame i, clamped at the clip's ends: frames i-1, i, i+1, i+2."""
    last = clip.num_frames - 1
    return [
        clip[0] + clip[:-1] if last else clip,
        clip,
        clip[1:] + clip[-1] if last else clip,
        clip[2:] + clip[-1] * 2 if last > 1 else clip[-1] * clip.num_frames,
    ]


def _assemble(
    copies: vs.VideoNode,
    tweens: vs.VideoNode,
    context: list[vs.VideoNode],
    is_copy: Callable[[int, list[vs.VideoFrame]], bool],
    nearest: Callable[[int, list[vs.VideoFrame]], vs.VideoFrame],
    stamp: Callable[[int, list[vs.VideoFrame]], dict[str, object]],
    coding: Coding,
) -> vs.VideoNode:
    """The output clip: frame ``n`` is ``copies[n]`` (a source frame, untouched) or ``tweens[n]`` (FLAVR's).

    ``is_copy(n, f)`` chooses per frame, lazily: an interpolated frame is made only when it is
    shown.  ``f`` holds frame ``n`` of each ``context`` clip.  An interpolated frame takes every
    property of ``nearest(n, f)``, its nearest source frame; ``stamp(n, f)`` gives the properties
    vsflavr sets on every frame.
    """

    def frames_of(f: vs.VideoFrame | list[vs.VideoFrame]) -> list[vs.VideoFrame]:
        return f if isinstance(f, list) else [f]

    def pick(n: int, f: vs.VideoFrame | list[vs.VideoFrame]) -> vs.VideoNode:
        return copies if is_copy(n, frames_of(f)) else tweens

    picked = copies.std.FrameEval(pick, prop_src=context)

    def finish(n: int, f: list[vs.VideoFrame]) -> vs.VideoFrame:
        shown, frames = f[0], f[1:]
        out = shown.copy()
        props = out.props
        if not is_copy(n, frames):
            near = nearest(n, frames)
            coding.check_frame(near.props, n)
            props.clear()
            props.update(near.props)
        props.update(stamp(n, frames))
        return out

    return picked.std.ModifyFrame([picked, *context], finish)


def interpolate(
    clip: vs.VideoNode,
    schedule: Schedule,
    backend: Runner,
    rate: Fraction,
    use_cuts: bool,
    coding: Coding,
) -> vs.VideoNode:
    """Build the output clip at ``rate``; ``use_cuts`` honours the clip's scene-change properties.

    ``clip`` is in its own format (``coding``, see :mod:`vsflavr.formats`): FLAVR reads it converted
    to float RGB, and only the frames it makes are converted back.
    """
    last = clip.num_frames - 1
    length = schedule.output_frames

    def source_of(n: int) -> int:
        return schedule.position(n).source

    # Source frames i-1, i, i+1 of each output frame's gap; a copy shows frame i.
    context = [_remap(c, length, rate, source_of) for c in _shifted(clip)[:3]]
    network = [_remap(c, length, rate, source_of) for c in _shifted(to_network(clip, coding))]
    cache: OnceCache[int, torch.Tensor] = _gap_cache()
    duration = rate.denominator, rate.numerator

    def cut_after(frames: dict[int, vs.VideoFrame], i: int) -> bool:
        return use_cuts and is_cut(frames[i], frames[i + 1])

    def frames_at(n: int, f: list[vs.VideoFrame]) -> dict[int, vs.VideoFrame]:
        i = schedule.position(n).source
        return {max(i - 1, 0): f[0], i: f[1], min(i + 1, last): f[2]}

    def is_copy(n: int, f: list[vs.VideoFrame]) -> bool:
        pos = schedule.position(n)
        return pos.is_source or cut_after(frames_at(n, f), pos.source)

    def nearest(n: int, f: list[vs.VideoFrame]) -> vs.VideoFrame:
        return f[1] if 2 * schedule.position(n).phase < schedule.grid else f[2]

    def run_gap(gap: int, frames: dict[int, vs.VideoFrame]) -> torch.Tensor:
        indices = window(gap, clip.num_frames, lambda i: cut_after(frames, i))
        return _forward(backend, [frames[i] for i in indices])

    def make_tween(n: int, f: list[vs.VideoFrame]) -> vs.VideoFrame:
        pos = schedule.position(n)
        i = pos.source
        frames = {max(i - 1, 0): f[0], i: f[1], min(i + 1, last): f[2], min(i + 2, last): f[3]}
        result = cache.get(i, lambda: run_gap(i, frames))
        return write_tensor(result[pos.phase - 1], f[1])

    def stamp(n: int, f: list[vs.VideoFrame]) -> dict[str, object]:
        pos = schedule.position(n)
        i = pos.source
        frames = frames_at(n, f)
        copy = is_copy(n, f)
        # Cuts, moved to the output timeline: the first output frame of a new shot gets
        # _SceneChangePrev, the last one before it _SceneChangeNext.
        starts_shot = (
            pos.is_source and i > 0 and n > 0 and schedule.position(n - 1).source < i and cut_after(frames, i - 1)
        )
        ends_shot = n + 1 < length and schedule.position(n + 1).source > i and cut_after(frames, i)
        return {
            "FLAVRInterpolated": int(not copy),
            "FLAVRPhase": 0.0 if copy else pos.phase / schedule.grid,
            "_DurationNum": duration[0],
            "_DurationDen": duration[1],
            "_SceneChangePrev": int(starts_shot),
            "_SceneChangeNext": int(ends_shot),
        }

    made = from_network(network[1].std.ModifyFrame(network, make_tween), clip.format, coding)
    return _assemble(context[1], made, context, is_copy, nearest, stamp, coding)


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
    coding: Coding,
) -> vs.VideoNode:
    """``dedup=True``: the held drawings of each shot at even times (see :mod:`vsflavr.retime`), at ``rate``.

    Output frames are exact keys or FLAVR's phase of a window of four drawings; one forward pass
    serves every output frame between two drawings.  Properties: ``FLAVRDrawing`` (the source
    frame of the drawing shown, or of the earlier one of the pair), ``FLAVRHold`` (its hold in
    source frames), ``FLAVRPhase``, ``FLAVRInterpolated`` and the scene-change marks of :func:`interpolate`.
    ``clip`` is in its own format, as for :func:`interpolate`.
    """
    length = retime.output_frames
    timelines = {s.start: DrawingTimeline(s, grid=grid, max_hold=max_hold, anchor=anchor) for s in held.shots}
    duration = rate.denominator, rate.numerator

    def plan(n: int) -> Copy | Tween:
        return retime.frame(n, lambda i: timelines[held.shot(i).start])

    def nearest_of(n: int) -> int:
        item = plan(n)
        if isinstance(item, Copy):
            return item.source
        return item.window[1 + (2 * item.phase >= grid)]

    def member(source: vs.VideoNode, k: int) -> vs.VideoNode:
        def source_of(n: int) -> int:
            item = plan(n)
            return item.window[k] if isinstance(item, Tween) else item.source

        return _remap(source, length, rate, source_of)

    network = to_network(clip, coding)
    members = [member(network, k) for k in range(4)]
    shown = _remap(clip, length, rate, nearest_of)
    cache: OnceCache[tuple[int, ...], torch.Tensor] = _gap_cache()

    def make_tween(n: int, f: list[vs.VideoFrame]) -> vs.VideoFrame:
        item = plan(n)
        assert isinstance(item, Tween)  # only interpolated frames are asked for
        result = cache.get(item.window, lambda: _forward(backend, f))
        return write_tensor(result[item.phase - 1], f[1])

    def is_copy(n: int, f: list[vs.VideoFrame]) -> bool:
        return isinstance(plan(n), Copy)

    def stamp(n: int, f: list[vs.VideoFrame]) -> dict[str, object]:
        item = plan(n)
        phase = 0 if isinstance(item, Copy) else item.phase
        shot = held.shot(retime.source(n))
        return {
            "FLAVRInterpolated": int(phase > 0),
            "FLAVRPhase": phase / grid,
            "FLAVRDrawing": item.drawing,
            "FLAVRHold": item.hold,
            "_DurationNum": duration[0],
            "_DurationDen": duration[1],
            "_SceneChangePrev": int(n > 0 and retime.source(n - 1) < shot.start),
            "_SceneChangeNext": int(n + 1 < length and retime.source(n + 1) >= shot.end),
        }

    made = from_network(members[1].std.ModifyFrame(members, make_tween), clip.format, coding)
    return _assemble(shown, made, [shown], is_copy, lambda n, f: f[0], stamp, coding)
