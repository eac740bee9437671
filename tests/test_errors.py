"""Bad input gets a vs.Error that names the problem and the fix, before any work is done."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import vapoursynth as vs
from conftest import open_bikes

import vsflavr

core = vs.core


@pytest.fixture
def rgbs() -> vs.VideoNode:
    return open_bikes(6)


def call(clip: vs.VideoNode, weights: Path, **kwargs: object) -> vs.VideoNode:
    return vsflavr.flavr(clip, weights=weights, device="cpu", **kwargs)


def test_variable_format(rgbs: vs.VideoNode, tiny_2x: Path) -> None:
    mixed = core.std.Splice([rgbs, rgbs.resize.Point(format=vs.RGBH)], mismatch=True)
    with pytest.raises(vs.Error, match="flavr: the clip has a variable format"):
        call(mixed, tiny_2x)


def test_variable_size(rgbs: vs.VideoNode, tiny_2x: Path) -> None:
    mixed = core.std.Splice([rgbs, rgbs.resize.Point(80, 34)], mismatch=True)
    with pytest.raises(vs.Error, match="flavr: the clip has a variable frame size"):
        call(mixed, tiny_2x)


@pytest.mark.parametrize("kwargs", [{}, {"multi": 2}])
def test_variable_rate_needs_a_target_rate(rgbs: vs.VideoNode, tiny_2x: Path, kwargs: dict) -> None:
    mixed = core.std.Splice([rgbs, rgbs.std.AssumeFPS(fpsnum=30)], mismatch=True)
    with pytest.raises(vs.Error, match=r"^flavr: the clip has a variable frame rate.*give a target rate.*fps_num=60000"):
        call(mixed, tiny_2x, **kwargs)


@pytest.mark.parametrize("multi", [1, 0, -2, 2.5, "2", True])
def test_bad_multi(rgbs: vs.VideoNode, tiny_2x: Path, multi: object) -> None:
    with pytest.raises(vs.Error, match=r"flavr: multi must be an integer >= 2"):
        call(rgbs, tiny_2x, multi=multi)


def test_multi_the_checkpoint_cannot_make(rgbs: vs.VideoNode, tiny_2x: Path) -> None:
    with pytest.raises(vs.Error, match=r"flavr: multi=4 cannot be made by the loaded 2x checkpoint .*tiny_2x\.pth"):
        call(rgbs, tiny_2x, multi=4)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"fps_num": 0}, r"fps_num must be a positive integer"),
        ({"fps_num": -50}, r"fps_num must be a positive integer"),
        ({"fps_num": 50, "fps_den": 0}, r"fps_den must be a positive integer"),
        ({"fps_num": 24}, r"target rate 24/1 is slower than the clip's 25"),
        ({"fps_den": 1001}, r"fps_den needs fps_num too"),
        ({"fps_num": 50, "multi": 2}, r"either multi or fps_num/fps_den, not both"),
    ],
)
def test_bad_target_rate(rgbs: vs.VideoNode, tiny_2x: Path, kwargs: dict, message: str) -> None:
    with pytest.raises(vs.Error, match="flavr: .*" + message):
        call(rgbs, tiny_2x, **kwargs)


def test_missing_weights_file(rgbs: vs.VideoNode, tmp_path: Path) -> None:
    with pytest.raises(vs.Error, match=r"flavr: weights file .*FLAVR_2x\.pth does not exist"):
        call(rgbs, tmp_path / "FLAVR_2x.pth")


def test_corrupt_weights_file(rgbs: vs.VideoNode, tmp_path: Path, tiny_2x: Path) -> None:
    (tmp_path / "cut.pth").write_bytes(tiny_2x.read_bytes()[:1000])
    with pytest.raises(vs.Error, match=r"flavr: weights file .*cut\.pth is truncated, corrupt"):
        call(rgbs, tmp_path / "cut.pth")


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_unavailable_gpu(rgbs: vs.VideoNode, tiny_2x: Path) -> None:
    with pytest.raises(vs.Error, match=r"flavr: device 0 is not available: torch sees no CUDA GPU; use device='cpu'"):
        vsflavr.flavr(rgbs, weights=tiny_2x, device=0)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"device": "tpu"}, r"device 'tpu' is not a device name"),
        ({"precision": "fp16"}, r"precision='fp16' is for GPUs"),
        ({"precision": "int4"}, r"precision must be 'auto', 'fp32', 'fp16', 'bf16' or 'int8'"),
        ({"sc_threshold": 1.5}, r"sc_threshold must be a number between 0 and 1"),
        ({"sc": "yes"}, r"sc must be True or False"),
    ],
)
def test_bad_options(rgbs: vs.VideoNode, tiny_2x: Path, kwargs: dict, message: str) -> None:
    with pytest.raises(vs.Error, match="flavr: " + message):
        vsflavr.flavr(rgbs, weights=tiny_2x, **{"device": "cpu", **kwargs})


def test_not_a_clip(tiny_2x: Path) -> None:
    with pytest.raises(vs.Error, match="flavr: clip must be a VideoNode"):
        vsflavr.flavr("video.mkv", weights=tiny_2x)  # type: ignore[arg-type]


class _Payload:
    def __reduce__(self) -> tuple:
        return (print, ("never",))


def test_weights_with_pickled_code_are_refused(rgbs: vs.VideoNode, tmp_path: Path) -> None:
    torch.save({"state_dict": {}, "hook": _Payload()}, tmp_path / "evil.pth")
    with pytest.raises(vs.Error, match=r"flavr: weights file .*evil\.pth contains pickled Python objects or code"):
        call(rgbs, tmp_path / "evil.pth")


def test_weights_of_another_architecture(rgbs: vs.VideoNode, tmp_path: Path) -> None:
    torch.save({"state_dict": {"module.block0.conv.weight": torch.zeros(8, 3, 3, 3)}}, tmp_path / "rife.pth")
    with pytest.raises(vs.Error, match=r"flavr: weights file .*rife\.pth is not a FLAVR checkpoint"):
        call(rgbs, tmp_path / "rife.pth")


def test_multi_no_official_checkpoint_makes(rgbs: vs.VideoNode) -> None:
    with pytest.raises(vs.Error, match=r"flavr: the official FLAVR checkpoints make multi 2, 4 and 8, not 3"):
        vsflavr.flavr(rgbs, multi=3, device="cpu")


def test_no_official_weights_anywhere_names_the_download(
    rgbs: vs.VideoNode, tmp_path: Path, places: dict[str, Path]
) -> None:
    with pytest.raises(
        vs.Error,
        match=r"(?s)flavr: no FLAVR checkpoint for multi=2.*env.*data.*repo.*"
        r"python -m vsflavr download 2x",
    ):
        vsflavr.flavr(rgbs, weights="official", device="cpu")
    assert not any(tmp_path.rglob("*.pth")), "nothing may be downloaded unless asked"


def test_backend_that_cannot_run_is_a_vs_error(rgbs: vs.VideoNode, tiny_2x: Path) -> None:
    with pytest.raises(vs.Error, match=r"^flavr: backend='trt' needs a CUDA GPU"):
        call(rgbs, tiny_2x, backend="trt")
    with pytest.raises(vs.Error, match=r"^flavr: backend must be one of 'auto', 'torch', 'compile', 'trt'"):
        call(rgbs, tiny_2x, backend="fast")
    with pytest.raises(vs.Error, match=r"^flavr: tile_size must be a multiple of 8, at least 64"):
        call(rgbs, tiny_2x, tile_size=100)
