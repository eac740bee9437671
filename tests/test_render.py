"""`python -m vsflavr render` end to end: local Ray, real vspipe, x264, ffmpeg and mkvmerge on the bundled footage.

One Ray cluster is started in this process for the module; most runs join it with ``--address``
(one ``ray.init`` instead of one per run), one run starts its own local cluster as a user would.
The script: bikes_160x68.mp4, 80 source frames (cuts into 30 and 76), multi=2 with a tiny
network -> 160 output frames in 5 chunks of at most 50 (chunk length 1 s).
"""

from __future__ import annotations

import json
import os
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
        ["ffmpeg", "-v", "error", "-i", str(path), "-f", "framemd5", "-"], check=False, capture_output=True
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
        return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, encoding="utf-8", errors="replace")
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
    assert not out.exists() and not list(tmp_path.glob(".film.mkv*"))  # nothing half-written as OUT


def test_missing_ray_names_the_extra(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)
    assert main(["render", str(tmp_path / "a.vpy"), "-o", str(tmp_path / "a.mkv")]) == 2
    assert "pip install 'vsflavr[distributed]'" in capsys.readouterr().err
