"""Splice chunk files in order into one Matroska file with mkvmerge, then count its frames.

mkvmerge appends the chunks' video tracks (``a + b + c``) without re-encoding, shifting each
chunk's timestamps to follow the previous one; the test suite checks that the decoded frames
and their timestamps equal one whole run, for FFV1 and for lossless x264 chunks.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Sequence
from fractions import Fraction
from pathlib import Path

from .tracks import Tracks

__all__ = ["CONTAINERS", "SpliceError", "count_frames", "splice"]

CONTAINERS = (".mkv", ".mka", ".webm", ".mp4", ".mov")
"""Chunk extensions mkvmerge reads with their timestamps; anything else is taken as a raw stream
(``.264``, ``.hevc``, ``.ivf``) and given the output's frame duration."""


class SpliceError(RuntimeError):
    """mkvmerge or ffprobe failed, or the spliced file has the wrong number of frames."""


def _tool(name: str, package: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise SpliceError(f"{name} is not installed; install {package} (e.g. apt-get install {package})")
    return path


def count_frames(path: Path) -> int:
    """Video frames (packets) in a media file, by ffprobe, without decoding."""
    result = subprocess.run(
        [
            _tool("ffprobe", "ffmpeg"),
            "-v",
            "error",
            "-count_packets",
            "-select_streams",
            "v:0",
            "-show_entries",
            "stream=nb_read_packets",
            "-of",
            "csv=p=0",
            str(path),
        ],
        capture_output=True,
        encoding="utf-8",
        errors="replace",
        check=False,
    )
    try:
        return int(result.stdout.strip())
    except ValueError:
        raise SpliceError(f"ffprobe cannot count the frames of {path}: {result.stderr.strip()}") from None


def splice(
    chunks: Sequence[Path], out: Path, fps: Fraction, frames: int, options: Path, tracks: Tracks | None = None
) -> None:
    """Join ``chunks`` in order into ``out``; it appears only when whole and holding ``frames`` frames.

    ``options`` is where mkvmerge's option file goes (a JSON list, so any number of chunks fits).
    With ``tracks``, the same mkvmerge run adds every non-video track, attachment, chapter and global
    tag of that file after the video, in its order (the chunks' own chapters, attachments and tags are
    left out so that only the film's remain).
    """
    mkvmerge = _tool("mkvmerge", "mkvtoolnix")
    part = out.with_name(f".{out.name}.part")
    args = ["--output", str(part)]
    if tracks is not None:
        args += ["--track-order", tracks.track_order(0, len(chunks))]
    for i, chunk in enumerate(chunks):
        if tracks is not None:
            args += ["--no-chapters", "--no-attachments", "--no-global-tags", *(tracks.video_args() if i == 0 else [])]
        if chunk.suffix.lower() not in CONTAINERS:
            args += ["--default-duration", f"0:{fps.numerator}/{fps.denominator}fps"]
        args += [str(chunk)] if i == 0 else ["+", str(chunk)]
    if tracks is not None:
        args += tracks.mkvmerge_args()
    options.write_text(json.dumps(args))
    try:
        result = subprocess.run(
            [mkvmerge, "--quiet", f"@{options}"], capture_output=True, encoding="utf-8", errors="replace", check=False
        )
        if result.returncode not in (0, 1):  # 1: warnings only
            lines = (result.stdout + result.stderr).strip().splitlines()
            raise SpliceError(f"mkvmerge exited with status {result.returncode}: {lines[-1] if lines else ''}")
        found = count_frames(part)
        if found != frames:
            raise SpliceError(f"the spliced file has {found} frames, the script {frames}")
        os.replace(part, out)
    finally:
        part.unlink(missing_ok=True)
