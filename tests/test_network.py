"""The network is the official FLAVR: parity with the reference code's outputs and parameter counts."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from parity import fixture, write_official_checkpoint

from vsflavr.checkpoint import load_checkpoint
from vsflavr.network import FLAVR, channel_mean


@pytest.mark.parametrize(("name", "multi", "params"), [("flavr_2x", 2, 42_061_571), ("flavr_8x", 8, 42_121_941)])
def test_official_parity(tmp_path: Path, name: str, multi: int, params: int) -> None:
    meta, arrays = fixture(name)
    checkpoint = load_checkpoint(write_official_checkpoint(meta, tmp_path / f"FLAVR_{multi}x.pth"))
    assert checkpoint.architecture.multi == multi
    assert sum(p.numel() for p in checkpoint.model.parameters()) == params

    frames = torch.from_numpy(arrays["inputs"]).transpose(0, 1)  # (B, 4, 3, H, W)
    expected = torch.from_numpy(arrays["outputs"]).transpose(0, 1)  # (B, n, 3, H, W)
    with torch.inference_mode():
        out = checkpoint.model(frames)
    assert out.shape == expected.shape
    assert (out - expected).abs().max().item() <= 1e-4


def test_official_defaults_follow_reference_bias_rule() -> None:
    assert not FLAVR(1).encoder_bias
    assert FLAVR(3).encoder_bias and FLAVR(7).encoder_bias
    assert "encoder.stem.0.bias" not in FLAVR(1, widths=(8, 16, 32, 64)).state_dict()


def test_narrow_configuration() -> None:
    model = FLAVR(1, widths=(16, 32, 64, 128), skip="blend")
    assert 2_500_000 < sum(p.numel() for p in model.parameters()) < 2_800_000
    with torch.inference_mode():
        out = model(torch.rand(2, 4, 3, 24, 40))
    assert out.shape == (2, 1, 3, 24, 40)


def test_blend_skip_adds_the_linear_blend_at_each_phase() -> None:
    model = FLAVR(3, widths=(8, 16, 32, 64), skip="blend").eval()
    torch.nn.init.zeros_(model.outconv[1].weight)
    torch.nn.init.zeros_(model.outconv[1].bias)
    frames = torch.rand(1, 4, 3, 16, 16)
    with torch.inference_mode():
        out = model(frames)
    for k, t in enumerate((0.25, 0.5, 0.75)):
        blend = (1 - t) * frames[:, 1] + t * frames[:, 2]
        torch.testing.assert_close(out[:, k], blend)


def test_mean_skip_adds_the_input_mean() -> None:
    model = FLAVR(1, widths=(8, 16, 32, 64)).eval()
    torch.nn.init.zeros_(model.outconv[1].weight)
    torch.nn.init.zeros_(model.outconv[1].bias)
    frames = torch.rand(1, 4, 3, 16, 16)
    with torch.inference_mode():
        out = model(frames)
    mean = frames.mean(dim=(1, 3, 4)).view(1, 1, 3, 1, 1).expand_as(out)
    torch.testing.assert_close(out, mean)


@pytest.mark.parametrize("kwargs", [{"n_outputs": 0}, {"skip": "flow"}, {"blocks": (2, 2, 0, 2)}])
def test_rejects_impossible_configurations(kwargs: dict) -> None:
    with pytest.raises(ValueError):
        FLAVR(**kwargs)


def test_a_given_mean_replaces_the_frames_own() -> None:
    """The runner hands every tile the whole frame's mean; given the frames' own, nothing changes."""
    torch.manual_seed(0)
    model = FLAVR(1, widths=(8, 16, 32, 64)).eval()
    frames = torch.rand(2, 4, 3, 32, 40)
    with torch.inference_mode():
        own = model(frames)
        torch.testing.assert_close(model(frames, channel_mean(frames)), own, rtol=0, atol=0)
        assert channel_mean(frames).shape == (2, 3, 1, 1, 1)
        assert not torch.allclose(model(frames, channel_mean(frames) + 0.1), own)
