"""`python -m vsflavr render` end to end: local Ray, real vspipe, x264, ffmpeg and mkvmerge on the bundled footage.

One Ray cluster is started in this process for the module; most runs join it with ``--address``
(one ``ray.init`` instead of one per run), one run starts its own local cluster as a user would.
The script: bikes_160x68.mp4, 80 source frames (cuts into 30 and 76), multi=2 with a tiny
network -> 160 output frames in 5 chunks of at most 50 (chunk length 1 s).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import BIKES

from vsflavr.__main__ import main

ray = pytest.importorskip("ray")
pytestmark = pytest.mark.skipif(
    not all(shutil.which(tool) for tool in ("x264", "ffmpeg", "ffprobe", "mkvmerge")),
    reason="needs x264, ffmpeg and mkvmerge (.ci/run installs them)",
)

VSPIPE = Path(sys.executable).parent / "vspipe"
SCRIPT = """
import time
import vapoursynth as vs
import vsflavr
core = vs.core
src = core.bs.VideoSource(src)[: int(length)].resize.Bicubic(format=vs.RGBS, matrix_in_s="709")
out = vsflavr.flavr(src, multi=2, weights=weights, device="cpu", precision="fp32")
out = out.resize.Bicubic(format=vs.YUV420P8, matrix_s="709")
if float(globals().get("slow", 0)):  # seconds per frame, to catch a chunk in the middle
    out = out.std.FrameEval(lambda n, clip=out: time.sleep(float(slow)) or clip)
out.set_output()
src.set_output(1)
"""
FRAMES = 160
X264 = "x264 --demuxer y4m --qp 0 -o {output} -"


@pytest.fixture(scope="module")
def cluster() -> str:
    """The address of a local Ray cluster of 2 CPUs shared by the tests of this module."""
    ray.init(address="local", num_cpus=2, num_gpus=0, include_dashboard=False, log_to_driver=False)
    try:
        yield ray.get_runtime_context().gcs_address
    finally:
        ray.shutdown()


@pytest.fixture(scope="module")
def script(tmp_path_factory: pytest.TempPathFactory, tiny_2x: Path) -> list[str]:
    """The script and its -a arguments, as command-line words."""
    path = tmp_path_factory.mktemp("script") / "film.vpy"
    path.write_text(SCRIPT)
    return [str(path), "-a", f"src={BIKES}", "-a", "length=80", "-a", f"weights={tiny_2x}"]


def framemd5(data: bytes) -> list[tuple[str, ...]]:
    """(pts in seconds, duration in seconds, size, md5) of each frame of ffmpeg's framemd5 output."""
    lines = data.decode("utf-8").splitlines()
    (tb,) = (line.split(":")[1].strip() for line in lines if line.startswith("#tb 0:"))
    num, den = map(int, tb.split("/"))
    rows = [[f.strip() for f in line.split(",")] for line in lines if not line.startswith("#")]
    return [(f"{int(r[2]) * num}/{den}", f"{int(r[3]) * num}/{den}", r[4], r[5]) for r in rows]


def decode(path: Path) -> list[tuple[str, ...]]:
    result = subprocess.run(
        ["ffmpeg", "-v", "error", "-i", str(path), "-map", "0:v:0", "-f", "framemd5", "-"],
        check=False,
        capture_output=True,
    )
    assert result.returncode == 0, result.stderr
    return framemd5(result.stdout)


@pytest.fixture(scope="module")
def reference(script: list[str]) -> list[tuple[str, ...]]:
    """One whole run: vspipe | ffmpeg -f framemd5."""
    vspipe = subprocess.Popen([str(VSPIPE), "-c", "y4m", *script[1:], script[0], "-"], stdout=subprocess.PIPE)
    result = subprocess.run(
        ["ffmpeg", "-v", "error", "-f", "yuv4mpegpipe", "-i", "-", "-f", "framemd5", "-"],
        check=False,
        stdin=vspipe.stdout,
        capture_output=True,
    )
    assert vspipe.wait() == 0 and result.returncode == 0, result.stderr
    frames = framemd5(result.stdout)
    assert len(frames) == FRAMES
    return frames


def render(
    *args: str, wait: bool = True, quiet: bool = True
) -> subprocess.CompletedProcess[str] | subprocess.Popen[str]:
    command = [sys.executable, "-m", "vsflavr", "render", *(["-q"] if quiet else []), "--chunk-seconds", "1", *args]
    if not wait:
        return subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, encoding="utf-8", errors="replace"
        )
    return subprocess.run(command, check=False, capture_output=True, encoding="utf-8", errors="replace", timeout=600)


def records(workdir: Path) -> list[dict]:
    lines = (workdir / "manifest.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines if line.endswith("}")]


def chunk_lines(workdir: Path) -> list[dict]:
    return [r for r in records(workdir) if r["type"] == "chunk"]


