"""precision='int8': the built-in model's shipped int8 network, inside VapourSynth, close to fp32; refused elsewhere.

Bound: every interpolated frame of the test footage within 45 dB PSNR of the fp32 frame (measured:
53.2 dB at worst, 61.9 dB on average over the first 40 source frames; the footage's rebuilt frames
themselves are about 30 dB from the truth, see docs "int8").  Skipped where OpenVINO is not installed.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path

import numpy as np
import pytest
import torch
import vapoursynth as vs
from conftest import open_bikes
from test_backends import FP32_TOLERANCE, bikes_window, reference

import vsflavr
from vsflavr import backends
from vsflavr.backends import OpenVINOBackend, select_backend
from vsflavr.backends.openvino import INT8_CHOICE, INT8_MODEL
from vsflavr.backends.tensorrt import weights_checksum
from vsflavr.checkpoint import load_checkpoint
from vsflavr.weights import BUILTIN_MODELS

ov = pytest.importorskip("openvino")

INT8_BOUND_DB = 45.0


def pixels(frame: vs.VideoFrame) -> np.ndarray:
    return np.clip(np.stack([np.asarray(frame[p]) for p in range(3)]), 0, 1)


def test_int8_in_vapoursynth_stays_close_to_fp32() -> None:
    clip = open_bikes(40)
    int8 = vsflavr.flavr(clip, weights="builtin", device="cpu", precision="int8")
    fp32 = vsflavr.flavr(clip, weights="builtin", device="cpu", precision="fp32", backend="openvino")
    assert int8.num_frames == fp32.num_frames == 80
    scores = []
    for n in range(1, 80, 2):
        a, b = int8.get_frame(n), fp32.get_frame(n)
        assert a.props["FLAVRInterpolated"] == b.props["FLAVRInterpolated"]
        if not a.props["FLAVRInterpolated"]:  # the gap at the cut into frame 30: copies
            continue
        mse = float(np.mean(np.square(pixels(a) - pixels(b))))
        scores.append(10 * math.log10(1 / mse) if mse else math.inf)
    assert len(scores) == 38 and min(scores) >= INT8_BOUND_DB  # 40 gaps, one at the cut, the last at the end
    assert max(scores) < 90  # int8 really ran: not fp32's frames
    for n in range(0, 80, 2):  # source frames pass through bit for bit, whatever the precision
        assert np.array_equal(pixels(int8.get_frame(n)), pixels(clip.get_frame(n // 2)))


def test_the_shipped_int8_network_is_marked_with_the_builtin_weights() -> None:
    network = ov.Core().read_model(INT8_MODEL)
    assert network.get_rt_info(["vsflavr", "weights_sha256"]).astype(str) == weights_checksum(
        load_checkpoint(BUILTIN_MODELS[2]).model
    )
    assert "FakeQuantize" in {op.get_type_name() for op in network.get_ops()}
    assert INT8_MODEL.with_suffix(".bin").stat().st_size < 4 * 2**20


def test_auto_precision_takes_int8_for_the_builtin_model_only_without_native_bf16(
    tiny_2x: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(backends, "cpu_supports_bf16", lambda: False)
    settings = select_backend("auto", torch.device("cpu"), "auto")
    builtin = load_checkpoint(BUILTIN_MODELS[2]).model
    assert settings.describe(builtin) == f"OpenVINO int8: {INT8_CHOICE}"
    assert not settings.describe(load_checkpoint(tiny_2x).model).startswith("OpenVINO int8")
    x = bikes_window()
    with caplog.at_level(logging.INFO, logger="vsflavr"):
        auto = settings.load(builtin)(x)
    assert f"precision int8 ({INT8_CHOICE})" in caplog.text
    torch.testing.assert_close(auto, OpenVINOBackend(precision="int8").load(builtin)(x), rtol=0, atol=0)
    fp32 = OpenVINOBackend(precision="fp32").load(builtin)(x)
    assert 0 < (auto - fp32).abs().max() < 0.1
    # Other weights keep fp32 (nothing to prefer), with the timed choice.
    out = settings.load(load_checkpoint(tiny_2x).model)(x)
    torch.testing.assert_close(out, reference(tiny_2x, x), rtol=0, atol=FP32_TOLERANCE)


def test_int8_is_refused_for_other_weights(tiny_2x: Path) -> None:
    assert select_backend("auto", torch.device("cpu"), "int8") == OpenVINOBackend(precision="int8")
    message = r"^precision='int8' exists for the built-in 2x model only \(flavr_s_2x: weights='builtin' with multi=2\); use"
    with pytest.raises(ValueError, match=message):
        OpenVINOBackend(precision="int8").load(load_checkpoint(tiny_2x).model)
    with pytest.raises(vs.Error, match=r"^flavr: precision='int8' exists for the built-in 2x model only"):
        vsflavr.flavr(open_bikes(8), weights=tiny_2x, device="cpu", precision="int8").get_frame(1)
    with pytest.raises(vs.Error, match=r"^flavr: precision='int8' exists for the built-in 2x model only"):
        vsflavr.flavr(open_bikes(8), multi=4, weights="builtin", device="cpu", precision="int8").get_frame(1)
    with pytest.raises(vs.Error, match=r"^flavr: precision='int8' runs on the CPU through OpenVINO"):
        vsflavr.flavr(open_bikes(8), weights="builtin", device="cpu", precision="int8", backend="torch")
