"""The other tracks of a film: what ``--tracks-from FILE`` copies into OUT next to the rendered video.

mkvmerge reads FILE (Matroska, MP4, M2TS, ...: any container it reads) and copies every track that
is not video (audio, subtitles), its attachments (fonts for ASS subtitles), chapters and global tags,
without re-encoding, in FILE's track order and with their names, languages and default/forced flags.
Before any chunk is rendered, FILE's duration is compared with the rendered video's: a script that
trims or drops frames would otherwise give a film whose sound runs off its pictures.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

__all__ = ["Tracks", "TracksError", "check_duration", "identify", "timestamp"]


class TracksError(ValueError):
    """FILE cannot give its tracks to OUT, said in one line."""


@dataclass(frozen=True)
class Tracks:
    """What FILE brings: its non-video track IDs (in order), its duration, and its first video track."""

    path: Path
    track_ids: tuple[int, ...]
    duration: Fraction
    """Seconds, as mkvmerge reports the container's duration."""
    video: dict[str, Any] | None
    """The properties of FILE's first video track (its language and name go to the rendered video)."""
    summary: str
    left_out: int = 0
    """Audio and subtitle streams ffprobe sees in FILE but mkvmerge cannot read (they are not copied)."""
    video_start: Fraction = Fraction(0)
    """Seconds: when FILE's video starts (its first timestamp); the rendered video starts at 0."""

    def mkvmerge_args(self) -> list[str]:
        """mkvmerge options and the file, to follow the video in the same command: FILE without its video.

        When FILE's video starts late (its first timestamp is not 0), every track and chapter is moved as much
        earlier, so that it stays in sync with the rendered video, which starts at 0 (what comes before is
        dropped; a chapter that would start before 0 starts at 0).
        """
        ms = round(self.video_start * 1000)
        sync = [arg for t in self.track_ids for arg in ("--sync", f"{t}:{-ms}")] if ms else []
        chapters = ["--chapter-sync", str(-ms)] if ms else []
        return [*sync, *chapters, "--no-video", str(self.path)]

    def video_args(self) -> list[str]:
        """Options for the rendered video track (ID 0 of the first chunk): FILE's video language and name."""
        if self.video is None:
            return []
        args = []
        if self.video.get("default_track") is not None:
            args += ["--default-track-flag", f"0:{int(self.video['default_track'])}"]
        if self.video.get("language") not in (None, "", "und"):
            args += ["--language", f"0:{self.video['language']}"]
        if self.video.get("track_name"):
            args += ["--track-name", f"0:{self.video['track_name']}"]
        return args

    def track_order(self, video_file: int, tracks_file: int) -> str:
        """``--track-order``: the rendered video, then FILE's tracks in FILE's order."""
        return ",".join([f"{video_file}:0", *(f"{tracks_file}:{t}" for t in self.track_ids)])


def timestamp(seconds: Fraction | float) -> str:
    """``HH:MM:SS.mmm``, as mkvmerge's ``--split parts:`` takes it."""
    ms = round(float(seconds) * 1000)
    return f"{ms // 3_600_000:02d}:{ms // 60_000 % 60:02d}:{ms // 1000 % 60:02d}.{ms % 1000:03d}"


def identify(path: Path) -> Tracks:
    """Read FILE's tracks, attachments, chapters and duration with ``mkvmerge -J``."""
    mkvmerge = shutil.which("mkvmerge")
    if mkvmerge is None:
        raise TracksError("mkvmerge is not installed; install mkvtoolnix (e.g. apt-get install mkvtoolnix)")
    if not path.is_file():
        what = "is a directory, not a video file" if path.is_dir() else "no such file"
        raise TracksError(f"--tracks-from {path}: {what}")
    result = subprocess.run(
        [mkvmerge, "-J", str(path)], capture_output=True, encoding="utf-8", errors="replace", check=False
    )
    try:
        info = json.loads(result.stdout)
    except json.JSONDecodeError:
        info = {}
    container = info.get("container", {})
    if not container.get("recognized") or not container.get("supported"):
        why = "; ".join(info.get("errors", [])) or result.stderr.strip() or "not a container mkvmerge reads"
        raise TracksError(f"--tracks-from {path}: mkvmerge cannot read it: {why}")
    tracks = info.get("tracks", [])
    others = tuple(t["id"] for t in tracks if t["type"] != "video")
    video = next((t.get("properties", {}) for t in tracks if t["type"] == "video"), None)
    duration_ns = container.get("properties", {}).get("duration")
    streams, duration = _ffprobe(path)
    if duration_ns is not None:
        duration = Fraction(int(duration_ns), 10**9)
    if duration is None:
        raise TracksError(f"--tracks-from {path}: neither mkvmerge nor ffprobe finds its duration")
    kinds = {"audio": 0, "subtitles": 0}
    for t in tracks:
        if t["type"] != "video":
            kinds[t["type"]] = kinds.get(t["type"], 0) + 1
    attachments = len(info.get("attachments", []))
    chapters = sum(c.get("num_entries", 0) for c in info.get("chapters", []))
    counts = [*kinds.items(), ("attachments", attachments), ("chapters", chapters)]
    summary = ", ".join(f"{n} {kind}" for kind, n in counts)
    left_out = max(0, streams - kinds["audio"] - kinds["subtitles"])
    start = Fraction(int((video or {}).get("minimum_timestamp") or 0), 10**9)
    return Tracks(path, others, duration, video, summary, left_out, start)


def _ffprobe(path: Path) -> tuple[int, Fraction | None]:
    """Audio and subtitle streams ffprobe finds in FILE, and its duration (None when ffprobe is missing or says none)."""
    ffprobe = shutil.which("ffprobe")
    if ffprobe is None:
        return 0, None
    entries = ["-show_entries", "stream=codec_type:format=duration", "-of", "json"]
    result = subprocess.run(
        [ffprobe, "-v", "error", *entries, str(path)],
        check=False,
        capture_output=True,
        encoding="utf-8",
        errors="replace",
    )
    try:
        info = json.loads(result.stdout)
    except json.JSONDecodeError:
        return 0, None
    streams = sum(s.get("codec_type") in ("audio", "subtitle") for s in info.get("streams", []))
    duration = info.get("format", {}).get("duration")
    return streams, Fraction(duration) if duration else None


def check_duration(tracks: Tracks, frames: int, fps: Fraction, source_fps: Fraction) -> None:
    """Refuse FILE when its duration and the rendered video's differ by more than one source frame."""
    video = frames / fps
    length = tracks.duration - tracks.video_start  # what is left once its tracks are moved to the video's start
    if abs(length - video) <= 1 / source_fps:
        return
    shorter = min(length, video)
    late = f" from its video's start at {float(tracks.video_start):.3f} s" if tracks.video_start else ""
    raise TracksError(
        f"--tracks-from {tracks.path} lasts {timestamp(length)} ({float(length):.3f} s{late}) but the "
        f"rendered video {timestamp(video)} ({float(video):.3f} s, {frames} frames at {fps}): a script that trims "
        f"the clip needs the same trim on the tracks, e.g. mkvmerge -o trimmed.mkv --no-video --split parts:"
        f"00:00:00.000-{timestamp(shorter)} {tracks.path} (the start and end the script keeps; for FLAC, which "
        "mkvmerge cannot split: ffmpeg -ss START -to END -i FILE -map 0 -vn -c copy trimmed.mkv), then "
        "--tracks-from trimmed.mkv; or add --any-duration to take FILE's tracks as they are"
    )