def leftovers(workdir: Path) -> list[Path]:
    return [p for p in workdir.rglob("*") if ".part" in p.name]


def test_default_ffv1_on_a_local_ray_equals_one_run(script: list[str], reference: list, tmp_path: Path) -> None:
    out = tmp_path / "film.mkv"
    result = render(*script, "-o", str(out), "--workers", "2", quiet=False)
    assert result.returncode == 0, result.stderr
    assert "160/160 [" in result.stderr and "frame/s]" in result.stderr  # the progress bar, in frames
    assert "160 frames" in result.stdout and "5 chunks: 5 rendered, 0 already done, 0 retried" in result.stdout
    assert decode(out) == reference  # hashes, timestamps, durations and the frame count
    workdir = tmp_path / "film.mkv.render"
    job = records(workdir)[0]
    assert job["cuts"] == [60, 152]  # cuts into source frames 30 and 76, at multi=2
    assert [tuple(c) for c in job["chunks"]] == [(0, 30), (30, 60), (60, 106), (106, 152), (152, 160)]
    streamed = [line.strip() for i in range(5) for line in (workdir / f"chunks/chunk-{i:05d}.md5").open()]
    assert streamed == [frame[3] for frame in reference]  # hashed as they streamed past = decoded
    assert not leftovers(workdir)


def test_lossless_x264_chunks_splice_to_one_run(script: list[str], reference: list, cluster: str, tmp_path) -> None:
    out = tmp_path / "film.mkv"
    result = render(*script, "-o", str(out), "--address", cluster, "--encoder", X264)
    assert result.returncode == 0, result.stderr
    assert decode(out) == reference


def test_worker_killed_mid_chunk_is_retried(script: list[str], reference: list, cluster: str, tmp_path: Path) -> None:
    out, workdir = tmp_path / "film.mkv", tmp_path / "work"
    where = ["-o", str(out), "--address", cluster, "--workdir", str(workdir)]
    proc = render(*script, "-a", "slow=0.05", *where, wait=False)
    deadline = time.monotonic() + 120
    while not (parts := sorted((workdir / "chunks").glob("*.try-1.part.mkv"))):  # frames are flowing
        assert time.monotonic() < deadline and proc.poll() is None
        time.sleep(0.05)
    time.sleep(0.3)  # a few frames into the chunk
    log = parts[0].with_name(parts[0].name.replace(".part.mkv", ".log"))
    worker, _, vspipe, _, encoder = log.read_text().split()[1:6]
    os.kill(int(worker), signal.SIGKILL)
    _, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 0, stderr
    killed = log.name.split(".")[0]
    attempts = {r["file"]: r["attempt"] for r in chunk_lines(workdir)}
    assert attempts[f"{killed}.mkv"] == 2 and sorted(attempts.values()) == [1, 1, 1, 1, 2]
    assert decode(out) == reference
    assert not leftovers(workdir)
    assert all(gone(int(group)) for group in (vspipe, encoder))  # died with the worker, children too: no orphans


def gone(group: int, wait: float = 10.0) -> bool:
    """Whether no process is left in a process group (vspipe's and the encoder's are their own)."""
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        try:
            os.killpg(group, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.1)
    return False


def test_encoder_failing_once_is_retried_and_raw_chunks_splice_exactly(
    script: list[str], reference: list, cluster: str, tmp_path: Path
) -> None:
    flaky = tmp_path / "flaky.sh"
    fail_once = f'mkdir "{tmp_path}/failed" 2>/dev/null && {{ echo "flaky: first run" >&2; exit 3; }}\n'
    flaky.write_text(fail_once + 'exec x264 --demuxer y4m --qp 0 -o "$1" -\n')
    out, workdir = tmp_path / "film.mkv", tmp_path / "work"
    where = ["-o", str(out), "--address", cluster, "--workdir", str(workdir)]
    result = render(*script, *where, "--encoder", f"sh {flaky} {{output}}", "--ext", ".264")  # raw H.264 chunks
    assert result.returncode == 0, result.stderr
    assert "1 retried" in result.stdout
    assert sorted(r["attempt"] for r in chunk_lines(workdir)) == [1, 1, 1, 1, 2]
    assert decode(out) == reference
    assert not leftovers(workdir)


def test_encoder_always_failing_names_the_chunk(script: list[str], cluster: str, tmp_path: Path) -> None:
    out, workdir = tmp_path / "film.mkv", tmp_path / "work"
    broken = "sh -c 'cat > /dev/null; echo broken encoder >&2; exit 3' {output}"
    where = ["-o", str(out), "--address", cluster, "--workdir", str(workdir)]
    result = render(*script, *where, "--encoder", broken, "--max-tries", "2")
    assert result.returncode == 1
    line = result.stderr.strip().splitlines()[-1]  # after the progress line: the one error line
    assert sum("vsflavr render:" in x for x in result.stderr.splitlines()) == 1
    assert line.startswith("vsflavr render: chunk ") and "failed after 2 tries" in line
    assert "the encoder exited with status 3: broken encoder" in line
    assert records(workdir)[0]["type"] == "job" and not chunk_lines(workdir)  # manifest intact, nothing claimed done
    assert not out.exists() and not leftovers(workdir)


