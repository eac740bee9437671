"""``backend="auto"`` on the CPU: the timed choice and its cache, with fake backends on a fake clock
(no speed is measured or asserted), then once end to end with the real backends."""

from __future__ import annotations

import json
import logging
import math
import os
import threading
from pathlib import Path

import pytest
import torch
from conftest import TINY_WIDTHS
from test_backends import FP32_TOLERANCE, frames, reference

from vsflavr.backends import AutoCPUBackend, select_backend
from vsflavr.backends import cpu_auto as auto_module
from vsflavr.backends import cpu_timing
from vsflavr.backends.cpu_timing import (
    ENV_TIMING,
    Timing,
    TimingCache,
    flop_per_pixel,
    time_forwards,
    timing_key,
    timing_size,
)
from vsflavr.checkpoint import load_checkpoint
from vsflavr.flops import pass_flop
from vsflavr.network import FLAVR

CPU = torch.device("cpu")
SHAPE = (1, 4, 3, 40, 56)


class FakeClock:
    """``time.perf_counter`` that moves only when a fake backend runs."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class FakeBackend:
    """A forward function taking ``seconds`` of fake time a pass (or failing); it records the shapes it saw."""

    def __init__(self, clock: FakeClock, seconds: float, fails: bool = False) -> None:
        self.clock, self.seconds, self.fails = clock, seconds, fails
        self.shapes: list[tuple[int, ...]] = []
        self._lock = threading.Lock()

    def __call__(self, x: torch.Tensor, mean: torch.Tensor) -> torch.Tensor:
        with self._lock:
            self.shapes.append(tuple(x.shape))
        if self.fails:
            raise RuntimeError("no kernel for this\nsecond line")
        self.clock.now += self.seconds
        return x[:, :1]


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    fake = FakeClock()
    monkeypatch.setattr(cpu_timing.time, "perf_counter", fake)
    return fake


def model() -> FLAVR:
    torch.manual_seed(0)
    return FLAVR(1, widths=TINY_WIDTHS).eval()


@pytest.mark.parametrize(("openvino_s", "torch_s", "expected"), [(0.2, 0.5, "openvino"), (0.9, 0.3, "torch")])
def test_the_faster_candidate_is_chosen(clock: FakeClock, openvino_s: float, torch_s: float, expected: str) -> None:
    fakes = {"openvino": FakeBackend(clock, openvino_s), "torch": FakeBackend(clock, torch_s)}
    x = torch.rand(*SHAPE)
    timing = time_forwards(fakes, x, x.mean(dim=(1, 3, 4)), 56, 40)
    assert timing.chosen == expected
    assert timing.seconds == pytest.approx({"openvino": openvino_s, "torch": torch_s})
    assert timing.timed_size == (56, 40) and timing.failures == {}
    assert [len(f.shapes) for f in fakes.values()] == [1 + cpu_timing.ROUNDS] * 2  # one untimed pass, then rounds


def test_close_or_disturbed_candidates_get_more_rounds(clock: FakeClock) -> None:
    close = {"openvino": FakeBackend(clock, 0.20), "torch": FakeBackend(clock, 0.22)}
    x = torch.rand(*SHAPE)
    assert time_forwards(close, x, x, 56, 40).chosen == "openvino"
    assert [len(f.shapes) for f in close.values()] == [1 + cpu_timing.MAX_ROUNDS] * 2

    class Disturbed(FakeBackend):
        """Its first passes are slowed by other work; then it runs at its own speed."""

        def __call__(self, x: torch.Tensor, mean: torch.Tensor) -> torch.Tensor:
            self.seconds = 0.7 if len(self.shapes) < 3 else 0.4
            return super().__call__(x, mean)

    disturbed = {"openvino": Disturbed(clock, 0.0), "torch": FakeBackend(clock, 0.57)}
    timing = time_forwards(disturbed, x, x, 56, 40)
    assert timing.chosen == "openvino" and timing.seconds["openvino"] == pytest.approx(0.4)


def test_a_failing_candidate_loses_and_says_why(clock: FakeClock) -> None:
    fakes = {"openvino": FakeBackend(clock, 0.1, fails=True), "torch": FakeBackend(clock, 5.0)}
    x = torch.rand(*SHAPE)
    timing = time_forwards(fakes, x, x, 56, 40)
    assert timing.chosen == "torch" and math.isinf(timing.seconds["openvino"])
    assert timing.failures == {"openvino": "RuntimeError: no kernel for this"}
    assert "openvino failed (RuntimeError: no kernel for this)" in timing.describe()
    fakes["torch"].fails = True
    with pytest.raises(RuntimeError, match=r"^openvino: RuntimeError: no kernel for this; torch: RuntimeError"):
        time_forwards(fakes, x, x, 56, 40)


def test_large_frames_are_timed_on_a_centre_crop_within_the_budget(clock: FakeClock) -> None:
    per_pixel = 8.1e6  # the official network
    assert timing_size(per_pixel, 256, 256) == (256, 256)  # within the budget: the frame itself
    width, height = timing_size(per_pixel, 1920, 1080)
    assert per_pixel * width * height <= cpu_timing.BUDGET_FLOP and width % 8 == height % 8 == 0
    assert width / height == pytest.approx(1920 / 1080, rel=0.05) and width * height > 0.8 * 6e11 / per_pixel
    assert timing_size(per_pixel, 4096, 64) == (1152, 64)  # a strip keeps its height and is cut in width
    assert flop_per_pixel(model()) == pass_flop(model(), 64, 64) / 4096
    fake = FakeBackend(clock, 1.0)
    x = torch.rand(1, 4, 3, 100, 200)
    time_forwards({"torch": fake}, x, x, 64, 48)
    assert set(fake.shapes) == {(1, 4, 3, 48, 64)}


def test_cache_round_trip_and_what_the_key_holds(tmp_path: Path) -> None:
    cache = TimingCache(tmp_path / "timing")
    key = timing_key(model(), "fp32", {"openvino": "2026.4.1"})
    assert {"cpu", "vsflavr", "torch", "network", "precision", "environment", "openvino"} <= set(key)
    timing = Timing("torch", {"torch": 0.25, "openvino": math.inf}, (56, 40), {"openvino": "RuntimeError: x"})
    assert cache.get(key, SHAPE) is None
    cache.put(key, SHAPE, timing)
    assert cache.get(key, SHAPE) == timing
    assert cache.stored(key) == [(SHAPE, timing)]
    # Another shape, precision, CPU, library version or network is another entry.
    assert cache.get(key, (1, 4, 3, 48, 56)) is None
    for changed in ({"precision": "bf16"}, {"cpu": "another CPU"}, {"openvino": "2027.0"}, {"torch": "3.0"}):
        assert cache.get({**key, **changed}, SHAPE) is None
    assert cache.get(timing_key(FLAVR(1, widths=(8, 16, 32, 48)), "fp32", {"openvino": "2026.4.1"}), SHAPE) is None
    # A damaged file is timed again, not trusted, and the new timing replaces it.
    cache.path(key, SHAPE).write_text("{not json")
    assert cache.get(key, SHAPE) is None and cache.stored(key) == []
    assert cache.put(key, SHAPE, timing) == timing and cache.get(key, SHAPE) == timing
    assert [p.name for p in cache.directory.iterdir()] == [cache.path(key, SHAPE).name]  # no partial file left


def test_the_first_timing_stored_stays(tmp_path: Path) -> None:
    """Two processes timing one size at once (two chunks of `render` on one machine) keep the first answer."""
    first, second = TimingCache(tmp_path), TimingCache(tmp_path)  # one per process
    torch_won = Timing("torch", {"torch": 0.2, "openvino": 0.21}, (56, 40), {})
    openvino_won = Timing("openvino", {"torch": 0.22, "openvino": 0.21}, (56, 40), {})
    assert first.put({"a": 1}, SHAPE, torch_won) == torch_won
    assert second.put({"a": 1}, SHAPE, openvino_won) == torch_won
    assert second.get({"a": 1}, SHAPE) == torch_won and len(list(tmp_path.iterdir())) == 1


def test_a_file_system_without_hard_links_still_keeps_the_timing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def no_links(src: object, dst: object) -> None:
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(os, "link", no_links)
    timing = Timing("torch", {"torch": 0.2, "openvino": 0.3}, (56, 40), {})
    assert TimingCache(tmp_path).put({"a": 1}, SHAPE, timing) == timing
    assert TimingCache(tmp_path).get({"a": 1}, SHAPE) == timing and len(list(tmp_path.iterdir())) == 1


def test_the_key_holds_the_isa_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ONEDNN_MAX_CPU_ISA", raising=False)
    plain = timing_key(model(), "fp32")
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX2")
    assert timing_key(model(), "fp32") != plain


def test_an_unwritable_cache_is_logged_and_the_run_goes_on(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    cache = TimingCache(blocker / "timing")
    with caplog.at_level(logging.WARNING, logger="vsflavr"):
        cache.put({"a": 1}, SHAPE, Timing("torch", {"torch": 1.0}, (56, 40), {}))
    assert "cannot keep the CPU timing" in caplog.text


def timed_choice(clock: FakeClock, cache: TimingCache, openvino_s: float, torch_s: float) -> auto_module._TimedChoice:
    fakes = {"openvino": FakeBackend(clock, openvino_s), "torch": FakeBackend(clock, torch_s)}
    return auto_module._TimedChoice(fakes, cache, {"network": "fake"}, per_pixel=1.0)


def test_a_size_is_timed_once_then_read_from_the_cache(
    clock: FakeClock, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    cache = TimingCache(tmp_path)
    choice = timed_choice(clock, cache, openvino_s=0.5, torch_s=0.2)
    fakes = choice._forwards
    x = torch.rand(*SHAPE)
    with caplog.at_level(logging.INFO, logger="vsflavr"):
        for _ in range(3):
            choice(x, x)
    assert len(fakes["openvino"].shapes) == 1 + cpu_timing.ROUNDS  # timed, then never again
    assert len(fakes["torch"].shapes) == 1 + cpu_timing.ROUNDS + 3  # timed, then every call
    assert "backend for 56x40 windows: PyTorch (timed now: torch 0.2 s, openvino 0.5 s a pass at 56x40)" in caplog.text
    # A new process (a new choice on the same cache) starts with the answer, even if speeds changed since.
    later = timed_choice(clock, cache, openvino_s=0.1, torch_s=9.0)
    with caplog.at_level(logging.INFO, logger="vsflavr"):
        later(x, x)
    assert later._forwards["openvino"].shapes == [] and len(later._forwards["torch"].shapes) == 1
    assert "timing kept from an earlier run" in caplog.text
    # Another size is timed on its own.
    later(torch.rand(1, 4, 3, 48, 64), x)
    assert len(later._forwards["openvino"].shapes) == 2 + cpu_timing.ROUNDS


def test_a_process_that_timed_second_runs_what_the_first_kept(
    clock: FakeClock, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    cache = TimingCache(tmp_path)
    choice = timed_choice(clock, cache, openvino_s=0.1, torch_s=0.3)  # this process finds OpenVINO faster
    other = Timing("torch", {"torch": 0.2, "openvino": 0.25}, (56, 40), {})
    timing = choice._forwards["torch"]

    def torch_while_another_process_stores(x: torch.Tensor, mean: torch.Tensor) -> torch.Tensor:
        if not cache.path({"network": "fake"}, SHAPE).exists():
            TimingCache(tmp_path).put({"network": "fake"}, SHAPE, other)  # it finished timing first
        return timing(x, mean)

    choice._forwards["torch"] = torch_while_another_process_stores
    x = torch.rand(*SHAPE)
    with caplog.at_level(logging.INFO, logger="vsflavr"):
        choice(x, x)
        choice(x, x)
    assert choice._chosen == {SHAPE: "torch"} and cache.get({"network": "fake"}, SHAPE) == other
    assert len(timing.shapes) == 1 + cpu_timing.ROUNDS + 2  # timed, then both calls
    assert "PyTorch (timed now, but another process kept its timing first: torch 0.2 s" in caplog.text


def test_concurrent_first_calls_time_once(clock: FakeClock, tmp_path: Path) -> None:
    choice = timed_choice(clock, TimingCache(tmp_path), openvino_s=0.1, torch_s=0.3)
    x = torch.rand(*SHAPE)
    threads = [threading.Thread(target=choice, args=(x, x)) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(choice._forwards["torch"].shapes) == 1 + cpu_timing.ROUNDS
    assert len(choice._forwards["openvino"].shapes) == 1 + cpu_timing.ROUNDS + 6
    assert len(list(tmp_path.glob("*.json"))) == 1


def test_without_timing_or_openvino_the_rule_and_info_say_so(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    settings = select_backend("auto", CPU, "fp32", tile_size=128)
    assert settings == AutoCPUBackend(precision="fp32", tile_size=128)
    monkeypatch.setenv(ENV_TIMING, "0")
    assert settings.describe(model()) == f"{auto_module.RULE} ({ENV_TIMING}=0: not timed)"
    monkeypatch.delenv(ENV_TIMING)
    assert AutoCPUBackend(timing=False).describe(model()).startswith("OpenVINO: by rule")
    empty = AutoCPUBackend(cache_dir=tmp_path)
    assert empty.describe(model()).startswith("timed: OpenVINO or PyTorch, whichever runs faster")
    monkeypatch.setattr(auto_module, "openvino_available", lambda: False)
    assert settings.describe(model()) == auto_module.NO_OPENVINO
    assert "pip install vsflavr[openvino]" in auto_module.NO_OPENVINO


def test_auto_end_to_end_times_stores_and_matches_fp32(tiny_2x: Path, tmp_path: Path) -> None:
    pytest.importorskip("openvino")
    settings = AutoCPUBackend(precision="fp32", cache_dir=tmp_path)
    x = frames(batch=1)
    out = settings.load(load_checkpoint(tiny_2x).model)(x)
    torch.testing.assert_close(out, reference(tiny_2x, x), rtol=0, atol=FP32_TOLERANCE)
    (stored,) = list(tmp_path.glob("*.json"))
    record = json.loads(stored.read_text())
    assert record["shape"] == list(x.shape) and record["timing"]["chosen"] in ("openvino", "torch")
    assert set(record["timing"]["seconds"]) == {"openvino", "torch"}
    described = settings.describe(load_checkpoint(tiny_2x).model)
    assert described.startswith(f"timed: {x.shape[-1]}x{x.shape[-2]} ") and "a pass at" in described
    # Without timing the rule runs OpenVINO, and nothing more is stored.
    rule = AutoCPUBackend(precision="fp32", cache_dir=tmp_path, timing=False).load(load_checkpoint(tiny_2x).model)
    torch.testing.assert_close(rule(x), out, rtol=0, atol=FP32_TOLERANCE)
    assert len(list(tmp_path.glob("*.json"))) == 1
