"""Scene lists shared with other tools: Av1an's ``scenes.json`` (every version) and plain lists of cut frames.

Av1an (rust-av/Av1an) has written three layouts of ``scenes.json``:

- 0.2.0 - 0.3.1 (``av1an-core/src/split.rs``): ``{"scenes": [12, 80, ...], "frames": N}``, the frames
  where a new scene starts (its split locations, frame 0 left out);
- 0.4.0 - 0.4.4 (``split.rs``): ``{"scenes": [{"start_frame": a, "end_frame": b, "zone_overrides": ...}],
  "frames": N}``, ``end_frame`` exclusive, the scenes after Av1an's extra splits;
- 0.5 and later (``av1an-core/src/scenes/mod.rs``, ``ScenesData``): ``{"frames": N, "scenes": [...],
  "split_scenes": [...]}``, ``scenes`` before the extra splits, ``split_scenes`` after.

Reading takes ``scenes`` (the shots; the extra splits in a 0.4 file are taken as cuts too, which only
adds chunk boundaries), else ``split_scenes``.  Writing uses the 0.5 layout with both lists equal and
``zone_overrides`` null; 0.4 reads it too (its parser ignores ``split_scenes``).  A plain list is
JSON (``[12, 80]``) or text: frame numbers separated by spaces, commas or new lines, ``#`` comments.

No VapourSynth, no Ray: integers only.
"""

from __future__ import annotations

import itertools
import json
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = ["SceneFileError", "read_cuts", "write_av1an"]


class SceneFileError(ValueError):
    """The file is not a scene list this module reads, or does not fit the clip."""


def _starts(entries: list[Any], path: Path) -> list[int]:
    starts = []
    for entry in entries:
        if isinstance(entry, dict) and isinstance(entry.get("start_frame"), int):
            starts.append(entry["start_frame"])
        elif isinstance(entry, int) and not isinstance(entry, bool):
            starts.append(entry)
        else:
            raise SceneFileError(f"{path}: a scene {entry!r} is neither a frame number nor an Av1an scene")
    return starts


def read_cuts(path: Path) -> tuple[int | None, list[int]]:
    """The clip length the file was made for (None for a plain list) and the frames that start a new shot.

    The frames are sorted, without duplicates and without frame 0 (which always starts a shot).
    """
    try:
        text = path.read_text()
    except OSError as exc:
        raise SceneFileError(f"cannot read the scene file {path}: {exc.strerror}") from None
    frames: int | None = None
    try:
        data: Any = json.loads(text)
    except json.JSONDecodeError:
        data = None
        words = [w for w in re.split(r"[\s,]+", re.sub(r"#.*", "", text)) if w]
        if not all(w.isdigit() for w in words):
            bad = next(w for w in words if not w.isdigit())
            raise SceneFileError(
                f"{path} is neither Av1an's scenes.json nor a list of cut frames (found {bad!r})"
            ) from None
        starts = [int(w) for w in words]
    if isinstance(data, dict):
        frames = data.get("frames")
        scenes = data.get("scenes") if data.get("scenes") is not None else data.get("split_scenes")
        if not isinstance(frames, int) or not isinstance(scenes, list):
            raise SceneFileError(f"{path}: an Av1an scenes file needs 'frames' and 'scenes' (or 'split_scenes')")
        starts = _starts(scenes, path)
    elif isinstance(data, list):
        starts = _starts(data, path)
    elif data is not None:
        raise SceneFileError(f"{path} is neither Av1an's scenes.json nor a list of cut frames")
    if any(s < 0 for s in starts) or (frames is not None and any(s >= frames for s in starts)):
        raise SceneFileError(f"{path}: a cut frame is outside the clip's {frames or 'frame'} range")
    return frames, sorted({s for s in starts if s > 0})


def write_av1an(path: Path, frames: int, starts: Sequence[int]) -> None:
    """Write Av1an's ``scenes.json`` (0.5 layout) for a clip of ``frames`` frames whose shots start at ``starts``."""
    edges = sorted({0, frames, *(s for s in starts if 0 < s < frames)})
    scenes = [{"start_frame": a, "end_frame": b, "zone_overrides": None} for a, b in itertools.pairwise(edges)]
    part = path.with_name(f".{path.name}.part")
    part.write_text(json.dumps({"frames": frames, "scenes": scenes, "split_scenes": scenes}, indent=2))
    os.replace(part, path)
