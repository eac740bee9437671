"""``--verify``: decode OUT and compare every frame with the hashes its chunk recorded while it was rendered.

While a chunk renders, the MD5 of each y4m frame is kept in ``chunk-NNNNN.md5`` and a digest of those
hashes, with the chunk file's SHA-256, in its manifest line.  Verifying checks, in order: that every
chunk's hash file still matches its manifest line; that every chunk file is the one rendered (when its
SHA-256 changed, the chunk is decoded and the first differing frame named); and that OUT's decoded
frames, one by one, equal the chunks' hashes in order.  With a lossless chunk encoder every frame must
be equal; a lossy one (``--crf``) never passes, since its decoded frames are not the frames it was fed.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from .chunk import file_sha256, frame_digest
from .plan import Chunk

__all__ = ["VerifyError", "decoded_hashes", "verify"]


class VerifyError(RuntimeError):
    """A file cannot be decoded, or ffmpeg is missing."""


def decoded_hashes(path: Path) -> list[str]:
    """The MD5 of every decoded frame of the first video track (``ffmpeg -f framemd5``)."""
    ffmpeg = shutil.which("ffmpeg")
    if ffmpeg is None:
        raise VerifyError("ffmpeg is not installed; install ffmpeg (e.g. apt-get install ffmpeg)")
    result = subprocess.run(
        [ffmpeg, "-v", "error", "-i", str(path), "-map", "0:v:0", "-f", "framemd5", "-"],
        capture_output=True,
        encoding="utf-8",
        errors="replace",
        check=False,
    )
    if result.returncode != 0:
        lines = result.stderr.strip().splitlines()
        raise VerifyError(f"ffmpeg cannot decode {path}: {lines[-1] if lines else result.returncode}")
    return [line.rsplit(",", 1)[1].strip() for line in result.stdout.splitlines() if line and line[0] != "#"]


def _first_difference(found: Sequence[str], expected: Sequence[str]) -> int | None:
    for n, (a, b) in enumerate(zip(found, expected, strict=False)):
        if a != b:
            return n
    return None if len(found) == len(expected) else min(len(found), len(expected))


def _describe(found: Sequence[str], expected: Sequence[str], n: int) -> str:
    if n >= len(found):
        return f"decodes to {len(found)} frames instead of {len(expected)}"
    differing = sum(a != b for a, b in zip(found, expected, strict=False))
    count = f"{len(found)} frames instead of {len(expected)}, " if len(found) != len(expected) else ""
    return f"decodes to {count}{differing} differing frame{'s' if differing != 1 else ''}"


def _chunk_of(plan: Sequence[Chunk], n: int) -> Chunk:
    return next(c for c in plan if c.start <= n < c.end)


def verify(out: Path, plan: Sequence[Chunk], records: Mapping[int, Mapping[str, Any]], chunks_dir: Path) -> list[str]:
    """What is wrong with a finished job, one line per problem (empty: every frame of OUT is as rendered)."""
    problems: list[str] = []
    expected: list[str] = []
    for chunk in plan:
        where = f"chunk {chunk.index} (output frames {chunk.start}-{chunk.end - 1})"
        record, md5 = records.get(chunk.index), chunks_dir / f"{chunk.name}.md5"
        if record is None or not md5.is_file():
            problems.append(f"{where} has no finished record in the manifest: run again with --resume")
            expected += [""] * chunk.frames
            continue
        hashes = md5.read_text().split()
        if frame_digest(hashes) != record["frame_digest"] or len(hashes) != chunk.frames:
            problems.append(f"{where}: its frame hashes {md5.name} changed since it was rendered")
        expected += hashes
        path = chunks_dir / record["file"]
        if not path.is_file():
            problems.append(f"{where}: its file {path.name} is missing; --resume renders it again")
        elif file_sha256(path) != record["file_sha256"]:
            try:
                found = decoded_hashes(path)
            except VerifyError as exc:
                problems.append(f"{where}: its file {path.name} changed since it was rendered and {exc}")
                continue
            n = _first_difference(found, hashes)
            if n is None:
                problems.append(f"{where}: its file {path.name} changed since it was rendered (its frames still equal)")
            else:
                problems.append(
                    f"{where}: its file {path.name} changed since it was rendered and {_describe(found, hashes, n)}, "
                    f"the first at its frame {n} (output frame {chunk.start + n}); --resume renders it again"
                )
    found = decoded_hashes(out)
    n = _first_difference(found, expected)
    if n is not None:
        chunk = _chunk_of(plan, min(n, plan[-1].end - 1))
        problems.append(
            f"{out} {_describe(found, expected, n)}, the first at output frame {n} (chunk {chunk.index}, its frame "
            f"{n - chunk.start}): it is not what the chunks rendered; --resume splices it again"
        )
    return problems
