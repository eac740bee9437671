"""Every example script runs under vspipe, as a user runs it, and gives the documented count and rate."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).parent.parent / "examples"
VSPIPE = Path(sys.executable).parent / "vspipe"


def vspipe(*args: str) -> subprocess.CompletedProcess[bytes]:
    result = subprocess.run([str(VSPIPE), *args], capture_output=True, timeout=300)
    assert result.returncode == 0, result.stderr.decode(errors="replace")
    return result


@pytest.mark.parametrize(
    ("script", "frames", "rate"),
    [("flavr_2x.vpy", 500, "F50:1"), ("film_to_5994.vpy", 625, "F60000:1001")],
)
def test_example_under_vspipe(tiny_8x: Path, tmp_path: Path, script: str, frames: int, rate: str) -> None:
    info = vspipe("--info", "-a", f"weights={tiny_8x}", str(EXAMPLES / script), "-").stdout.decode()
    assert f"Frames: {frames}" in info
    out = tmp_path / "out.y4m"
    vspipe("-c", "y4m", "-e", "11", "-a", f"weights={tiny_8x}", str(EXAMPLES / script), str(out))
    data = out.read_bytes()
    header = data.split(b"\n", 1)[0].decode()
    assert header.startswith("YUV4MPEG2 C420p10 W160 H68 ") and f" {rate} " in header
    assert data.count(b"FRAME\n") == 12