def test_driver_killed_then_resume_runs_only_the_missing_chunks(
    script: list[str], reference: list, cluster: str, tmp_path: Path
) -> None:
    out, workdir = tmp_path / "film.mkv", tmp_path / "work"
    where = ["-o", str(out), "--address", cluster, "--workdir", str(workdir), "--workers", "1"]
    job = [*script, "-a", "slow=0.02", *where, "--encoder", X264]
    proc = render(*job, wait=False)
    deadline = time.monotonic() + 180
    while not (workdir / "manifest.jsonl").exists() or len(chunk_lines(workdir)) < 2:
        assert time.monotonic() < deadline and proc.poll() is None
        time.sleep(0.1)
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    finished = {r["file"]: (workdir / "chunks" / r["file"]).stat().st_mtime_ns for r in chunk_lines(workdir)}
    assert 2 <= len(finished) < 5 and not out.exists()

    changed = render(*job[:-1], "x264 --demuxer y4m --qp 0 --preset veryfast -o {output} -", "--resume")
    assert changed.returncode == 1
    assert "cannot resume: the encoder command changed" in changed.stderr

    resumed = render(*job, "--resume")
    assert resumed.returncode == 0, resumed.stderr
    assert f"{5 - len(finished)} rendered, {len(finished)} already done" in resumed.stdout
    assert all((workdir / "chunks" / f).stat().st_mtime_ns == t for f, t in finished.items())  # untouched
    lines = chunk_lines(workdir)
    assert sorted(r["index"] for r in lines) == list(range(5))  # each chunk rendered once
    assert decode(out) == reference
    assert not leftovers(workdir)

    manifest, output = (workdir / "manifest.jsonl").read_bytes(), out.stat().st_mtime_ns
    again = render(*job, "--resume")
    assert again.returncode == 0 and "already complete" in again.stdout
    assert (workdir / "manifest.jsonl").read_bytes() == manifest and out.stat().st_mtime_ns == output


def one_error_line(capsys: pytest.CaptureFixture[str], argv: list[str]) -> str:
    assert main(argv) != 0
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1, lines
    return lines[0]


