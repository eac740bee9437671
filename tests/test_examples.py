"""Every example script runs under vspipe, as a user runs it, and gives the documented count and rate."""

from __future__ import annotations

import os
import runpy
import subprocess
import sys
from pathlib import Path

import pytest
import vapoursynth as vs
from conftest import BIKES

EXAMPLES = Path(__file__).parent.parent / "examples"
VSPIPE = Path(sys.executable).parent / "vspipe"


def vspipe(*args: str) -> subprocess.CompletedProcess[bytes]:
    result = subprocess.run([str(VSPIPE), *args], check=False, capture_output=True, timeout=300)
    assert result.returncode == 0, result.stderr.decode(errors="replace")
    return result


@pytest.mark.parametrize(
    ("script", "frames", "rate"),
    [
        ("flavr_2x.vpy", 500, "F50:1"),
        ("film_to_5994.vpy", 625, "F60000:1001"),
        ("anime_twos.vpy", 250, "F25:1"),
        pytest.param(
            "external_scenes.vpy",
            500,
            "F50:1",
            marks=pytest.mark.skipif(not hasattr(vs.core, "mv"), reason="needs vapoursynth-mvtools"),
        ),
    ],
)
def test_example_under_vspipe(tiny_8x: Path, tmp_path: Path, script: str, frames: int, rate: str) -> None:
    info = vspipe("--info", "-a", f"weights={tiny_8x}", str(EXAMPLES / script), "-").stdout.decode()
    assert f"Frames: {frames}" in info
    out = tmp_path / "out.y4m"
    vspipe("-c", "y4m", "-e", "11", "-a", f"weights={tiny_8x}", str(EXAMPLES / script), str(out))
    data = out.read_bytes()
    header = data.split(b"\n", 1)[0].decode()
    assert header.startswith("YUV4MPEG2 C420 W160 H68 ") and f" {rate} " in header  # the source's YUV420P8
    assert data.count(b"FRAME\n") == 12
    assert "resize" not in (EXAMPLES / script).read_text(), "examples take the clip as the source filter gives it"


@pytest.mark.skipif(not hasattr(vs.core, "mv"), reason="needs vapoursynth-mvtools")
def test_external_scene_marks_reach_the_filter(tiny_8x: Path) -> None:
    """With the built-in detector off, MVTools' marks alone make the gap into bikes' cut at frame 30 copies."""
    try:
        runpy.run_path(str(EXAMPLES / "external_scenes.vpy"), init_globals={"src": str(BIKES), "weights": str(tiny_8x)})
        clip = vs.get_output(0)
        assert isinstance(clip, vs.VideoOutputTuple)
        before, first = clip.clip.get_frame(59).props, clip.clip.get_frame(60).props
    finally:
        vs.clear_outputs()
    assert (before["FLAVRInterpolated"], before["_SceneChangeNext"]) == (0, 1)
    assert (first["FLAVRInterpolated"], first["_SceneChangePrev"]) == (0, 1)


def test_encode_script(tiny_8x: Path, tmp_path: Path) -> None:
    """examples/encode.sh feeds each encoder a y4m stream; stand-in x264/x265 record their arguments and input."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for encoder in ("x264", "x265"):
        stub = bin_dir / encoder
        stub.write_text(f'#!/bin/sh\necho "$@" > {encoder}.args\nhead -c 40 > {encoder}.y4m\ncat > /dev/null\n')
        stub.chmod(0o755)
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{VSPIPE.parent}{os.pathsep}{os.environ['PATH']}"}
    source = Path(__file__).parent / "data" / "bikes_160x68.mp4"
    result = subprocess.run(
        ["bash", str(EXAMPLES / "encode.sh"), str(source), "-a", f"weights={tiny_8x}", "-e", "3"],
        check=False,
        cwd=tmp_path,
        env=env,
        capture_output=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr.decode(errors="replace")
    assert (tmp_path / "x264.args").read_text().split()[-3:] == ["-o", "out_x264.mkv", "-"]
    assert (tmp_path / "x265.args").read_text().split()[-3:] == ["-o", "out_x265.hevc", "-"]
    for encoder in ("x264", "x265"):
        assert (tmp_path / f"{encoder}.y4m").read_bytes().startswith(b"YUV4MPEG2 C420 W160 H68 F50:1 ")
