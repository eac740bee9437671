"""Where vsflavr finds checkpoints: precedence, substitutes, the not-found message, auto-download."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest

from vsflavr import weights as w
from vsflavr.checkpoint import CheckpointError, save_checkpoint
from vsflavr.download import DownloadError
from vsflavr.network import FLAVR


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory: pytest.TempPathFactory) -> dict[int, bytes]:
    """The bytes of narrow (tiny) 2x, 4x and 8x checkpoints."""
    d = tmp_path_factory.mktemp("checkpoints")
    files = {}
    for multi in (2, 4, 8):
        save_checkpoint(d / "c.pth", FLAVR(n_outputs=multi - 1, widths=(8, 16, 32, 64)))
        files[multi] = (d / "c.pth").read_bytes()
    return files


def put(directory: Path, data: bytes, name: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / name).write_bytes(data)
    return directory / name


def test_search_order(places: dict[str, Path], checkpoints: dict[int, bytes], tmp_path: Path) -> None:
    for name in ("repo", "data", "env"):
        put(places[name], checkpoints[2], "FLAVR_2x.pth")
    explicit = put(tmp_path / "mine", checkpoints[2], "my.pth")

    assert w.find_weights(2, explicit).path == explicit
    assert w.find_weights(2).path == places["env"] / "FLAVR_2x.pth"
    (places["env"] / "FLAVR_2x.pth").unlink()
    assert w.find_weights(2).path == places["data"] / "FLAVR_2x.pth"
    (places["data"] / "FLAVR_2x.pth").unlink()
    assert w.find_weights(2).path == places["repo"] / "FLAVR_2x.pth"


def test_search_dirs_name_their_origin(places: dict[str, Path]) -> None:
    assert w.search_dirs() == [
        (places["env"], "VSFLAVR_WEIGHTS_DIR"),
        (places["data"], "user data directory"),
        (places["repo"], "vsflavr checkout"),
    ]
    assert w.default_download_dir() == places["env"]


def test_weights_dir_lists_several(places: dict[str, Path], monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv(w.ENV_WEIGHTS_DIR, os.pathsep.join([str(tmp_path / "a"), str(tmp_path / "b")]))
    assert [d for d, _ in w.search_dirs()[:2]] == [tmp_path / "a", tmp_path / "b"]


def test_8x_serves_2x_with_stride_4(
    places: dict[str, Path], checkpoints: dict[int, bytes], caplog: pytest.LogCaptureFixture
) -> None:
    path = put(places["repo"], checkpoints[8], "FLAVR_8x.pth")
    with caplog.at_level(logging.INFO, logger="vsflavr"):
        found = w.find_weights(2)
    assert (found.path, found.multi, found.stride, found.outputs) == (path, 8, 4, (3,))
    assert found.checkpoint.architecture.multi == 8
    assert caplog.messages == [f"using the 8x checkpoint {path} for multi=2 (its outputs at 4/8)"]


def test_8x_serves_4x_and_4x_serves_2x(places: dict[str, Path], checkpoints: dict[int, bytes]) -> None:
    put(places["data"], checkpoints[8], "FLAVR_8x.pth")
    found = w.find_weights(4)
    assert (found.multi, found.stride, found.outputs) == (8, 2, (1, 3, 5))

    put(places["repo"], checkpoints[4], "FLAVR_4x.pth")
    found = w.find_weights(2)
    assert (found.multi, found.stride, found.outputs) == (4, 2, (1,))


def test_exact_checkpoint_anywhere_beats_a_larger_one(places: dict[str, Path], checkpoints: dict[int, bytes]) -> None:
    put(places["env"], checkpoints[8], "FLAVR_8x.pth")
    exact = put(places["repo"], checkpoints[2], "FLAVR_2x.pth")
    found = w.find_weights(2)
    assert (found.path, found.stride, found.outputs) == (exact, 1, (0,))


def test_explicit_directory_is_the_only_place(
    places: dict[str, Path], checkpoints: dict[int, bytes], tmp_path: Path
) -> None:
    put(places["env"], checkpoints[2], "FLAVR_2x.pth")
    mine = put(tmp_path / "mine", checkpoints[8], "FLAVR_8x.pth")
    assert w.find_weights(2, tmp_path / "mine").path == mine


def test_file_name_does_not_decide_the_multi(places: dict[str, Path], checkpoints: dict[int, bytes]) -> None:
    put(places["env"], checkpoints[8], "FLAVR_2x.pth")
    found = w.find_weights(2)
    assert (found.multi, found.stride) == (8, 4)


def test_checkpoint_that_cannot_serve(checkpoints: dict[int, bytes], tmp_path: Path) -> None:
    path = put(tmp_path, checkpoints[2], "two.pth")
    with pytest.raises(CheckpointError, match=r"two\.pth is a 2x checkpoint; it cannot give multi=4 \(use FLAVR_4x"):
        w.find_weights(4, path)


def test_missing_explicit_file(places: dict[str, Path], tmp_path: Path) -> None:
    with pytest.raises(w.WeightsNotFound, match="nope.pth does not exist"):
        w.find_weights(2, tmp_path / "nope.pth")


def test_unsupported_multi() -> None:
    with pytest.raises(ValueError, match="multi must be one of 2, 4, 8, got 3"):
        w.find_weights(3)


def test_nothing_found_names_the_command_and_every_directory(places: dict[str, Path]) -> None:
    with pytest.raises(w.WeightsNotFound) as caught:
        w.find_weights(2)
    message = str(caught.value)
    assert "python -m vsflavr download 2x" in message
    assert "FLAVR_2x.pth (or FLAVR_4x.pth, FLAVR_8x.pth, which also serve 2x)" in message
    for name, origin in (("env", "VSFLAVR_WEIGHTS_DIR"), ("data", "user data directory"), ("repo", "vsflavr checkout")):
        assert f"  {places[name]} ({origin})" in message


class FakeDownload:
    """Stands in for download_weights: records calls, writes a checkpoint or fails."""

    def __init__(self, data: bytes | None) -> None:
        self.data = data
        self.calls: list[tuple[int, Path]] = []

    def __call__(self, multi: int, directory: Path) -> Path:
        self.calls.append((multi, Path(directory)))
        if self.data is None:
            raise DownloadError("FLAVR_2x.pth", ["Google Drive (https://example): HTTP 404 Not Found"])
        return put(Path(directory), self.data, f"FLAVR_{multi}x.pth")


def test_no_download_unless_asked(places: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    fake = FakeDownload(None)
    monkeypatch.setattr(w, "download_weights", fake)
    with pytest.raises(w.WeightsNotFound):
        w.find_weights(2)
    monkeypatch.setenv(w.ENV_AUTO_DOWNLOAD, "1")
    with pytest.raises(w.WeightsNotFound):
        w.find_weights(2, auto_download=False)
    assert fake.calls == []


@pytest.mark.parametrize("by", ["env", "argument"])
def test_auto_download(
    by: str, places: dict[str, Path], checkpoints: dict[int, bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = FakeDownload(checkpoints[2])
    monkeypatch.setattr(w, "download_weights", fake)
    if by == "env":
        monkeypatch.setenv(w.ENV_AUTO_DOWNLOAD, "1")
    found = w.find_weights(2, auto_download=True if by == "argument" else None)
    assert fake.calls == [(2, places["env"])]
    assert (found.path, found.stride) == (places["env"] / "FLAVR_2x.pth", 1)


def test_failed_auto_download_says_why(places: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(w, "download_weights", FakeDownload(None))
    with pytest.raises(w.WeightsNotFound, match=r"(?s)download 2x.*automatic download failed.*HTTP 404"):
        w.find_weights(2, auto_download=True)


@pytest.fixture
def builtin(places: dict[str, Path], checkpoints: dict[int, bytes]) -> Path:
    """A stand-in for the shipped 2x built-in model (a tiny 2x checkpoint), with no 8x one installed."""
    return put(places["builtin"].parent, checkpoints[2], "flavr_s_2x.pth")


def test_builtin_model_is_the_last_resort_for_2x(
    places: dict[str, Path], checkpoints: dict[int, bytes], builtin: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="vsflavr"):
        assert w.resolve_checkpoint(None, 2).path == builtin
    assert "built-in model flavr_s_2x.pth" in caplog.text and "python -m vsflavr download 2x" in caplog.text
    assert w.resolve_checkpoint(None, None).path == builtin  # fractional rates too
    official = put(places["data"], checkpoints[2], "FLAVR_2x.pth")
    assert w.resolve_checkpoint(None, 2).path == official  # official weights win once present


def test_official_only_and_multis_the_builtin_cannot_make(builtin: Path) -> None:
    with pytest.raises(w.WeightsNotFound, match="python -m vsflavr download 2x"):
        w.resolve_checkpoint("official", 2)
    with pytest.raises(w.WeightsNotFound, match="python -m vsflavr download 4x"):
        w.resolve_checkpoint(None, 4)
    with pytest.raises(w.WeightsNotFound, match=r"no built-in model makes multi=4 \(installed: flavr_s_2x.pth \(2x\)\)"):
        w.resolve_checkpoint("builtin", 4)
    assert w.resolve_checkpoint("builtin", 2).path == builtin


def test_no_builtin_model_installed(places: dict[str, Path]) -> None:
    with pytest.raises(w.WeightsNotFound, match="built-in models are not installed in .*reinstall vsflavr"):
        w.resolve_checkpoint("builtin", 2)
    with pytest.raises(w.WeightsNotFound, match="python -m vsflavr download 2x"):
        w.resolve_checkpoint(None, 2)


def test_a_builtin_model_on_a_finer_grid_serves_every_multi_it_divides(
    places: dict[str, Path], checkpoints: dict[int, bytes], caplog: pytest.LogCaptureFixture
) -> None:
    put(places["builtin8"].parent, checkpoints[8], "flavr_s_8x.pth")
    for multi in (2, 4, 8, None):
        assert w.resolve_checkpoint(None, multi).architecture.multi == 8
        assert w.resolve_checkpoint("builtin", multi).path == places["builtin8"]
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="vsflavr"):
        w.resolve_checkpoint(None, 4)
    assert "built-in model flavr_s_8x.pth" in caplog.text and "python -m vsflavr download 4x" in caplog.text
    official = put(places["data"], checkpoints[4], "FLAVR_4x.pth")
    assert w.resolve_checkpoint(None, 4).path == official  # official weights still win once present


def test_with_both_builtin_models_2x_gets_its_own_and_the_rest_the_8x(
    places: dict[str, Path], checkpoints: dict[int, bytes], builtin: Path
) -> None:
    eight = put(places["builtin8"].parent, checkpoints[8], "flavr_s_8x.pth")
    expected = {2: builtin, 4: eight, 8: eight, None: eight}  # None: fractional rates and dedup, the finest grid
    for multi, path in expected.items():
        assert w.builtin_model(multi) == path
        assert w.resolve_checkpoint(None, multi).path == path
        assert w.resolve_checkpoint("builtin", multi).path == path
    assert w.builtin_model(3) is None


def test_fractional_rates_prefer_the_finest_grid(places: dict[str, Path], checkpoints: dict[int, bytes]) -> None:
    put(places["env"], checkpoints[2], "FLAVR_2x.pth")
    put(places["repo"], checkpoints[8], "FLAVR_8x.pth")
    assert w.resolve_checkpoint(None, None).architecture.multi == 8
    assert w.resolve_checkpoint(None, 2).architecture.multi == 2


def test_explicit_file_is_used_whatever_its_multi(checkpoints: dict[int, bytes], tmp_path: Path) -> None:
    mine = put(tmp_path, checkpoints[4], "mine.pth")
    assert w.resolve_checkpoint(mine, None).architecture.multi == 4
