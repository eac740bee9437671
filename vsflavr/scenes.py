"""Scene-cut detection and the ``_SceneChangeNext`` / ``_SceneChangePrev`` frame properties.

A cut lies between source frames ``i`` and ``i + 1`` when frame ``i`` has
``_SceneChangeNext`` set or frame ``i + 1`` has ``_SceneChangePrev`` set, whoever set
them: the built-in detector below, ``misc.SCDetect``, ``scd.Detect`` or the user.
"""

from __future__ import annotations

import vapoursynth as vs

from .formats import Coding, coding_of, luma

__all__ = ["DEFAULT_THRESHOLD", "is_cut", "mark_scene_changes"]

DEFAULT_THRESHOLD = 0.12
"""Mean absolute luma difference (0..1) between consecutive frames, measured on a 64x36
thumbnail, above which the built-in detector marks a cut.  On real footage hard cuts
score about 0.18-0.33 and fast camera motion about 0.07-0.08."""

_THUMB = (64, 36)
_DIFF_PROP = "FLAVRSceneDiff"


def is_cut(before: vs.VideoFrame, after: vs.VideoFrame) -> bool:
    """Whether a scene cut lies between two consecutive source frames, by their properties.

    A property is a cut when it is a nonzero number; one that is not a number (a string, an
    array) is a vs.Error, as a guess either way could interpolate across a cut.
    """
    return _flag(before, "_SceneChangeNext") or _flag(after, "_SceneChangePrev")


def _flag(frame: vs.VideoFrame, name: str) -> bool:
    value = frame.props.get(name, 0)
    if isinstance(value, int | float):
        return bool(value)
    raise vs.Error(
        f"flavr: frame property {name} must be a number (1: a cut, 0: none), got {value!r} "
        f"({type(value).__name__}); fix or delete it, e.g. core.std.RemoveFrameProps(clip, '{name}')"
    )


def mark_scene_changes(
    clip: vs.VideoNode, threshold: float = DEFAULT_THRESHOLD, coding: Coding | None = None
) -> vs.VideoNode:
    """Set ``_SceneChangeNext = 1`` on every frame followed by a cut; other properties and pixels are untouched.

    Properties already set to 1 on the clip are kept, so an external detector's cuts
    still count.  ``threshold`` is in units of mean absolute luma difference (0..1), read
    from the clip's own luma (:func:`vsflavr.formats.luma`; ``coding``: the clip's, read from it if not given).
    """
    core = vs.core
    thumb = luma(clip, coding or coding_of(clip), *_THUMB)
    following = thumb[1:] + thumb[-1] if thumb.num_frames > 1 else thumb
    stats = core.std.PlaneStats(thumb, following, prop="FLAVRScene")

    def mark(n: int, f: list[vs.VideoFrame]) -> vs.VideoFrame:
        frame, diff = f
        if not diff.props[_DIFF_PROP] > threshold:  # NaN (a NaN pixel) is no evidence of a cut
            return frame
        out = frame.copy()
        out.props["_SceneChangeNext"] = 1
        return out

    return core.std.ModifyFrame(clip, [clip, stats], mark)
