"""Damaged and odd checkpoint files, generated from a seed: every one is refused with one clear line, or loads and runs.

The cases come from two well-formed files, the built-in model (vsflavr/models/flavr_s_2x.pth)
and a small checkpoint in the official layout (``state_dict`` with ``module.`` keys), each
also re-saved in torch's legacy (non-zip) format: truncations, byte flips, junk, zip members
dropped, shortened or garbled, mutated ``data.pkl`` pickles, damaged legacy pickles, and
well-formed files with odd contents (0-d tensors, an empty layer, metadata of the wrong type).
Every case goes through the loader; a seeded subset also through ``flavr()`` (a ``vs.Error``,
or frames out), and some through ``check-weights`` and ``info`` (exit 1 with one line, or 0).
"""

from __future__ import annotations

import io
import pickle
import random
import signal
import zipfile
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import torch
import vapoursynth as vs
from conftest import TINY_WIDTHS, make_checkpoint

import vsflavr
from vsflavr import weights
from vsflavr.__main__ import main
from vsflavr.checkpoint import CheckpointError, load_checkpoint
from vsflavr.network import FLAVR

SEED = 16
CASES_PER_FILE = {"builtin": 60, "builtin-legacy": 40, "official": 140, "official-legacy": 140}
"""Random damages per base file, on top of the odd well-formed files (fewer of the larger built-in model)."""
SECONDS_PER_CASE = 30
"""A case that takes longer than this counts as a hang."""

Case = tuple[str, bytes]


def _zip_members(data: bytes) -> list[tuple[zipfile.ZipInfo, bytes]]:
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        return [(info, z.read(info)) for info in z.infolist()]