def test_bad_input_gets_one_line_and_no_output(
    script: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "film.mkv"
    base = ["render", "-q", *script, "-o", str(out)]
    failing = tmp_path / "failing.vpy"
    failing.write_text("import vapoursynth as vs\nvs.core.bs.VideoSource('/no/such/file.mkv').set_output()\n")
    line = one_error_line(capsys, ["render", str(failing), "-o", str(out)])
    assert line.startswith("vsflavr render: the script failed: Error:") and "/no/such/file.mkv" in line
    mismatched = tmp_path / "mismatched.vpy"
    mismatched.write_text(SCRIPT + "src[:10].set_output(1)\n")
    line = one_error_line(capsys, ["render", str(mismatched), *script[1:], "-o", str(out)])
    assert line == (
        "vsflavr render: output 0 (160 frames) is not output 1 (10 frames) at 2x its rate; "
        "set output 1 to the clip you give to vsflavr.flavr()"
    )
    line = one_error_line(capsys, [*base, "--encoder", "x264 --qp 0 -o out.264 -"])
    assert line.startswith("vsflavr render: --encoder must contain {output}")
    (tmp_path / "file").write_text("")
    line = one_error_line(capsys, [*base, "--workdir", str(tmp_path / "file" / "work")])
    assert line.startswith(f"vsflavr render: cannot write to the work directory {tmp_path / 'file' / 'work'}")
    line = one_error_line(capsys, [*base, "--address", "127.0.0.1:9", "--workdir", str(tmp_path / "w")])
    assert line.startswith("vsflavr render: no Ray cluster answers at 127.0.0.1:9")
    assert not (tmp_path / "w" / "manifest.jsonl").exists()  # no job left behind to --resume
    (tmp_path / "notes.txt").write_text("hello\n")
    (tmp_path / "folder").mkdir()
    for option, path, says in [
        ("--scenes", tmp_path / "nope.json", "cannot read the scene file {}: No such file or directory"),
        ("--scenes", tmp_path / "folder", "cannot read the scene file {}: Is a directory"),
        ("--scenes", tmp_path / "notes.txt", "{} is neither Av1an's scenes.json nor a list of cut frames (found 'hello')"),
        ("--tracks-from", tmp_path / "nope.mkv", "--tracks-from {}: no such file"),
        ("--tracks-from", tmp_path / "folder", "--tracks-from {}: is a directory, not a video file"),
        ("--tracks-from", tmp_path / "notes.txt", "--tracks-from {}: mkvmerge cannot read it: not a container mkvmerge reads"),
    ]:
        line = one_error_line(capsys, [*base, option, str(path), "--workdir", str(tmp_path / "w")])
        assert line == "vsflavr render: " + says.format(path), line
    assert not out.exists() and not list(tmp_path.glob(".film.mkv*"))  # nothing half-written as OUT


def test_missing_ray_names_the_extra(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)
    assert main(["render", str(tmp_path / "a.vpy"), "-o", str(tmp_path / "a.mkv")]) == 2
    assert "pip install 'vsflavr[distributed]'" in capsys.readouterr().err


# --- the film's other tracks, --verify, scene files -------------------------------------------------------------

ASS = """[Script Info]
ScriptType: v4.00+
PlayResX: 160
PlayResY: 68

[V4+ Styles]
Format: Name, Fontname, Fontsize, PrimaryColour, SecondaryColour, OutlineColour, BackColour, Bold, Italic, \
Underline, StrikeOut, ScaleX, ScaleY, Spacing, Angle, BorderStyle, Outline, Shadow, Alignment, MarginL, MarginR, \
MarginV, Encoding
Style: Default,DejaVu Sans,12,&H00FFFFFF,&H000000FF,&H00000000,&H00000000,0,0,0,0,100,100,0,0,1,1,0,2,5,5,5,1

[Events]
Format: Layer, Start, End, Style, Name, MarginL, MarginR, MarginV, Effect, Text
Dialogue: 0,0:00:00.20,0:00:01.00,Default,,0,0,0,,Bonjour
Dialogue: 0,0:00:01.50,0:00:02.90,Default,,0,0,0,,le monde
"""
SRT = "1\n00:00:00,500 --> 00:00:01,500\nHello\n\n2\n00:00:02,000 --> 00:00:03,000\nWorld\n"
CHAPTERS = "CHAPTER01=00:00:00.000\nCHAPTER01NAME=Opening\nCHAPTER02=00:00:01.200\nCHAPTER02NAME=Bikes\n"
TAGS = '<?xml version="1.0"?>\n<Tags><Tag><Targets/><Simple><Name>DIRECTOR</Name><String>A. Test</String></Simple></Tag></Tags>\n'


def run(*command: str | Path) -> subprocess.CompletedProcess[bytes]:
    result = subprocess.run([str(c) for c in command], check=False, capture_output=True)
    assert result.returncode == 0, result.stderr.decode(errors="replace")
    return result


def font() -> Path:
    """The smallest TrueType font on this machine, for the ASS subtitle's attachment."""
    fonts = sorted(Path("/usr/share/fonts").rglob("*.ttf"), key=lambda p: p.stat().st_size)
    if not fonts:
        pytest.skip("no TrueType font in /usr/share/fonts (.ci/run installs fonts-dejavu-core)")
    return fonts[0]


@pytest.fixture(scope="module")
def film(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The bundled clip's 80 frames as a film is released: FLAC and Opus sine tracks, SRT and ASS subtitles,
    a font attachment, chapters and a global tag, with languages, names and default/forced flags."""
    d = tmp_path_factory.mktemp("film")
    run("ffmpeg", "-v", "error", "-i", BIKES, "-frames:v", "80", "-c:v", "ffv1", d / "video.mkv")
    for name, hz, codec in (("sine.flac", 440, "flac"), ("sine.opus", 660, "libopus")):
        run("ffmpeg", "-v", "error", "-f", "lavfi", "-i", f"sine=frequency={hz}:sample_rate=48000:duration=3.2",
            "-c:a", codec, d / name)  # fmt: skip
    for name, text in (("en.srt", SRT), ("fr.ass", ASS), ("chapters.txt", CHAPTERS), ("tags.xml", TAGS)):
        (d / name).write_text(text)
    run(
        "mkvmerge", "-q", "-o", d / "film.mkv", "--language", "0:und", d / "video.mkv",
        "--language", "0:eng", "--default-track-flag", "0:1", d / "sine.flac",
        "--language", "0:jpn", "--default-track-flag", "0:0", "--track-name", "0:Commentary", d / "sine.opus",
        "--language", "0:eng", "--forced-display-flag", "0:1", d / "en.srt",
        "--language", "0:fre", "--default-track-flag", "0:0", d / "fr.ass",
        "--attachment-mime-type", "font/ttf", "--attach-file", font(),
        "--chapters", d / "chapters.txt", "--global-tags", d / "tags.xml",
    )  # fmt: skip
    return d / "film.mkv"


def audio_md5(path: Path, n: int) -> str:
    return run("ffmpeg", "-v", "error", "-i", path, "-map", f"0:a:{n}", "-c", "copy", "-f", "md5", "-").stdout.decode()


def identify(path: Path) -> dict:
    return json.loads(run("mkvmerge", "-J", path).stdout)


def extracted(path: Path, what: str, *specs: str) -> list[bytes]:
    """Files mkvextract writes for ``what`` (tracks, attachments) and ``ID:name`` specs, or its stdout."""
    out = []
    for spec in specs:
        target = path.with_name(f"{path.stem}.{spec.replace(':', '-')}")
        run("mkvextract", path, what, f"{spec.split(':')[0]}:{target}")
        out.append(target.read_bytes())
    return out


@pytest.fixture(scope="module")
def tracks_job(
    script: list[str], cluster: str, film: Path, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, Path, subprocess.CompletedProcess[str]]:
    """OUT and the work directory of a job with the film's tracks, the cuts from an Av1an 0.4 scenes.json
    (as the built-in scan finds them: into source frames 30 and 76), Av1an's scenes.json written for OUT, --verify."""
    d = tmp_path_factory.mktemp("tracks")
    scenes = [{"start_frame": a, "end_frame": b, "zone_overrides": None} for a, b in ((0, 30), (30, 76), (76, 80))]
    (d / "av1an.json").write_text(json.dumps({"scenes": scenes, "frames": 80}))
    out, workdir = d / "film_2x.mkv", d / "work"
    result = render(
        *script, "-o", str(out), "--address", cluster, "--workdir", str(workdir), "--tracks-from", str(film),
        "--scenes", str(d / "av1an.json"), "--write-scenes", str(d / "out.scenes.json"), "--verify",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return out, workdir, result


def test_tracks_from_keeps_every_track_and_the_frames(
    tracks_job: tuple, film: Path, reference: list, tmp_path: Path
) -> None:
    out, _workdir, result = tracks_job
    assert "with the 2 audio, 2 subtitles, 1 attachments, 2 chapters of film.mkv" in result.stdout
    assert f"render: verified {out}: its 160 decoded frames equal" in result.stdout
    assert decode(out) == reference
    for n in (0, 1):  # FLAC and Opus, copied packet for packet
        assert audio_md5(out, n) == audio_md5(film, n)
    source, made = identify(film), identify(out)
    keys = ("codec_id", "language", "default_track", "forced_track", "track_name")
    assert [t["type"] for t in made["tracks"]] == [t["type"] for t in source["tracks"]]  # video first, then in order
    for a, b in zip(source["tracks"][1:], made["tracks"][1:], strict=True):
        assert {k: a["properties"].get(k) for k in keys} == {k: b["properties"].get(k) for k in keys}
    assert extracted(out, "tracks", "3:srt", "4:ass") == extracted(film, "tracks", "3:srt", "4:ass")
    assert [a["file_name"] for a in made["attachments"]] == [a["file_name"] for a in source["attachments"]]
    assert extracted(out, "attachments", "1:ttf") == extracted(film, "attachments", "1:ttf") == [font().read_bytes()]
    chapters = [run("mkvextract", f, "chapters", "-s").stdout for f in (film, out)]
    assert chapters[0] == chapters[1] and b"Bikes" in chapters[0]
    assert b"<String>A. Test</String>" in run("mkvextract", out, "tags", "-").stdout


def test_av1an_scenes_give_the_scanned_plan_and_the_written_file_reads_back(tracks_job: tuple) -> None:
    from vsflavr.render.plan import plan_chunks
    from vsflavr.render.scenefile import read_cuts

    out, workdir, _ = tracks_job
    job = records(workdir)[0]
    assert job["cuts"] == [60, 152]  # what the scan finds (test_default_ffv1_on_a_local_ray_equals_one_run)
    assert [tuple(c) for c in job["chunks"]] == [(0, 30), (30, 60), (60, 106), (106, 152), (152, 160)]
    assert not (workdir / "cuts.json").exists()  # the source was not scanned
    written = json.loads((out.parent / "out.scenes.json").read_text())
    assert written["scenes"] == written["split_scenes"] and written["frames"] == 160
    assert [(s["start_frame"], s["end_frame"]) for s in written["scenes"]] == [(0, 60), (60, 152), (152, 160)]
    frames, starts = read_cuts(out.parent / "out.scenes.json")
    assert (frames, starts) == (160, job["cuts"])
    assert [[c.start, c.end] for c in plan_chunks(frames, starts, 50)] == job["chunks"]


def packet(path: Path, n: int) -> tuple[int, int]:
    """(byte offset, size) of video packet n of a file."""
    probe = run("ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries", "packet=pos,size", "-of", "json",
                path).stdout  # fmt: skip
    p = json.loads(probe)["packets"][n]
    return int(p["pos"]), int(p["size"])


def flip_byte(path: Path, n: int) -> None:
    """Change one byte in the middle of video frame n's data."""
    pos, size = packet(path, n)
    data = bytearray(path.read_bytes())
    data[pos + size // 2] ^= 0x10
    path.write_bytes(bytes(data))


def test_verify_names_the_damaged_chunk_and_frame_and_resume_renders_only_it(
    tracks_job: tuple, script: list[str], cluster: str, film: Path, reference: list
) -> None:
    out, workdir, _ = tracks_job
    job = [*script, "-o", str(out), "--address", cluster, "--workdir", str(workdir), "--tracks-from", str(film)]
    good = render(*job, "--verify")  # on a finished job: only check
    assert good.returncode == 0 and "verified" in good.stdout and "wrote" not in good.stdout, good.stderr

    chunk = workdir / "chunks" / "chunk-00002.mkv"  # output frames 60-105
    flip_byte(chunk, 3)
    bad = render(*job, "--verify")
    assert bad.returncode == 1
    line = bad.stderr.strip().splitlines()[-1]
    assert line.startswith("vsflavr render: chunk 2 (output frames 60-105): its file chunk-00002.mkv changed")
    assert "the first at its frame 3 (output frame 63)" in line

    others = {p.name: p.stat().st_mtime_ns for p in (workdir / "chunks").glob("chunk-*.mkv") if p != chunk}
    resumed = render(*job, "--resume", "--verify")
    assert resumed.returncode == 0, resumed.stderr
    assert "1 rendered, 4 already done" in resumed.stdout and "verified" in resumed.stdout
    assert "chunk 2 changed or went missing since it was rendered" in resumed.stderr
    assert {p.name: p.stat().st_mtime_ns for p in (workdir / "chunks").glob("chunk-*.mkv") if p != chunk} == others
    assert [r["index"] for r in chunk_lines(workdir)].count(2) == 2  # its new line; the others have one
    assert decode(out) == reference

    flip_byte(out, 100)
    bad = render(*job, "--verify")
    assert bad.returncode == 1
    assert "the first at output frame 100 (chunk 2, its frame 40)" in bad.stderr.strip().splitlines()[-1]
    repaired = render(*job, "--resume", "--verify")  # the chunks are fine: splice again
    assert repaired.returncode == 0 and "0 rendered, 5 already done" in repaired.stdout, repaired.stderr
    assert decode(out) == reference


def test_tracks_from_mp4_and_a_film_of_another_length(tracks_job: tuple, script: list[str], film: Path) -> None:
    out, workdir, _ = tracks_job
    mp4 = film.with_name("film.mp4")  # MP4: AAC, Opus, chapters, and a mov_text subtitle mkvmerge v74 cannot read
    run("ffmpeg", "-v", "error", "-i", film, "-map", "0:v", "-map", "0:a", "-map", "0:s:0", "-c:v", "libx264", "-qp",
        "0", "-c:a:0", "aac", "-c:a:1", "copy", "-c:s", "mov_text", mp4)  # fmt: skip
    job = [*script, "-o", str(out), "--workdir", str(workdir), "--resume"]
    result = render(*job, "--tracks-from", str(mp4))  # every chunk is done: only the splice runs
    assert result.returncode == 0, result.stderr
    assert "0 rendered, 5 already done" in result.stdout and "with the 2 audio, 0 subtitles" in result.stdout
    assert "mkvmerge cannot read 1 of its audio or subtitle streams" in result.stderr
    for n in (0, 1):
        assert audio_md5(out, n) == audio_md5(mp4, n)

    short = film.with_name("short.mkv")
    run("ffmpeg", "-v", "error", "-i", film, "-t", "2", "-map", "0:v", "-map", "0:a", "-c", "copy", short)
    refused = render(*job, "--tracks-from", str(short))
    assert refused.returncode == 1
    line = refused.stderr.strip().splitlines()[-1]
    assert f"--tracks-from {short} lasts 00:00:02.0" in line and "rendered video 00:00:03.200 (3.200 s" in line
    assert "--no-video --split parts:00:00:00.000-00:00:02.0" in line and "--any-duration" in line
    taken = render(*job, "--tracks-from", str(short), "--any-duration")
    assert taken.returncode == 0, taken.stderr
    assert decode(out)[-1][0] == "159/50"  # the video is whole


def audio_packets(path: Path, shift_ms: int = 0) -> list[tuple[int, str]]:
    """(pts in ms, size) of the FLAC track's packets at or after ``shift_ms``, moved ``shift_ms`` earlier."""
    csv = run("ffprobe", "-v", "error", "-select_streams", "a:0", "-show_entries", "packet=pts_time,size", "-of",
              "csv=p=0", path).stdout.decode()  # fmt: skip
    packets = [(round(float(t) * 1000), size) for t, size in (line.split(",") for line in csv.split())]
    return [(t - shift_ms, size) for t, size in packets if t >= shift_ms]


def test_tracks_from_a_film_whose_video_starts_late_stay_in_sync(
    tracks_job: tuple, script: list[str], film: Path
) -> None:
    out, workdir, _ = tracks_job
    late = film.with_name("late.mkv")  # the same film, its video 200 ms after its audio (as in many broadcasts)
    run("mkvmerge", "-q", "-o", late, "--sync", "0:200", film)
    result = render(*script, "-o", str(out), "--workdir", str(workdir), "--resume", "--tracks-from", str(late))
    assert result.returncode == 0, result.stderr  # its duration counts from the video's start: 3.4 - 0.2 s
    assert "its video starts at 0.200 s; its tracks and chapters are moved as much earlier" in result.stderr
    assert audio_packets(out) == audio_packets(late, 200)  # what plays with the first frame still does
    chapters = run("mkvextract", out, "chapters", "-s", "-").stdout.decode()
    assert chapters == CHAPTERS.replace("00:00:01.200", "00:00:01.000")  # 1.2 s of FILE is 1.0 s of OUT; 0 stays 0


# --- encoders for masters ----------------------------------------------------------------------------------------

X265 = "x265 --log-level error --y4m --input - --lossless --pools 1 --frame-threads 1 -o {output}"
SVT_AV1 = "ffmpeg -hide_banner -loglevel error -f yuv4mpegpipe -i - -c:v libsvtav1 -preset 12 {output}"


def test_lossless_x265_raw_hevc_chunks_splice_to_one_run(
    script: list[str], reference: list, cluster: str, tmp_path: Path
) -> None:
    out = tmp_path / "film.mkv"
    two = ["--chunk-seconds", "2", "--address", cluster]  # 2 chunks: (0, 60), (60, 160)
    result = render(*script, "-o", str(out), *two, "--encoder", X265, "--ext", ".hevc", "--verify")
    assert result.returncode == 0, result.stderr
    assert "verified" in result.stdout
    assert identify(out)["tracks"][0]["codec"] == "HEVC/H.265/MPEG-H"
    assert decode(out) == reference


def test_svt_av1_chunks_have_every_frame_at_its_time_and_verify_says_lossy_differs(
    script: list[str], reference: list, cluster: str, tmp_path: Path
) -> None:
    if "libsvtav1" not in run("ffmpeg", "-hide_banner", "-encoders").stdout.decode():
        pytest.fail("this ffmpeg has no libsvtav1 (Debian's ffmpeg has it)")
    out, workdir = tmp_path / "film.mkv", tmp_path / "work"
    two = ["--chunk-seconds", "2", "--address", cluster]  # 2 chunks: (0, 60), (60, 160)
    result = render(*script, "-o", str(out), *two, "--workdir", str(workdir), "--encoder", SVT_AV1, "--verify")
    assert result.returncode == 1 and out.exists()  # written, then --verify: a lossy encoder's frames differ
    assert "differing frames, the first at output frame 0 (chunk 0, its frame 0)" in result.stderr
    assert identify(out)["tracks"][0]["codec"] == "AV1"
    decoded = decode(out)
    assert [f[:2] for f in decoded] == [f[:2] for f in reference]  # every frame, at its time and for its duration
    assert [tuple(c) for c in records(workdir)[0]["chunks"]] == [(0, 60), (60, 160)]
    fed = [line.strip() for i in range(2) for line in (workdir / f"chunks/chunk-{i:05d}.md5").open()]
    assert fed == [f[3] for f in reference]  # the frames fed to the encoder equal one run


# --- a real multi-node Ray cluster --------------------------------------------------------------------------------


def cluster_processes(temp_dir: Path) -> set[int]:
    """The processes of a cluster started with ``--temp-dir temp_dir``: those naming it (every node's GCS, raylet
    and workers) and their children (the agents, whose names do not)."""
    parents: dict[int, int] = {}
    found = set()
    for proc in Path("/proc").iterdir():
        try:
            if proc.name.isdigit():
                parents[int(proc.name)] = parent(int(proc.name))
                if str(temp_dir).encode() in (proc / "cmdline").read_bytes():
                    found.add(int(proc.name))
        except (OSError, IndexError):
            pass
    found |= {pid for pid, ppid in parents.items() if ppid in found}
    return found - {os.getpid()}


def parent(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


def children(pid: int) -> list[int]:
    """Every living process whose parent is ``pid``."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, IndexError, ValueError):
            if parent(int(stat.parent.name)) == pid:
                found.append(int(stat.parent.name))
    return found


@pytest.fixture
def three_nodes(tmp_path: Path) -> tuple[str, dict[str, str]]:
    """A head (no CPUs: it runs no chunk) and two worker nodes of 1 CPU, each its own raylet started with
    ``ray start``, token authentication on; returns the address and the environment that reaches it."""
    temp = Path(f"/tmp/vsflavr-ray-{os.getpid()}-{time.monotonic_ns()}")  # short: Ray's socket paths must fit
    home = Path.home()  # HOME moves (Ray keeps its token there); vspipe's config and vsflavr's CPU timing stay
    env = dict(os.environ, HOME=str(tmp_path), RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=os.urandom(16).hex())
    env.setdefault("XDG_CONFIG_HOME", str(home / ".config"))
    env.setdefault("XDG_CACHE_HOME", str(home / ".cache"))  # the backend the reference run was timed to
    ray_cli = [
        str(Path(sys.executable).parent / "ray"),
        "start",
        "--disable-usage-stats",
        "--node-ip-address=127.0.0.1",
    ]
    small = ["--object-store-memory=80000000", "--min-worker-port=0", "--max-worker-port=0"]
    fast = '{"health_check_failure_threshold": 5, "health_check_period_ms": 500, "health_check_initial_delay_ms": 0}'
    started: set[int] = set()
    try:
        head = subprocess.run(
            [*ray_cli, "--head", "--port=0", "--num-cpus=0", "--include-dashboard=false", f"--temp-dir={temp}",
             f"--system-config={fast}", *small],
            check=False, capture_output=True, encoding="utf-8", env=env, timeout=120,
        )  # fmt: skip
        assert head.returncode == 0, head.stdout + head.stderr
        port = re.search(r"--address='[^']*:(\d+)'", head.stdout + head.stderr).group(1)
        address = f"127.0.0.1:{port}"
        for _ in range(2):
            node = subprocess.run(
                [*ray_cli, f"--address={address}", "--num-cpus=1", *small],
                check=False, capture_output=True, encoding="utf-8", env=env, timeout=120,
            )  # fmt: skip
            assert node.returncode == 0, node.stdout + node.stderr
        started = cluster_processes(temp)
        yield address, env
    finally:
        for pid in cluster_processes(temp) | started:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        shutil.rmtree(temp, ignore_errors=True)


def test_three_node_cluster_with_token_auth_and_a_worker_node_killed_mid_chunk(
    script: list[str], reference: list, three_nodes: tuple[str, dict[str, str]], tmp_path: Path
) -> None:
    address, env = three_nodes
    out, workdir = tmp_path / "film.mkv", tmp_path / "work"
    started = time.monotonic()
    result = subprocess.run(  # 2 chunks, (0, 60) and (60, 160): one on each worker node
        [sys.executable, "-m", "vsflavr", "render", "-q", "--chunk-seconds", "2", *script, "-o", str(out),
         "--address", address, "--workdir", str(workdir)],
        check=False, capture_output=True, encoding="utf-8", env=env, timeout=600,
    )  # fmt: skip
    wall = time.monotonic() - started
    assert result.returncode == 0, result.stderr
    assert f"Ray cluster at {address}: 2 CPUs, 0 GPUs" in result.stderr
    assert decode(out) == reference
    assert len({r["node"] for r in chunk_lines(workdir)}) == 2  # both worker nodes rendered chunks

    out, workdir = tmp_path / "killed.mkv", tmp_path / "killed"
    started_killed = time.monotonic()
    proc = subprocess.Popen(
        [sys.executable, "-m", "vsflavr", "render", "-q", "--chunk-seconds", "1", *script, "-a", "slow=0.05", "-o",
         str(out), "--address", address, "--workdir", str(workdir)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, encoding="utf-8", env=env,
    )  # fmt: skip
    deadline = time.monotonic() + 180
    while not (parts := sorted((workdir / "chunks").glob("*.try-1.part.mkv"))):
        assert time.monotonic() < deadline and proc.poll() is None
        time.sleep(0.05)
    time.sleep(0.3)
    log = parts[0].with_name(parts[0].name.replace(".part.mkv", ".log"))
    worker = int(log.read_text().split()[1])
    raylet = parent(worker)
    assert b"raylet" in Path(f"/proc/{raylet}/cmdline").read_bytes()
    # The whole worker node dies at once, as a machine does: its raylet and every process it started (the
    # worker, and with it vspipe and the encoder). Killing the raylet alone leaves the worker up to a second
    # to notice, in which a short chunk can finish and be counted as done (CI saw "0 retried" that way).
    node = [raylet, *children(raylet)]
    for pid in node:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    assert worker in node
    stdout, stderr = proc.communicate(timeout=400)
    wall_killed = time.monotonic() - started_killed
    assert proc.returncode == 0, stderr
    assert "1 retried" in stdout
    killed = log.name.split(".")[0]
    lines = {r["file"]: r for r in chunk_lines(workdir)}
    assert lines[f"{killed}.mkv"]["attempt"] == 2 and sorted(r["attempt"] for r in lines.values()) == [1, 1, 1, 1, 2]
    assert decode(out) == reference
    assert not leftovers(workdir)
    print(f"three-node cluster: {wall:.1f} s; with a worker node killed: {wall_killed:.1f} s")
