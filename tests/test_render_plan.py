"""The pure parts of `render`: chunk plan, shot starts, manifest, y4m hashing (no Ray, no vspipe)."""

from __future__ import annotations

import hashlib
import io
import itertools
import json
from fractions import Fraction
from pathlib import Path

import pytest
from conftest import BIKES_CUTS_INTO, open_bikes

import vsflavr
from vsflavr.render import manifest
from vsflavr.render.plan import plan_chunks, shot_starts
from vsflavr.render.y4m import Y4MError, frame_bytes, tee_frames
from vsflavr.schedule import Schedule


@pytest.mark.parametrize(
    ("total", "starts", "target"),
    [
        (160, [60, 152], 50),
        (1000, [3, 4, 500, 998], 100),
        (7, [], 100),
        (500, list(range(10, 500, 10)), 35),
        (9, [], 1),
    ],
)
def test_plan_covers_the_output_and_cuts_only_at_shot_starts(total: int, starts: list[int], target: int) -> None:
    chunks = plan_chunks(total, starts, target)
    assert chunks[0].start == 0 and chunks[-1].end == total
    assert [c.index for c in chunks] == list(range(len(chunks)))
    for a, b in itertools.pairwise(chunks):
        assert a.end == b.start  # no gap, no overlap
    shots = list(itertools.pairwise(sorted({0, total, *starts})))
    for c in chunks:
        assert 0 < c.frames <= target
        for edge in (c.start, c.end):
            if edge not in {0, total, *starts}:  # only inside a shot too long for one chunk
                shot = next((a, b) for a, b in shots if a < edge < b)
                assert shot[1] - shot[0] > target
    assert len(chunks) <= len(shots) + sum((b - a) // target for a, b in shots)


def test_plan_groups_short_shots_and_splits_long_ones_evenly() -> None:
    spans = [(c.start, c.end) for c in plan_chunks(160, [60, 152], 50)]
    assert spans == [(0, 30), (30, 60), (60, 106), (106, 152), (152, 160)]
    spans = [(c.start, c.end) for c in plan_chunks(100, [10, 20, 30, 90], 40)]
    assert spans == [(0, 30), (30, 60), (60, 100)]


@pytest.mark.parametrize("bad", [(0, [], 10), (10, [], 0)])
def test_plan_refuses_nothing_to_do(bad: tuple[int, list[int], int]) -> None:
    with pytest.raises(ValueError):
        plan_chunks(*bad)


def test_shot_starts_are_the_first_output_frame_of_each_shot() -> None:
    assert shot_starts([30, 76], 80, Fraction(2), 2) == [60, 152]
    assert shot_starts([1, 5], 10, Fraction(4), 8) == [4, 20]
    # 23.976 -> 59.94 on an 8x grid: the first output frame whose source frame is the cut's, or later
    ratio = Fraction(5, 2)
    schedule = Schedule(100, ratio, 8)
    for c in (1, 2, 3, 37, 99):
        (n,) = shot_starts([c], 100, ratio, 8)
        assert schedule.position(n).source >= c > schedule.position(n - 1).source
    with pytest.raises(ValueError):
        shot_starts([0], 10, Fraction(2), 2)


def test_shot_starts_match_the_marks_on_vsflavrs_output(tiny_2x: Path) -> None:
    """The output frames that vsflavr marks _SceneChangePrev are the plan's shot starts (copies: no network run)."""
    clip = vsflavr.flavr(open_bikes(140), multi=2, weights=tiny_2x, device="cpu")
    cuts = [c for c in BIKES_CUTS_INTO if c < 140]
    for n in shot_starts(cuts, 140, Fraction(2), 2):
        assert clip.get_frame(n).props["_SceneChangePrev"] == 1
        assert clip.get_frame(n - 1).props["_SceneChangeNext"] == 1


def test_manifest_appends_reads_and_survives_a_torn_line(tmp_path: Path) -> None:
    path = tmp_path / "manifest.jsonl"
    job = {"script": "a.vpy", "encoder": ["x264", "{output}"], "chunks": [[0, 5], [5, 9]]}
    manifest.create(path, job)
    with pytest.raises(FileExistsError):
        manifest.create(path, job)
    manifest.append(path, {"index": 0, "attempt": 1})
    with open(path, "a") as f:
        f.write('{"type": "chunk", "index": 1, "att')  # the driver died while writing
    old, chunks, output = manifest.read(path)
    assert old["encoder"] == ["x264", "{output}"] and list(chunks) == [0] and output is None
    manifest.append(path, {"index": 1, "attempt": 2})
    manifest.append(path, {"file": "out.mkv", "sha256": "ab"}, kind="output")
    _, chunks, output = manifest.read(path)
    assert chunks[1]["attempt"] == 2 and output == {"type": "output", "file": "out.mkv", "sha256": "ab"}
    lines = path.read_text().splitlines()
    assert [json.loads(line)["type"] for line in lines if line.endswith("}")] == ["job", "chunk", "chunk", "output"]
    assert len(lines) == 5  # the torn line stays, and the next one starts on a line of its own
    assert manifest.differences(old, {**old, "encoder": ["x265", "{output}"]}) == ["the encoder command"]
    assert manifest.differences(old, json.loads(json.dumps(old))) == []


def test_manifest_refuses_other_files(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_text('{"type": "chunk", "index": 0}\n')
    with pytest.raises(manifest.ManifestError):
        manifest.read(path)


def y4m(frames: list[bytes], header: bytes = b"YUV4MPEG2 W5 H3 F50:1 Ip A1:1 C420p10 XYSCSS=420P10\n") -> bytes:
    return header + b"".join(b"FRAME\n" + f for f in frames)


def test_tee_passes_the_stream_through_and_hashes_each_frame() -> None:
    size = frame_bytes(b"YUV4MPEG2 W5 H3 F50:1 C420p10")
    assert size == 2 * (15 + 2 * 3 * 2)
    frames = [bytes([i]) * size for i in range(3)]
    sink = io.BytesIO()
    counts: list[int] = []
    assert tee_frames(io.BytesIO(y4m(frames)), sink, counts.append) == [hashlib.md5(f).hexdigest() for f in frames]
    assert counts == [1, 2, 3]
    assert sink.getvalue() == y4m(frames)
    assert frame_bytes(b"YUV4MPEG2 W4 H2 F25:1 C444") == 24 and frame_bytes(b"YUV4MPEG2 W4 H2 Cmono16") == 16
    with pytest.raises(Y4MError, match="inside frame 2"):
        tee_frames(io.BytesIO(y4m(frames)[:-1]), io.BytesIO())
    with pytest.raises(Y4MError, match="not a YUV4MPEG2"):
        tee_frames(io.BytesIO(b"RIFF....\n"), io.BytesIO())


def test_scene_files_of_every_av1an_version_and_plain_lists(tmp_path: Path) -> None:
    """Av1an 0.2-0.3 (split frames), 0.4 (scenes after extra splits), 0.5 (scenes and split_scenes), plain lists."""
    from vsflavr.render.scenefile import SceneFileError, read_cuts, write_av1an

    def scene(a: int, b: int) -> dict:
        return {"start_frame": a, "end_frame": b, "zone_overrides": None}

    files = {
        "v03.json": {"scenes": [30, 76], "frames": 80},
        "v04.json": {"scenes": [scene(0, 30), scene(30, 76), scene(76, 80)], "frames": 80},
        "v05.json": {
            "frames": 80,
            "scenes": [scene(0, 30), scene(30, 76), scene(76, 80)],
            "split_scenes": [scene(0, 30), scene(30, 50), scene(50, 76), scene(76, 80)],
        },
        "v05_split_only.json": {"frames": 80, "split_scenes": [scene(0, 30), scene(30, 76), scene(76, 80)]},
    }
    for name, data in files.items():
        (tmp_path / name).write_text(json.dumps(data))
        assert read_cuts(tmp_path / name) == (80, [30, 76]), name  # 0.5: the shots, not the extra split at 50
    (tmp_path / "cuts.txt").write_text("# cut frames\n76\n30, 30\n0\n")
    assert read_cuts(tmp_path / "cuts.txt") == (None, [30, 76])
    (tmp_path / "cuts.json").write_text("[76, 30]")
    assert read_cuts(tmp_path / "cuts.json") == (None, [30, 76])
    write_av1an(tmp_path / "out.json", 160, [60, 152])
    written = json.loads((tmp_path / "out.json").read_text())
    assert list(written) == ["frames", "scenes", "split_scenes"]  # Av1an 0.5's ScenesData, in its field order
    assert written["scenes"] == written["split_scenes"] == [scene(0, 60), scene(60, 152), scene(152, 160)]
    assert read_cuts(tmp_path / "out.json") == (160, [60, 152])
    bad = {
        "words.txt": "12 thirty",
        "past.json": json.dumps({"scenes": [30, 90], "frames": 80}),
        "noframes.json": json.dumps({"scenes": [scene(0, 30)]}),
        "entry.json": json.dumps({"scenes": [{"start": 3}], "frames": 80}),
        "negative.json": "[-3]",
    }
    for name, text in bad.items():
        (tmp_path / name).write_text(text)
        with pytest.raises(SceneFileError, match=name):
            read_cuts(tmp_path / name)
