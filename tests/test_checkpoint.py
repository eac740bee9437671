"""Checkpoint reading: official layout, bare state dicts, metadata, and clear errors for bad files."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest
import torch
from conftest import TINY_WIDTHS, make_checkpoint

from vsflavr.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from vsflavr.network import FLAVR


def _outputs(model: FLAVR) -> torch.Tensor:
    torch.manual_seed(0)
    with torch.inference_mode():
        return model(torch.rand(1, 4, 3, 16, 24))


@pytest.mark.parametrize("n_outputs", [1, 3, 7])
def test_round_trip_reads_architecture_from_shapes(tmp_path: Path, n_outputs: int) -> None:
    path = make_checkpoint(tmp_path / "c.pth", n_outputs, seed=n_outputs)
    torch.manual_seed(n_outputs)
    original = FLAVR(n_outputs, widths=TINY_WIDTHS).eval()
    loaded = load_checkpoint(path)
    arch = loaded.architecture
    assert (arch.multi, arch.widths, arch.blocks, arch.n_inputs, arch.skip) == (
        n_outputs + 1,
        TINY_WIDTHS,
        (2, 2, 2, 2),
        4,
        "mean",
    )
    assert arch.encoder_bias == (n_outputs > 1)
    assert not loaded.model.training
    torch.testing.assert_close(_outputs(loaded.model), _outputs(original), rtol=0, atol=0)


@pytest.mark.parametrize("layout", ["bare", "bare-prefixed", "wrapped-unprefixed"])
def test_accepts_bare_and_unprefixed_state_dicts(tmp_path: Path, layout: str) -> None:
    torch.manual_seed(3)
    model = FLAVR(1, widths=TINY_WIDTHS, blocks=(1, 2, 1, 1)).eval()
    state = model.state_dict()
    obj = {
        "bare": state,
        "bare-prefixed": {f"module.{k}": v for k, v in state.items()},
        "wrapped-unprefixed": {"state_dict": state, "epoch": 3},
    }[layout]
    torch.save(obj, tmp_path / "c.pth")
    loaded = load_checkpoint(tmp_path / "c.pth")
    assert loaded.architecture.blocks == (1, 2, 1, 1)
    torch.testing.assert_close(_outputs(loaded.model), _outputs(model), rtol=0, atol=0)


def test_metadata_and_blend_skip_survive_saving(tmp_path: Path) -> None:
    model = FLAVR(1, widths=TINY_WIDTHS, skip="blend")
    save_checkpoint(tmp_path / "b.pth", model, {"name": "test", "steps": 12})
    loaded = load_checkpoint(tmp_path / "b.pth")
    assert loaded.architecture.skip == "blend"
    assert loaded.metadata["name"] == "test" and loaded.metadata["steps"] == 12


def test_half_precision_file_loads_as_float32(tmp_path: Path) -> None:
    model = FLAVR(1, widths=TINY_WIDTHS).half()
    save_checkpoint(tmp_path / "h.pth", model)
    loaded = load_checkpoint(tmp_path / "h.pth")
    assert all(p.dtype == torch.float32 for p in loaded.model.parameters())


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match=r"FLAVR_2x\.pth does not exist"):
        load_checkpoint(tmp_path / "FLAVR_2x.pth")


def test_truncated_file(tmp_path: Path, tiny_2x: Path) -> None:
    data = tiny_2x.read_bytes()
    (tmp_path / "cut.pth").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match=r"cut\.pth is truncated, corrupt or not a PyTorch checkpoint"):
        load_checkpoint(tmp_path / "cut.pth")


def test_html_page_is_not_a_checkpoint(tmp_path: Path) -> None:
    (tmp_path / "page.pth").write_text("<!DOCTYPE html><html><title>Quota exceeded</title></html>")
    with pytest.raises(CheckpointError, match=r"page\.pth is an HTML page, not a checkpoint"):
        load_checkpoint(tmp_path / "page.pth")


def test_random_bytes_are_not_a_checkpoint(tmp_path: Path) -> None:
    (tmp_path / "noise.pth").write_bytes(bytes(range(256)) * 8)
    with pytest.raises(CheckpointError, match=r"noise\.pth is (truncated, )?corrupt or not a PyTorch checkpoint"):
        load_checkpoint(tmp_path / "noise.pth")


class Payload:
    def __reduce__(self) -> tuple:
        return (print, ("this must never run",))


def test_pickled_code_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    torch.save({"state_dict": {}, "hook": Payload()}, tmp_path / "evil.pth")
    with pytest.raises(CheckpointError, match=r"evil\.pth contains pickled Python objects or code"):
        load_checkpoint(tmp_path / "evil.pth")
    assert "must never run" not in capsys.readouterr().out


def test_legacy_pickle_with_code_is_refused(tmp_path: Path) -> None:
    (tmp_path / "old.pth").write_bytes(pickle.dumps(Payload(), protocol=2))
    with pytest.raises(CheckpointError, match=r"old\.pth contains pickled Python objects or code"):
        load_checkpoint(tmp_path / "old.pth")


def test_other_architecture(tmp_path: Path) -> None:
    torch.save({"state_dict": {"module.conv1.weight": torch.zeros(3, 3)}}, tmp_path / "rife.pth")
    with pytest.raises(CheckpointError, match=r"rife\.pth is not a FLAVR checkpoint: missing encoder\.stem\.0\.weight"):
        load_checkpoint(tmp_path / "rife.pth")


def test_missing_and_unexpected_keys_are_named(tmp_path: Path) -> None:
    state = FLAVR(1, widths=TINY_WIDTHS).state_dict()
    del state["decoder.1.upconv.0.bias"]
    state["decoder.9.extra"] = torch.zeros(1)
    torch.save({"state_dict": state}, tmp_path / "odd.pth")
    with pytest.raises(CheckpointError, match=r"1 missing keys \(decoder\.1\.upconv\.0\.bias\); 1 unexpected keys"):
        load_checkpoint(tmp_path / "odd.pth")


def test_shape_mismatch_is_named(tmp_path: Path) -> None:
    state = FLAVR(1, widths=TINY_WIDTHS).state_dict()
    state["decoder.0.conv.0.weight"] = torch.zeros(32, 64, 1, 3, 3)
    torch.save({"state_dict": state}, tmp_path / "shape.pth")
    with pytest.raises(CheckpointError, match=r"shape mismatches \(decoder\.0\.conv\.0\.weight \(32, 64, 1, 3, 3\)"):
        load_checkpoint(tmp_path / "shape.pth")


def test_not_a_dict(tmp_path: Path) -> None:
    torch.save(torch.zeros(3), tmp_path / "tensor.pth")
    with pytest.raises(CheckpointError, match=r"tensor\.pth holds a Tensor, not a dict of tensors"):
        load_checkpoint(tmp_path / "tensor.pth")
