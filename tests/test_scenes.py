"""Scene-cut detection on real footage, and cuts given by properties already on the clip."""

from __future__ import annotations

import vapoursynth as vs
from conftest import BIKES_CUTS_INTO

from vsflavr.scenes import is_cut, mark_scene_changes


def _flagged(clip: vs.VideoNode) -> list[int]:
    return [n for n, f in enumerate(clip.frames()) if f.props.get("_SceneChangeNext", 0)]


def test_detects_exactly_the_cuts_of_bikes(bikes: vs.VideoNode) -> None:
    # _SceneChangeNext marks the last frame of a shot: the frame before each cut.
    assert _flagged(mark_scene_changes(bikes)) == [n - 1 for n in BIKES_CUTS_INTO]


def test_marks_do_not_touch_pixels(bikes: vs.VideoNode) -> None:
    marked = mark_scene_changes(bikes)
    for n in (28, 29, 30):
        a, b = bikes.get_frame(n), marked.get_frame(n)
        assert all(bytes(a[p]) == bytes(b[p]) for p in range(3))


def test_existing_marks_are_kept(bikes: vs.VideoNode) -> None:
    def mark_ten(n: int, f: vs.VideoFrame) -> vs.VideoFrame:
        out = f.copy()
        if n == 10:
            out.props["_SceneChangeNext"] = 1
        return out

    external = bikes.std.ModifyFrame(bikes, mark_ten)
    assert _flagged(mark_scene_changes(external)) == sorted([10, *(n - 1 for n in BIKES_CUTS_INTO)])


def test_is_cut_reads_either_side(bikes: vs.VideoNode) -> None:
    plain = bikes.get_frame(0)
    nxt = plain.copy()
    nxt.props["_SceneChangeNext"] = 1
    prev = plain.copy()
    prev.props["_SceneChangePrev"] = 1
    assert not is_cut(plain, plain)
    assert is_cut(nxt, plain) and is_cut(plain, prev)