def _rezip(members: list[tuple[zipfile.ZipInfo, bytes]]) -> bytes:
    """A zip of ``members`` stored uncompressed, as torch writes them."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as z:
        for info, payload in members:
            z.writestr(info.filename, payload)
    return out.getvalue()


def _flip(rng: random.Random, data: bytes, count: int) -> bytes:
    buf = bytearray(data)
    for _ in range(count):
        buf[rng.randrange(len(buf))] ^= 1 << rng.randrange(8)
    return bytes(buf)


def _mutate_pickle(rng: random.Random, pkl: bytes) -> bytes:
    """``data.pkl`` with a digit, a byte or a run of bytes changed, or cut short."""
    buf = bytearray(pkl)
    kind = rng.randrange(4)
    if kind == 0:  # a digit in a key, a storage name or a size: another digit
        digits = [i for i, b in enumerate(buf) if 0x30 <= b <= 0x39]
        if digits:
            buf[rng.choice(digits)] = rng.randrange(0x30, 0x3A)
    elif kind == 1:
        buf[rng.randrange(len(buf))] = rng.randrange(256)
    elif kind == 2:
        start = rng.randrange(len(buf))
        buf[start : start + 8] = rng.randbytes(8)
    else:
        del buf[rng.randrange(len(buf)) :]
    return bytes(buf)


def damaged(rng: random.Random, name: str, data: bytes) -> Iterator[Case]:
    """``CASES_PER_FILE[name]`` random damages of ``data``."""
    is_zip = data.startswith(b"PK")
    members = _zip_members(data) if is_zip else []
    kinds = ["truncate", "flip", "flip-many", "splice-junk"]
    kinds += ["zip-drop", "zip-shorten", "zip-garble", "data.pkl"] * 2 if is_zip else ["legacy-flip"] * 4
    for _ in range(CASES_PER_FILE[name]):
        kind = rng.choice(kinds)
        if kind == "truncate":
            case = data[: rng.choice([0, 1, 4, 64, rng.randrange(len(data)), len(data) - rng.randrange(1, 64)])]
        elif kind == "flip":
            case = _flip(rng, data, 1)
        elif kind == "flip-many":
            case = _flip(rng, data, rng.randrange(2, 64))
        elif kind == "splice-junk":
            start = rng.randrange(len(data))
            case = data[:start] + rng.randbytes(rng.randrange(1, 4096)) + data[start + rng.randrange(4096) :]
        elif kind == "legacy-flip":  # the legacy format's pickles sit at the start, before the raw storages
            buf = bytearray(data)
            for _ in range(rng.randrange(1, 4)):
                buf[rng.randrange(min(len(buf), 20000))] = rng.randrange(256)
            case = bytes(buf)
        else:
            index = rng.randrange(len(members))
            if kind == "data.pkl":
                index = next(i for i, (info, _) in enumerate(members) if info.filename.endswith("data.pkl"))
            info, payload = members[index]
            if kind == "zip-drop":
                changed = members[:index] + members[index + 1 :]
            else:
                if kind == "zip-shorten":
                    payload = payload[: rng.randrange(len(payload) + 1)]
                elif kind == "zip-garble":
                    payload = _flip(rng, payload, rng.randrange(1, 16)) if payload else b"\x00"
                else:
                    payload = _mutate_pickle(rng, payload)
                changed = [*members[:index], (info, payload), *members[index + 1 :]]
            case = _rezip(changed)
        yield f"{name}:{kind}", case


def _saved(obj: object, legacy: bool = False) -> bytes:
    out = io.BytesIO()
    torch.save(obj, out, _use_new_zipfile_serialization=not legacy)
    return out.getvalue()


def odd_files(rng: random.Random) -> Iterator[Case]:
    """Well-formed files (torch.save, plain pickle) whose contents are odd or wrong."""
    torch.manual_seed(SEED)
    state = {f"module.{k}": v for k, v in FLAVR(1, widths=TINY_WIDTHS).state_dict().items()}
    key = "module.encoder.layer1.0.conv1.0.weight"

    def with_(name: str, value: object) -> dict[str, object]:
        return {**state, name: value}

    states: dict[str, object] = {
        "0-d layer": with_(key, torch.tensor(1.0)),
        "0-d head": with_("module.outconv.1.weight", torch.tensor(2.0)),
        "0-d stem": with_("module.encoder.stem.0.weight", torch.tensor(2.0)),
        "zero-width layer": with_(key, torch.zeros(0, 8, 3, 3, 3)),
        "zero-width head": with_("module.outconv.1.weight", torch.zeros(0, 8, 7, 7)),
        "zero-width fuse": with_("module.feature_fuse.conv.0.weight", torch.zeros(8, 0, 1, 1)),
        "1-d layer": with_(key, torch.zeros(8)),
        "int weights": with_(key, torch.zeros(8, 8, 3, 3, 3, dtype=torch.int64)),
        "bool weights": with_(key, torch.zeros(8, 8, 3, 3, 3, dtype=torch.bool)),
        "complex weights": with_(key, torch.zeros(8, 8, 3, 3, 3, dtype=torch.complex64)),
        "nan weights": with_(key, torch.full((8, 8, 3, 3, 3), float("nan"))),
        "inf weights": with_(key, torch.full((8, 8, 3, 3, 3), float("inf"))),
        "sparse weights": with_("module.outconv.1.bias", torch.zeros(3).to_sparse()),
        "block gap": {**state, "module.encoder.layer1.7.conv1.0.weight": torch.zeros(8, 8, 3, 3, 3)},
        "block 10**9": {**state, f"module.encoder.layer2.{10**9}.x": torch.zeros(1)},
        "3 frames": with_("module.feature_fuse.conv.0.weight", torch.zeros(8, 24, 1, 1)),
        "head of 4": with_("module.outconv.1.weight", torch.zeros(4, 8, 7, 7)),
        "no tensors": {k: 1 for k in state},
        "empty": {},
        "int keys": {i: v for i, v in enumerate(state.values())},
    }
    metadata: list[object] = [[("skip", "blend")], "blend", 7, 1.5, torch.zeros(2), {"skip": ["mean"]}, {"skip": 3}]
    metadata += [
        {1: "a", "b": 2},
        {"skip": "sideways"},
        {"a": {"b": [1, {2: 3}]}},
        {"deep": [[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]},
    ]
    objects: dict[str, object] = {f"state: {k}": {"state_dict": v} for k, v in states.items()}
    objects |= {
        f"metadata {i}: {type(m).__name__}": {"state_dict": state, "vsflavr": m} for i, m in enumerate(metadata)
    }
    objects |= {
        "a list": list(state.values()),
        "a tensor": torch.zeros(3),
        "state_dict a list": {"state_dict": list(state.values())},
        "state_dict a tensor": {"state_dict": torch.zeros(3)},
        "a string": "FLAVR",
        "None": None,
    }
    for name, obj in objects.items():
        yield f"odd:{name}", _saved(obj)
        yield f"odd-legacy:{name}", _saved(obj, legacy=True)
    plain = [None, 1, "x", [1, 2], {"state_dict": {"a": 1}}, {"a": [1.5, None]}, b"bytes", (1, (2, (3,)))]
    for protocol in range(pickle.HIGHEST_PROTOCOL + 1):
        for value in plain:
            yield f"plain-pickle-p{protocol}", pickle.dumps(value, protocol=protocol)
    for size in (0, 1, 7, 512, 4096):
        yield "junk", rng.randbytes(size)
        yield "junk-zip-header", b"PK\x03\x04" + rng.randbytes(size)
        yield "junk-legacy-magic", pickle.dumps(0x1950A86A20F9469CFC6C, protocol=2) + rng.randbytes(size)
    yield "junk-text", b"junk" * 999


def all_cases(base: dict[str, bytes]) -> list[Case]:
    rng = random.Random(SEED)
    cases = list(odd_files(rng))
    for name, data in base.items():
        cases += damaged(rng, name, data)
    return cases


@pytest.fixture(scope="module")
def base_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    """The well-formed files damaged: built-in and official layout, each also in the legacy format."""
    official = make_checkpoint(tmp_path_factory.mktemp("fuzz") / "FLAVR_8x.pth", 7, seed=SEED)
    files = {"builtin": weights.BUILTIN_MODELS[2].read_bytes(), "official": official.read_bytes()}
    for name in list(files):
        files[f"{name}-legacy"] = _saved(torch.load(io.BytesIO(files[name]), weights_only=True), legacy=True)
    return files


def put_weights(data: bytes, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


class Hang(Exception):
    pass


def _limited(seconds: int, work: Callable[[], object]) -> object:
    """``work()``, failing with Hang when it runs longer than ``seconds``."""

    def alarm(signum: int, frame: object) -> None:
        raise Hang(f"ran longer than {seconds} s")

    previous = signal.signal(signal.SIGALRM, alarm)
    signal.alarm(seconds)
    try:
        return work()
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def _runs(model: FLAVR) -> None:
    """The loaded network gives output of the right shape on a small window."""
    with torch.inference_mode():
        out = model(torch.rand(1, 4, 3, 16, 16, generator=torch.Generator().manual_seed(0)))
    assert out.shape == (1, model.n_outputs, 3, 16, 16)
    assert out.isfinite().all(), "finite weights, non-finite frames"


def test_every_case_is_refused_with_one_line_or_loads_and_runs(
    base_files: dict[str, bytes], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cases = all_cases(base_files)
    assert len(cases) >= 500
    outcomes: Counter[str] = Counter()
    escaped = []
    path = tmp_path / "case.pth"
    for name, data in cases:
        path.write_bytes(data)
        try:
            checkpoint = _limited(SECONDS_PER_CASE, lambda: load_checkpoint(path))
            _runs(checkpoint.model)
            outcomes["loads and runs"] += 1
        except CheckpointError as exc:
            message = str(exc)
            assert message.startswith(f"weights file {path} ") and "\n" not in message, (name, message)
            outcomes["refused"] += 1
        except Exception as exc:  # noqa: BLE001 - what the test looks for
            escaped.append(f"{name}: {type(exc).__name__}: {exc}"[:300])
    kinds = Counter(name.split(":")[0] if name.startswith(("odd", "plain", "junk")) else name for name, _ in cases)
    with capsys.disabled():  # the case counts show in CI's log
        print(f"\ncheckpoint fuzz: {len(cases)} cases, {dict(outcomes)}; by source {dict(kinds)}")
    assert not escaped, "\n".join(escaped)
    assert outcomes["refused"] > 300 and outcomes["loads and runs"] > 0


@pytest.fixture
def small_clip() -> vs.VideoNode:
    clip = vs.core.std.BlankClip(width=24, height=16, format=vs.RGBS, length=3, fpsnum=25, color=[0.2, 0.5, 0.8])
    return vs.core.std.Expr([clip, clip.std.AddBorders(left=1).std.Crop(right=1)], ["x y + 0.5 *"])


def test_a_subset_through_flavr_gives_vs_error_or_frames(
    base_files: dict[str, bytes], tmp_path: Path, small_clip: vs.VideoNode, capsys: pytest.CaptureFixture[str]
) -> None:
    cases = random.Random(SEED + 1).sample(all_cases(base_files), 40)
    outcomes: Counter[str] = Counter()
    for i, (name, data) in enumerate(cases):
        path = tmp_path / f"case{i}.pth"
        path.write_bytes(data)
        try:
            out = vsflavr.flavr(small_clip, weights=path, device="cpu", precision="fp32", sc=False)
        except vs.Error as exc:
            assert str(exc).startswith("flavr: weights file ") and "\n" not in str(exc), (name, str(exc))
            outcomes["vs.Error"] += 1
            continue
        frame = _limited(SECONDS_PER_CASE, lambda out=out: out.get_frame(1))
        assert frame.props["FLAVRInterpolated"] == 1, name
        outcomes["frames"] += 1
    with capsys.disabled():  # the case counts show in CI's log
        print(f"\ncheckpoint fuzz through flavr(): {len(cases)} cases, {dict(outcomes)}")
    assert outcomes["vs.Error"] > 0 and outcomes["frames"] > 0


@pytest.mark.parametrize("command", ["check-weights", "info"])
def test_check_weights_and_info_on_damaged_files(
    command: str,
    base_files: dict[str, bytes],
    places: dict[str, Path],
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Exit 1 with the reason in one line when the file is unusable, 0 when it loads; never a traceback."""
    cases = random.Random(SEED + 2).sample(all_cases(base_files), 16)
    statuses: Counter[int] = Counter()
    for name, data in cases:
        path = put_weights(data, places["env"] / "FLAVR_2x.pth")
        try:
            load_checkpoint(path)
            usable = True
        except CheckpointError:
            usable = False
        status = main([command, str(path)] if command == "check-weights" else [command])
        out, err = capsys.readouterr()
        statuses[status] += 1
        assert "Traceback" not in out + err, name
        assert status == (0 if usable else 1), name
        if command == "info":
            (line,) = [line for line in out.splitlines() if line.startswith("    FLAVR_2x.pth  ")]
            assert ("unusable: weights file " in line) != usable, (name, line)
        elif not usable:
            assert out == "" and err.startswith(f"vsflavr check-weights: weights file {path} "), (name, err)
            assert err.count("\n") == 1, (name, err)
    with capsys.disabled():  # the case counts show in CI's log
        print(f"\n{command} on damaged files: {len(cases)} cases, exit statuses {dict(statuses)}")
    assert statuses[0] and statuses[1]


def test_check_weights_on_junk_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "junk.pth"
    path.write_bytes(b"junk" * 999)
    assert main(["check-weights", str(path)]) == 1
    out, err = capsys.readouterr()
    assert out == "" and err.count("\n") == 1
    assert err.startswith(f"vsflavr check-weights: weights file {path} is truncated, corrupt or not a PyTorch")
