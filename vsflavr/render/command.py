"""``python -m vsflavr render SCRIPT.vpy -o OUT.mkv``: the command that renders a script in cut-aligned chunks on Ray.

Prepare: evaluate the script once and find its source's cuts (:mod:`.source`, in a process of its
own, cached; or read from ``--scenes``, :mod:`.scenefile`), plan the chunks (:mod:`.plan`), check
``--tracks-from`` (:mod:`.tracks`), open or check the manifest (:mod:`.manifest`).  Run: one Ray task
per missing chunk (:mod:`.cluster`, :mod:`.chunk`).  Finish: splice the chunks in order with the
film's other tracks and check the frame count (:mod:`.splice`); ``--verify`` decodes OUT and compares
every frame with the chunks' hashes (:mod:`.verify`).
"""

from __future__ import annotations

import argparse
import fcntl
import json
import logging
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict
from fractions import Fraction
from pathlib import Path
from typing import Any

from tqdm import tqdm

from .. import __version__
from ..scenes import DEFAULT_THRESHOLD
from . import manifest
from .chunk import OUTPUT, ChunkJob, ChunkResult, file_sha256, frame_digest, vspipe_path
from .plan import Chunk, plan_chunks, shot_starts
from .scenefile import SceneFileError, read_cuts, write_av1an
from .splice import SpliceError, splice
from .tracks import Tracks, TracksError, check_duration, identify
from .verify import VerifyError, verify

__all__ = ["DEFAULT_ENCODER", "add_render", "render"]

logger = logging.getLogger("vsflavr")

DEFAULT_ENCODER = "ffmpeg -hide_banner -loglevel error -f yuv4mpegpipe -i - -c:v ffv1 -level 3 -g 1 {output}"
"""Lossless FFV1 (version 3, every frame a keyframe) in Matroska."""


class RenderError(RuntimeError):
    """Bad input or a failed job, said in one line."""


def _threshold(text: str) -> float | None:
    if text.lower() == "none":
        return None
    value = float(text)
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError("must be between 0 and 1, or 'none'")
    return value


