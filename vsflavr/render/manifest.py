"""The job's manifest: an append-only, fsynced JSON-lines file in the work directory.

The first line describes the job (script, arguments, cuts, encoder, chunk plan); each later
line records one finished chunk (its output frames, frame count, frame-hash digest, file
name and SHA-256, and the attempt that made it) or the spliced output file and its SHA-256.
Lines are only ever appended, each one flushed and fsynced before its chunk counts as done,
so a crash leaves at most a torn last line, which reading ignores.  ``--resume`` compares the
job line with the new job's and refuses any difference: two jobs' chunks are never mixed.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

__all__ = ["FIELDS", "ManifestError", "append", "create", "differences", "read"]

FIELDS = {
    "script_sha256": "the script's content",
    "script": "the script's path",
    "args": "the script's arguments (-a)",
    "source": "the source clip (output 1)",
    "cuts": "the scene cuts",
    "output": "the output clip (frames, rate, format)",
    "encoder": "the encoder command",
    "ext": "the chunk file extension",
    "chunks": "the chunk plan (chunk length)",
}
"""Job fields that must be equal to resume a job, with what they mean for the message."""


class ManifestError(ValueError):
    """The manifest cannot be used for this job."""


def create(path: Path, job: Mapping[str, Any]) -> None:
    """Start a new manifest with the job line; fails if one exists."""
    with open(path, "x") as f:
        _write(f, {"type": "job", **job})


def append(path: Path, record: Mapping[str, Any], kind: str = "chunk") -> None:
    """Append one line and fsync it: a finished chunk, or (``kind="output"``) the spliced file."""
    with open(path, "rb") as f:
        torn = f.seek(0, os.SEEK_END) > 0 and f.seek(-1, os.SEEK_END) >= 0 and f.read(1) != b"\n"
    with open(path, "a") as f:
        if torn:  # a crash cut the last line short: start on a fresh line
            f.write("\n")
        _write(f, {"type": kind, **record})


def _write(f: Any, line: Mapping[str, Any]) -> None:
    f.write(json.dumps(line, sort_keys=True) + "\n")
    f.flush()
    os.fsync(f.fileno())


def read(path: Path) -> tuple[dict[str, Any], dict[int, dict[str, Any]], dict[str, Any] | None]:
    """The job line, the last record of each finished chunk by chunk index, and the last spliced output's."""
    job: dict[str, Any] | None = None
    chunks: dict[int, dict[str, Any]] = {}
    output: dict[str, Any] | None = None
    for number, text in enumerate(path.read_text().splitlines(), 1):
        try:
            line = json.loads(text)
        except json.JSONDecodeError:
            continue  # a line torn by a crash: that chunk is simply not done
        if line.get("type") == "job" and job is None:
            job = line
        elif line.get("type") == "chunk" and job is not None:
            chunks[int(line["index"])] = line
        elif line.get("type") == "output" and job is not None:
            output = line
        else:
            raise ManifestError(f"{path}: line {number} is not a vsflavr render manifest line")
    if job is None:
        raise ManifestError(f"{path} has no job line; it is not a vsflavr render manifest")
    return job, chunks, output


def differences(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    """What differs between a manifest's job line and a new job, in the user's words."""
    return [meaning for key, meaning in FIELDS.items() if old.get(key) != new.get(key)]
