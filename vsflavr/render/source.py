"""What the script renders and where its shots start, found once in the driver without running FLAVR.

The contract with the script (see docs/long-encodes.md, "The script"): output 0 is what is rendered,
as ``vspipe`` renders it; output 1, when set, is the clip given to ``vsflavr.flavr()`` (the
source, before interpolation).  Its scene cuts are found with vsflavr's own detector (plus any
``_SceneChangeNext``/``_SceneChangePrev`` already on it), which reads only source frames, and
mapped to output frames by the rate ratio of the two outputs.  The cuts are cached in the work
directory under a key of the script, its arguments, the source's shape and a hash of three of
its frames, so a resumed job never scans the film again.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import math
import os
import runpy
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import vapoursynth as vs

from ..scenes import is_cut, mark_scene_changes

__all__ = ["ScriptError", "ScriptOutputs", "clip_info", "find_cuts", "load_script", "main", "probe", "rate"]


class ScriptError(ValueError):
    """The script failed or its outputs cannot be rendered."""


@dataclass(frozen=True)
class ScriptOutputs:
    """Output 0 (rendered) and output 1 (the source given to flavr(), or None) of a script."""

    output: vs.VideoNode
    source: vs.VideoNode | None


def clip_info(clip: vs.VideoNode) -> dict[str, Any]:
    """Frames, rate, size and format of a clip, as JSON-able values."""
    return {
        "frames": clip.num_frames,
        "fps": f"{clip.fps_num}/{clip.fps_den}",
        "size": f"{clip.width}x{clip.height}",
        "format": clip.format.name if clip.format else None,
    }


@contextlib.contextmanager
def load_script(script: Path, args: Mapping[str, str]) -> Iterator[ScriptOutputs]:
    """Evaluate a .vpy as vspipe does (from its own folder, ``-a`` values as string globals); outputs cleared after."""
    cwd = os.getcwd()
    vs.clear_outputs()
    try:
        os.chdir(script.parent)
        try:
            runpy.run_path(str(script), init_globals=dict(args), run_name="__vapoursynth__")
        except BaseException as exc:  # the script's own error, whatever it is
            if isinstance(exc, KeyboardInterrupt):
                raise
            message = str(exc).strip().splitlines()
            raise ScriptError(f"the script failed: {type(exc).__name__}: {message[-1] if message else ''}") from None
        finally:
            os.chdir(cwd)
        outputs = vs.get_outputs()
        output, source = (outputs.get(i) for i in (0, 1))
        if not isinstance(output, vs.VideoOutputTuple):
            raise ScriptError("the script sets no video output 0 (clip.set_output())")
        clip = output.clip
        if clip.format is None or clip.width == 0 or clip.fps_num == 0:
            raise ScriptError("output 0 must have one format, one size and a constant frame rate (y4m needs them)")
        yield ScriptOutputs(clip, source.clip if isinstance(source, vs.VideoOutputTuple) else None)
    finally:
        vs.clear_outputs()


def _fingerprint(source: vs.VideoNode) -> str:
    """A hash of the source's first, middle and last frames."""
    digest = hashlib.sha256()
    for n in sorted({0, source.num_frames // 2, source.num_frames - 1}):
        frame = source.get_frame(n)
        for plane in range(frame.format.num_planes):
            digest.update(bytes(frame[plane]))
    return digest.hexdigest()


def find_cuts(source: vs.VideoNode, threshold: float | None, cache: Path, key: Mapping[str, Any]) -> list[int]:
    """Source frames that start a new shot, from the cache file when its key matches, else by scanning the source.

    Args:
        source: the clip flavr() interpolates (output 1).
        threshold: vsflavr's detector threshold (as ``flavr(sc_threshold=)``); None: only marks already on the clip.
        cache: the JSON file that keeps the result.
        key: what else the cuts depend on (script, arguments); the source's shape and a hash of three
            of its frames are added.
    """
    full_key = {**key, "threshold": threshold, "source": clip_info(source), "frames_sha256": _fingerprint(source)}
    full_key = json.loads(json.dumps(full_key))
    if cache.exists():
        with contextlib.suppress(ValueError, KeyError):
            saved = json.loads(cache.read_text())
            if saved["key"] == full_key:
                return [int(c) for c in saved["cuts_into"]]
    marked = source if threshold is None else mark_scene_changes(source, threshold)
    cuts, before = [], None
    for n, frame in enumerate(marked.frames()):
        if before is not None and is_cut(before, frame):
            cuts.append(n)
        before = frame
    part = cache.with_name(cache.name + ".part")
    part.write_text(json.dumps({"key": full_key, "cuts_into": cuts}, indent=1))
    os.replace(part, cache)
    return cuts


def rate(clip: vs.VideoNode) -> Fraction:
    """The clip's frame rate as a fraction."""
    return Fraction(clip.fps_num, clip.fps_den)


def probe(
    script: Path, args: Mapping[str, str], threshold: float | None, cache: Path, scan: bool = True
) -> dict[str, Any]:
    """Output 0's and output 1's shapes and the source frames that start a shot (none without output 1, or
    with ``scan=False``, when the cuts come from a scene file).

    Refuses an output 1 that output 0 is not ``flavr()`` of: ``ceil(N * ratio)`` frames for the N of
    output 1 and the ratio of their rates.
    """
    with load_script(script, args) as outputs:
        output, source = outputs.output, outputs.source
        info: dict[str, Any] = {"output": clip_info(output), "source": None, "cuts_into": []}
        if source is not None:
            ratio = rate(output) / rate(source)
            if output.num_frames != math.ceil(source.num_frames * ratio):
                raise ScriptError(
                    f"output 0 ({output.num_frames} frames) is not output 1 ({source.num_frames} frames) at {ratio}x "
                    "its rate; set output 1 to the clip you give to vsflavr.flavr()"
                )
            key = {"script_sha256": hashlib.sha256(script.read_bytes()).hexdigest(), "args": dict(args)}
            cuts = find_cuts(source, threshold, cache, key) if scan else []
            info |= {"source": clip_info(source), "cuts_into": cuts}
        return info


def main(argv: list[str] | None = None) -> int:
    """``python -m vsflavr.render.source SCRIPT OUT.json --cache CUTS.json [--threshold T] [--no-scan] [-a k=v]...``.

    Runs the probe in a process of its own, so that the driver of a render never keeps the model or a
    GPU context; the last line on stderr is the reason when it fails.
    """
    parser = argparse.ArgumentParser(prog="python -m vsflavr.render.source")
    parser.add_argument("script", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--cache", type=Path, required=True)
    parser.add_argument("--threshold", type=float)
    parser.add_argument("-a", "--arg", action="append", default=[])
    parser.add_argument("--no-scan", action="store_true", help="do not look for cuts (they come from a scene file)")
    opts = parser.parse_args(argv)
    try:
        args = dict(a.split("=", 1) for a in opts.arg)
        info = probe(opts.script, args, opts.threshold, opts.cache, scan=not opts.no_scan)
    except ScriptError as exc:
        print(exc, file=sys.stderr)
        return 1
    opts.out.write_text(json.dumps(info))
    return 0


if __name__ == "__main__":
    sys.exit(main())