def add_render(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = commands.add_parser(
        "render",
        help="render a script in scene-cut-aligned chunks on one or many GPUs (Ray), then splice them",
        description="Render output 0 of a VapourSynth script in chunks that start at the scene cuts of its source "
        "(output 1: the clip given to vsflavr.flavr()), each chunk a Ray task running 'vspipe -s A -e B | ENCODER', "
        "then splice the chunks in order into OUT with mkvmerge, with the film's audio, subtitles and chapters "
        "(--tracks-from). The frames equal one vspipe run of the whole script. Needs pip install "
        "'vsflavr[distributed]' and mkvmerge (mkvtoolnix), ffprobe (ffmpeg).",
    )
    p.add_argument("script", help="the .vpy script (output 0 is rendered; output 1 is the source, for its cuts)")
    p.add_argument("-o", "--output", required=True, help="the file to write (Matroska)")
    p.add_argument(
        "--encoder",
        default=DEFAULT_ENCODER,
        help="encoder command reading y4m on stdin; {output} is replaced by the chunk file "
        f"(default: lossless FFV1, {DEFAULT_ENCODER!r})",
    )
    p.add_argument(
        "--ext", default=".mkv", help="chunk file extension the encoder writes, e.g. .mkv or .264 (default .mkv)"
    )
    p.add_argument(
        "-a", "--arg", action="append", default=[], metavar="KEY=VALUE", help="passed to the script as vspipe -a"
    )
    p.add_argument(
        "--workers", type=int, help="chunks at a time (local default: one per GPU, else one per 4 CPU cores)"
    )
    p.add_argument("--address", help="join a running Ray cluster: 'auto' or HOST:PORT (default: start a local one)")
    p.add_argument(
        "--workdir",
        help="chunks, manifest, cuts and logs (default OUT.render/); with --address it must be storage shared by "
        "every host, at the same path",
    )
    p.add_argument("--resume", action="store_true", help="continue the job in --workdir: render only missing chunks")
    p.add_argument("--max-tries", type=int, default=3, help="tries per chunk before the job fails (default 3)")
    p.add_argument(
        "--chunk-seconds",
        type=float,
        default=60.0,
        help="target chunk length in seconds of output (default 60); chunks hold whole shots, longer shots are split",
    )
    p.add_argument(
        "--sc-threshold",
        type=_threshold,
        default=DEFAULT_THRESHOLD,
        help=f"cut detection on the source, as flavr()'s sc_threshold (default {DEFAULT_THRESHOLD}; 'none': only "
        "the source's own _SceneChange marks)",
    )
    p.add_argument(
        "--scenes",
        metavar="FILE",
        help="take the source's cuts from FILE instead of scanning: Av1an's scenes.json (any version) of the "
        "source, or a list of the source frames that start a shot (JSON or text)",
    )
    p.add_argument(
        "--write-scenes",
        metavar="FILE",
        help="write Av1an's scenes.json for OUT (output frames), so that Av1an encodes OUT on the same shots",
    )
    p.add_argument(
        "--tracks-from",
        metavar="FILE",
        help="copy every audio and subtitle track, attachment, chapter and global tag of FILE (the film) into "
        "OUT, unchanged and in order, next to the rendered video",
    )
    p.add_argument(
        "--any-duration",
        action="store_true",
        help="take --tracks-from FILE even when its duration and the rendered video's differ by more than a frame",
    )
    p.add_argument(
        "--verify",
        action="store_true",
        help="decode OUT and compare every frame with the hashes the chunks recorded; on a finished job "
        "(without --resume): only check it",
    )
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.set_defaults(run=render)


def render(args: argparse.Namespace) -> int:
    """Run the command; 0 when OUT is written and whole, 1 on failure, 2 when Ray is missing."""
    try:
        import ray  # noqa: F401 - only to say early what is missing
    except ImportError:
        logger.error(
            "vsflavr render: needs the Python package ray; install it with: pip install 'vsflavr[distributed]'"
        )
        return 2
    try:
        _render(args)
    except RenderError as exc:
        logger.error("vsflavr render: %s", exc)
        return 1
    return 0


def _options(args: argparse.Namespace) -> tuple[Path, Path, tuple[str, ...], tuple[str, ...], Path]:
    """Checked script, output, script arguments, encoder argv and work directory."""
    script = Path(args.script).resolve()
    if not script.is_file():
        raise RenderError(f"no script {args.script}")
    out = Path(args.output).resolve()
    if out.is_dir():
        raise RenderError(f"-o {args.output} is a directory; give a file name such as film.mkv")
    if any("=" not in a for a in args.arg):
        raise RenderError("-a takes KEY=VALUE, as vspipe's -a")
    try:
        encoder = tuple(shlex.split(args.encoder))
    except ValueError as exc:
        raise RenderError(f"--encoder cannot be parsed: {exc}") from None
    if not encoder or not any(OUTPUT in arg for arg in encoder):
        raise RenderError(
            f'--encoder must contain {OUTPUT} where the chunk file goes, e.g. "x264 --demuxer y4m --qp 0 -o {OUTPUT} -"'
        )
    if args.address is None and shutil.which(encoder[0]) is None:
        raise RenderError(f"the encoder {encoder[0]!r} is not installed (not found on PATH)")
    if not Path(vspipe_path()).exists() and shutil.which("vspipe") is None:
        raise RenderError("vspipe is not installed (VapourSynth's command line, pip install vapoursynth)")
    if args.max_tries < 1 or (args.workers is not None and args.workers < 1) or args.chunk_seconds <= 0:
        raise RenderError("--max-tries and --workers must be at least 1, --chunk-seconds above 0")
    if not args.ext.startswith(".") or "/" in args.ext:
        raise RenderError(f"--ext must be a file extension such as .mkv, got {args.ext!r}")
    workdir = Path(args.workdir).resolve() if args.workdir else out.with_name(out.name + ".render")
    return script, out, tuple(args.arg), encoder, workdir


@contextmanager
def _locked(workdir: Path, out: Path) -> Iterator[None]:
    """Create the work directory and hold its lock; check that OUT's folder takes files."""
    try:
        (workdir / "chunks").mkdir(parents=True, exist_ok=True)
        lock = open(workdir / "lock", "w")  # noqa: SIM115 - held for the whole job
    except OSError as exc:
        raise RenderError(f"cannot write to the work directory {workdir}: {exc.strerror}") from None
    try:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            raise RenderError(f"another render is running in {workdir}") from None
        probe = out.with_name(f".{out.name}.part")
        try:
            probe.touch()
            probe.unlink()
        except OSError as exc:
            raise RenderError(f"cannot write {out}: {exc.strerror}") from None
        for stale in (workdir / "chunks").glob("*.part*"):  # from a killed run; nobody else holds the lock
            stale.unlink()
        yield
    finally:
        lock.close()


def _prepare(
    script: Path,
    script_args: tuple[str, ...],
    threshold: float | None,
    target_seconds: float,
    workdir: Path,
    scenes: Path | None = None,
) -> tuple[dict[str, Any], list[Chunk]]:
    """Probe the script (in a process of its own, see :func:`.source.main`), map its cuts (found on the source,
    or read from ``scenes``) and plan the chunks; returns the job line and the plan."""
    scene_file: tuple[int | None, list[int]] | None = None
    if scenes is not None:
        try:
            scene_file = read_cuts(scenes)
        except SceneFileError as exc:
            raise RenderError(str(exc)) from None
    probe = [sys.executable, "-m", "vsflavr.render.source", str(script), str(workdir / "probe.json")]
    probe += ["--cache", str(workdir / "cuts.json"), *(["--threshold", str(threshold)] if threshold else [])]
    probe += ["--no-scan"] if scene_file is not None else []
    for arg in script_args:
        probe += ["-a", arg]
    result = subprocess.run(
        probe, check=False, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, encoding="utf-8", errors="replace"
    )
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    if result.returncode != 0:
        raise RenderError(lines[-1] if lines else f"evaluating the script failed (exit status {result.returncode})")
    for line in lines:  # the script's own messages, e.g. which checkpoint flavr() found
        logger.info("%s", line)
    info = json.loads((workdir / "probe.json").read_text())
    output, source = info["output"], info["source"]
    out_rate = _fraction(output["fps"])
    starts: list[int] = []
    if scene_file is not None:
        length, cuts = scene_file
        if source is None:
            raise RenderError("--scenes gives the source's cuts, but the script sets no output 1 (the source)")
        if length is not None and length != source["frames"]:
            raise RenderError(f"--scenes {scenes} is for {length} frames, the source (output 1) has {source['frames']}")
        if cuts and cuts[-1] >= source["frames"]:
            raise RenderError(f"--scenes {scenes}: cut frame {cuts[-1]} is past the source's {source['frames']} frames")
        info["cuts_into"] = cuts
    if source is None:
        logger.warning(
            "the script sets no output 1 (the clip given to vsflavr.flavr()): chunks are split by length only"
        )
    else:
        ratio = out_rate / _fraction(source["fps"])
        grid = ratio.numerator if ratio.denominator == 1 else 8
        starts = shot_starts(info["cuts_into"], source["frames"], ratio, grid)
    job = {
        "script": str(script),
        "script_sha256": file_sha256(script),
        "args": list(script_args),
        "source": source,
        "cuts": starts,
        "output": output,
        "vsflavr": __version__,
    }
    target = max(1, round(target_seconds * out_rate))
    return job, plan_chunks(output["frames"], starts, target)


def _finished(record: dict[str, Any], chunk: Chunk, chunks_dir: Path) -> bool:
    """Whether a manifest record still stands: its file and frame hashes are there and unchanged."""
    path, md5 = chunks_dir / record["file"], chunks_dir / f"{chunk.name}.md5"
    if not (path.is_file() and md5.is_file()):
        return False
    return (
        file_sha256(path) == record["file_sha256"] and frame_digest(md5.read_text().split()) == record["frame_digest"]
    )


def _count(n: int, one: str, many: str) -> str:
    return f"{n} {one if n == 1 else many}"


def _fraction(text: str) -> Fraction:
    num, den = text.split("/")
    return Fraction(int(num), int(den))


def _run(
    missing: list[Chunk],
    job_args: dict[str, Any],
    chunks_dir: Path,
    manifest_path: Path,
    args: argparse.Namespace,
    job: dict[str, Any],
) -> int:
    """Render the missing chunks on Ray, longest first, each recorded in the manifest as it finishes; returns how
    many needed more than one try.  A new job's manifest is written once Ray is there, so that a failed
    connection leaves no job behind."""
    if not missing:
        return 0
    from . import cluster

    try:
        where = cluster.connect(args.address, args.workers)
    except cluster.ConnectError as exc:
        raise RenderError(str(exc)) from None
    if not manifest_path.exists():
        manifest.create(manifest_path, job)
    total = job["output"]["frames"]
    todo = sum(c.frames for c in missing)
    logger.info(
        "%s; %d of %d frames to render in %s", where.description, todo, total, _count(len(missing), "chunk", "chunks")
    )
    jobs = [ChunkJob(chunk=c, directory=str(chunks_dir), **job_args) for c in missing]
    jobs.sort(key=lambda j: -j.chunk.frames)
    retried = 0
    done_frames = total - todo
    bar = tqdm(total=total, initial=total - todo, unit="frame", desc="render", disable=args.quiet, file=sys.stderr)

    def finished(result: ChunkResult) -> None:
        nonlocal retried, done_frames
        chunk = next(c for c in missing if c.index == result.index)
        record = {"index": chunk.index, "start": chunk.start, "end": chunk.end, **asdict(result)}
        manifest.append(manifest_path, record)
        retried += result.attempt > 1
        done_frames += result.frames

    def running(frames: int) -> None:
        bar.update(done_frames + frames - bar.n)

    try:
        cluster.run_all(jobs, where, args.max_tries, finished, running)
    except cluster.ChunkFailed as exc:
        chunk = exc.job.chunk
        tries = _count(len(list(chunks_dir.glob(f"{chunk.name}.try-*[0-9].log"))), "try", "tries")
        raise RenderError(
            f"chunk {chunk.index} (output frames {chunk.start}-{chunk.end - 1}) failed after {tries}: {exc}; "
            f"logs: {chunks_dir}/{chunk.name}.try-*.log"
        ) from None
    finally:
        bar.close()
        cluster.shutdown()
    return retried


def _refuse_changes(
    manifest_path: Path, job: dict[str, Any], workdir: Path
) -> tuple[dict[int, dict[str, Any]], dict[str, Any] | None]:
    """The manifest's chunk and output records, if its job line agrees with ``job`` on every field ``job`` has."""
    try:
        old, records, spliced = manifest.read(manifest_path)
    except (OSError, manifest.ManifestError) as exc:
        raise RenderError(str(exc)) from None
    changed = manifest.differences({k: old.get(k) for k in job}, job)
    if changed:
        raise RenderError(
            f"cannot resume: {', '.join(changed)} changed since the job in {workdir} started; "
            "run with the same settings, or start a new job in another --workdir"
        )
    return records, spliced


def _render(args: argparse.Namespace) -> None:
    started = time.monotonic()
    script, out, script_args, encoder, workdir = _options(args)
    chunks_dir, manifest_path = workdir / "chunks", workdir / "manifest.jsonl"
    tracks: Tracks | None = None
    if args.tracks_from:
        try:
            tracks = identify(Path(args.tracks_from).resolve())
        except TracksError as exc:
            raise RenderError(str(exc)) from None
        if tracks.left_out:
            logger.warning(
                "--tracks-from %s: mkvmerge cannot read %s of its audio or subtitle streams (ffprobe sees them); "
                "they are left out of OUT: convert them first, e.g. to SRT with ffmpeg",
                tracks.path,
                tracks.left_out,
            )
        if tracks.video_start:
            logger.warning(
                "--tracks-from %s: its video starts at %.3f s; its tracks and chapters are moved as much earlier to "
                "stay in sync with the rendered video, which starts at 0",
                tracks.path,
                tracks.video_start,
            )
    with _locked(workdir, out):
        if args.verify and not args.resume and manifest_path.exists():
            _verify_only(out, manifest_path, workdir)
            return
        if args.resume and manifest_path.exists():  # before scanning the source: a changed script is refused at once
            _refuse_changes(manifest_path, {"script_sha256": file_sha256(script), "args": list(script_args)}, workdir)
        scenes = Path(args.scenes).resolve() if args.scenes else None
        job, plan = _prepare(script, script_args, args.sc_threshold, args.chunk_seconds, workdir, scenes)
        job |= {"encoder": list(encoder), "ext": args.ext, "chunks": [[c.start, c.end] for c in plan]}
        job = json.loads(json.dumps(job))
        total = plan[-1].end
        if tracks is not None and not args.any_duration:
            fps = _fraction(job["output"]["fps"])
            source_fps = _fraction(job["source"]["fps"]) if job["source"] else fps
            try:
                check_duration(tracks, total, fps, source_fps)
            except TracksError as exc:
                raise RenderError(str(exc)) from None
        if args.write_scenes:
            write_av1an(Path(args.write_scenes), total, job["cuts"])
        done: dict[int, dict[str, Any]] = {}
        made_from = str(tracks.path) if tracks else None
        if manifest_path.exists():
            if not args.resume:
                raise RenderError(
                    f"{workdir} already holds a job; add --resume to continue it, or use another --workdir"
                )
            records, spliced = _refuse_changes(manifest_path, job, workdir)
            done = {i: r for i, r in records.items() if _finished(r, plan[i], chunks_dir)}
            for i in sorted(set(records) - set(done)):
                logger.warning("chunk %d changed or went missing since it was rendered: rendering it again", i)
            if (
                spliced
                and len(done) == len(plan)
                and spliced.get("tracks_from") == made_from
                and out.is_file()
                and file_sha256(out) == spliced["sha256"]
            ):
                print(f"render: {out} is already complete ({total} frames, {len(plan)} chunks); nothing to do")
                if args.verify:
                    _verify(out, plan, done, chunks_dir)
                return
        missing = [c for c in plan if c.index not in done]
        job_args = {"script": str(script), "args": script_args, "encoder": encoder, "ext": args.ext}
        retried = _run(missing, job_args, chunks_dir, manifest_path, args, job)
        files = [chunks_dir / f"{c.name}{args.ext}" for c in plan]
        try:
            splice(files, out, _fraction(job["output"]["fps"]), total, workdir / "splice.json", tracks)
        except SpliceError as exc:
            raise RenderError(str(exc)) from None
        output = {"file": str(out), "sha256": file_sha256(out), "frames": total, "tracks_from": made_from}
        manifest.append(manifest_path, output, kind="output")
        wall = time.monotonic() - started
        rendered = sum(c.frames for c in missing)
        with_tracks = f" with the {tracks.summary} of {tracks.path.name}" if tracks else ""
        print(
            f"render: wrote {out}{with_tracks}: {total} frames in {wall:.1f} s ({rendered / wall:.2f} frames/s "
            f"rendered), {_count(len(plan), 'chunk', 'chunks')}: {len(missing)} rendered, "
            f"{len(plan) - len(missing)} already done, {retried} retried"
        )
        if args.verify:
            _, records, _ = manifest.read(manifest_path)
            _verify(out, plan, records, chunks_dir)


def _verify(out: Path, plan: list[Chunk], records: dict[int, dict[str, Any]], chunks_dir: Path) -> None:
    """Check OUT against the chunks' frame hashes; one line for each problem, then the error."""
    try:
        problems = verify(out, plan, records, chunks_dir)
    except VerifyError as exc:
        raise RenderError(f"cannot verify: {exc}") from None
    if problems:
        for line in problems[:-1]:
            logger.error("vsflavr render: %s", line)
        raise RenderError(problems[-1])
    print(f"render: verified {out}: its {plan[-1].end} decoded frames equal the frames the chunks rendered")


def _verify_only(out: Path, manifest_path: Path, workdir: Path) -> None:
    """``--verify`` on a finished job without ``--resume``: check it, render nothing."""
    try:
        job, records, spliced = manifest.read(manifest_path)
    except (OSError, manifest.ManifestError) as exc:
        raise RenderError(str(exc)) from None
    if spliced is None or not out.is_file():
        raise RenderError(f"the job in {workdir} has not written {out} yet: run the same command with --resume")
    plan = [Chunk(i, a, b) for i, (a, b) in enumerate(job["chunks"])]
    _verify(out, plan, records, workdir / "chunks")
