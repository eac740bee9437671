"""When each frame of a variable-frame-rate clip starts, from its ``_DurationNum/_DurationDen`` properties.

The pure schedule (:mod:`vsflavr.schedule`) takes these times; this module only reads them.
"""

from __future__ import annotations

from fractions import Fraction

import vapoursynth as vs

__all__ = ["frame_times"]


def frame_times(clip: vs.VideoNode) -> tuple[Fraction, ...]:
    """Seconds at which every frame starts (the first at 0), then when the last one ends: cumulative durations.

    Reads every frame once (a pass over the clip, in VapourSynth's parallel prefetch).  A frame
    without a positive duration is a one-line vs.Error.
    """
    times = [Fraction(0)]
    for n, frame in enumerate(clip.frames(close=True)):
        num, den = frame.props.get("_DurationNum"), frame.props.get("_DurationDen")
        if not (isinstance(num, int) and isinstance(den, int) and num > 0 and den > 0):
            raise vs.Error(
                f"flavr: the clip has a variable frame rate but source frame {n} has no positive _DurationNum/"
                f"_DurationDen ({num!r}/{den!r}), so its time is unknown; set durations on every frame "
                "(core.std.SetFrameProps) or give the clip a constant rate with core.std.AssumeFPS"
            )
        times.append(times[-1] + Fraction(num, den))
    return tuple(times)
