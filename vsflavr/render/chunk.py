"""Render one chunk: ``vspipe -s A -e B-1 SCRIPT - | encoder``, counted and hashed as the frames stream past.

This is what a Ray task runs (see :mod:`vsflavr.render.cluster`), but it is a plain function:
it needs neither Ray nor VapourSynth in the calling process.  The encoder writes a temporary
``<name>.try-K.part<ext>`` that is renamed to ``<name><ext>`` only when both programs exited
cleanly and the frame count is right, so a chunk file is always whole.  Both children run in
their own process group with ``PR_SET_PDEATHSIG = SIGKILL``: when the worker dies, even by
SIGKILL, the kernel kills them too, and no orphan keeps writing.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from .plan import Chunk
from .y4m import Y4MError, tee_frames

__all__ = [
    "ChunkError",
    "ChunkJob",
    "ChunkResult",
    "encoder_command",
    "file_sha256",
    "frame_digest",
    "run_chunk",
    "vspipe_path",
]

_PR_SET_PDEATHSIG = 1
OUTPUT = "{output}"


class ChunkError(RuntimeError):
    """A chunk's vspipe or encoder failed, or gave the wrong number of frames (worth another try)."""


@dataclass(frozen=True)
class ChunkJob:
    """Everything a worker needs to render one chunk.

    Args:
        chunk: the output frames to render.
        script: absolute path of the .vpy script (the same path on every host).
        args: ``key=value`` strings passed to the script with ``vspipe -a``.
        encoder: the encoder's argv; ``{output}`` in an argument becomes the chunk's file.
        directory: where chunk files go (shared storage across hosts).
        ext: the chunk files' extension, e.g. ``.mkv``.
    """

    chunk: Chunk
    script: str
    args: tuple[str, ...]
    encoder: tuple[str, ...]
    directory: str
    ext: str


@dataclass(frozen=True)
class ChunkResult:
    """A finished chunk: its file, frame count, hashes and the attempt that made it."""

    index: int
    file: str
    frames: int
    frame_digest: str
    file_sha256: str
    attempt: int
    seconds: float
    node: str = ""
    """The Ray node that rendered it (its node ID), when it ran as a Ray task."""


def vspipe_path() -> str:
    """vspipe next to this Python (a virtual environment's), else the one on PATH."""
    local = Path(sys.executable).parent / "vspipe"
    return str(local) if local.exists() else shutil.which("vspipe") or "vspipe"


def encoder_command(template: Sequence[str], output: str) -> list[str]:
    """The encoder's argv with ``{output}`` replaced by the chunk file's path."""
    return [arg.replace(OUTPUT, output) for arg in template]


def file_sha256(path: str | os.PathLike[str]) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def frame_digest(hashes: Sequence[str]) -> str:
    """One digest of a chunk's per-frame MD5s, in order."""
    return hashlib.sha256("\n".join(hashes).encode()).hexdigest()


def _die_with_parent() -> None:
    """In the child before exec: be killed when the worker dies."""
    parent = os.getppid()
    ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:  # the worker died before prctl took effect
        os._exit(1)


def _claim_attempt(directory: Path, name: str) -> tuple[int, Path]:
    """The next attempt number for a chunk, claimed by creating its log file (atomic on shared storage too)."""
    attempt = 1
    while True:
        log = directory / f"{name}.try-{attempt}.log"
        try:
            os.close(os.open(log, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644))
            return attempt, log
        except FileExistsError:
            attempt += 1


def _throttled(report: Callable[[int], None] | None, every: float = 1.0) -> Callable[[int], None] | None:
    """``report``, called at most once per ``every`` seconds."""
    if report is None:
        return None
    last = time.monotonic()

    def call(frames: int) -> None:
        nonlocal last
        if time.monotonic() - last >= every:
            last = time.monotonic()
            report(frames)

    return call


def _last_line(path: Path) -> str:
    lines = [line.strip() for line in path.read_text(errors="replace").splitlines() if line.strip()]
    return lines[-1] if lines else "(no message)"


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    proc.wait()


def run_chunk(job: ChunkJob, report: Callable[[int], None] | None = None) -> ChunkResult:
    """Render ``job.chunk`` to ``<directory>/<name><ext>`` and its frame MD5s to ``<name>.md5``.

    ``report(frames)``, when given, hears how many frames have passed, about once a second.

    Raises :class:`ChunkError` with the failing program's last message line; the temporary
    file is removed and both children are killed whatever happens (exceptions, cancellation).
    """
    started = time.monotonic()
    chunk, directory = job.chunk, Path(job.directory)
    attempt, log = _claim_attempt(directory, chunk.name)
    for stale in directory.glob(f"{chunk.name}.try-*.part*"):  # left by a killed attempt
        stale.unlink(missing_ok=True)
    part = directory / f"{chunk.name}.try-{attempt}.part{job.ext}"
    final = directory / f"{chunk.name}{job.ext}"
    encoder_log, vspipe_log = log.with_suffix(".encoder.log"), log.with_suffix(".vspipe.log")
    vspipe = [vspipe_path(), "-c", "y4m", "-s", str(chunk.start), "-e", str(chunk.end - 1)]
    for arg in job.args:
        vspipe += ["-a", arg]
    vspipe += [job.script, "-"]
    encoder = encoder_command(job.encoder, str(part))
    procs: list[subprocess.Popen[bytes]] = []
    done = False
    try:
        with open(encoder_log, "wb") as enc_err, open(vspipe_log, "wb") as vs_err:
            spawn = {"preexec_fn": _die_with_parent, "start_new_session": True}
            try:
                procs.append(subprocess.Popen(encoder, stdin=subprocess.PIPE, stdout=enc_err, stderr=enc_err, **spawn))
            except OSError as exc:
                raise ChunkError(f"cannot start the encoder {encoder[0]!r}: {exc.strerror}") from None
            procs.append(subprocess.Popen(vspipe, stdout=subprocess.PIPE, stderr=vs_err, **spawn))
            enc, vsp = procs
            with open(log, "a") as f:
                f.write(f"worker {os.getpid()} vspipe {vsp.pid} encoder {enc.pid}\n")
                f.write(f"{shlex.join(vspipe)}\n{shlex.join(encoder)}\n")
            assert enc.stdin is not None and vsp.stdout is not None
            stream_error = None
            try:
                hashes = tee_frames(vsp.stdout, enc.stdin, _throttled(report))
            except (Y4MError, OSError) as exc:  # OSError: the encoder stopped reading
                hashes, stream_error = [], exc
            try:
                enc.stdin.close()
            except OSError:
                pass
            if stream_error is not None:
                _stop(vsp)
            vs_status, enc_status = vsp.wait(), enc.wait()
        encoder_first = isinstance(stream_error, OSError)  # else the encoder may only have lacked input
        if vs_status != 0 and not encoder_first:
            raise ChunkError(f"vspipe exited with status {vs_status}: {_last_line(vspipe_log)}")
        if enc_status != 0:
            raise ChunkError(f"the encoder exited with status {enc_status}: {_last_line(encoder_log)}")
        if stream_error is not None:
            raise ChunkError(f"bad y4m from vspipe: {stream_error}")
        if len(hashes) != chunk.frames:
            raise ChunkError(f"vspipe gave {len(hashes)} frames, expected {chunk.frames}")
        if not part.exists():
            raise ChunkError(f"the encoder wrote no {part.name}: is {OUTPUT} its output file?")
        with open(part, "rb") as f:
            os.fsync(f.fileno())
        md5 = directory / f"{chunk.name}.md5"
        md5_part = directory / f"{chunk.name}.try-{attempt}.part.md5"
        md5_part.write_text("".join(f"{h}\n" for h in hashes))
        os.replace(md5_part, md5)
        os.replace(part, final)
        _fsync_dir(directory)
        done = True
        return ChunkResult(
            index=chunk.index,
            file=final.name,
            frames=len(hashes),
            frame_digest=frame_digest(hashes),
            file_sha256=file_sha256(final),
            attempt=attempt,
            seconds=time.monotonic() - started,
        )
    finally:
        for proc in procs:
            _stop(proc)
        if not done:
            for leftover in directory.glob(f"{chunk.name}.try-{attempt}.part*"):
                leftover.unlink(missing_ok=True)


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
