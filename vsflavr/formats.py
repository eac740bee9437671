"""The clip's own format at the two ends of the flow: FLAVR reads and writes float RGB, the clip keeps its own.

Every frame that shows a source frame is taken from the untouched source clip (see
:mod:`vsflavr.pipeline`); only what FLAVR reads and the frames it makes are converted here,
inside VapourSynth's resizer, from and back to the clip's own coding: ``_Matrix``, ``_Range``
(``_ColorRange`` before VapourSynth R74, numbered the other way) and ``_ChromaLocation``.
Transfer and primaries are never converted (FLAVR works on the coded values, HDR included),
so they are never guessed either: the frames keep whatever the clip says.

Where the clip does not say (the property is missing, or ``_Matrix`` is 2, unspecified), the
guess is the one the VapourSynth world makes (vs-jetpack's ``from_res``, mpv, libplacebo), from
:data:`MATRIX_GUESSES`, limited range for YUV and GRAY, full for RGB, and left chroma; one log
line names it and how to state it.  A wrong matrix guess shifts no colour: the same matrix
converts FLAVR's frames back, so only the RGB the network sees is slightly off.

Subsampled chroma is resized by :data:`CHROMA_IN`/:data:`CHROMA_OUT`, and integer output is rounded
to the nearest code value (:data:`DITHER`).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass

import vapoursynth as vs

from .errors import one_line

__all__ = [
    "DITHER",
    "MATRIX_GUESSES",
    "NETWORK_FORMATS",
    "Coding",
    "MatrixGuess",
    "check_format",
    "coding_of",
    "from_network",
    "luma",
    "to_network",
]

logger = logging.getLogger("vsflavr")

NETWORK_FORMATS = (vs.RGBS, vs.RGBH)
"""What FLAVR reads and writes itself; clips in these formats are never converted."""

DITHER = "none"
"""How FLAVR's float frames become integer code values: rounded to the nearest, no dither noise.

Source frames are shown bit for bit and carry no dither of vsflavr's, so a dither pattern would
appear on interpolated frames only and flicker at the source rate where nothing moves.  Measured on
a still of bikes.mp4 (tools/dither_still.py): rounding changes 1.7 % of the luma codes of the
interpolated frame, error diffusion 6.6 %, ordered 9.4 %, random 9.2 %; FLAVR's frames are smooth
where things move, where rounding shows no banding the source frames do not show."""

CHROMA_IN, CHROMA_OUT = "Point", "Point"
"""The resizer's kernels for subsampled chroma: up to full size for FLAVR (each chroma sample on the
luma pixels nearest its location), and back down (the sample at its location).  The pair is exact:
a frame FLAVR returns unchanged comes back bit for bit, so what does not move in an interpolated
frame equals the source frames around it.  Bicubic both ways softens the chroma of every
interpolated frame instead (2 code values on bikes.mp4) for 0.03-0.24 dB more chroma PSNR on moving
content (docs/formats.md)."""

LIMITED, FULL = 0, 1
"""``_Range`` values (H.273 numbering, VapourSynth R74+); ``_ColorRange`` numbers them the other way."""

_MATRIX_NAMES = {0: "rgb", 1: "709", 4: "fcc", 5: "470bg", 6: "170m", 7: "240m", 8: "ycgco", 9: "2020ncl",
                 10: "2020cl", 12: "chromancl", 13: "chromacl", 14: "ictcp"}  # fmt: skip
_CHROMA_NAMES = ("left", "center", "top_left", "top", "bottom_left", "bottom")
_UNSPECIFIED = 2


@dataclass(frozen=True)
class MatrixGuess:
    """The matrix guessed for an untagged YUV clip whose frames fit in ``max_width`` x ``max_height`` (None: any)."""

    max_width: int | None
    max_height: int | None
    matrix: int
    label: str


MATRIX_GUESSES = (
    MatrixGuess(1024, 486, 6, "frames up to 1024x486 (480-line SD)"),
    MatrixGuess(1024, 576, 5, "frames up to 1024x576 (576-line SD)"),
    MatrixGuess(None, None, 1, "frames over 1024x576 (HD and UHD)"),
)
"""The first row the frame size fits in, width and height each (a 720x1280 portrait clip is HD).

UHD is BT.709 too: vs-jetpack guessed BT.2020 for it until 2024 and dropped that (untagged UHD
is mostly SDR; HDR and wide-gamut sources tag themselves), and mpv and libplacebo never did."""


def guess_matrix(width: int, height: int) -> MatrixGuess:
    """The row of :data:`MATRIX_GUESSES` for a frame size."""
    return next(
        g
        for g in MATRIX_GUESSES
        if (g.max_width is None or width <= g.max_width) and (g.max_height is None or height <= g.max_height)
    )


@dataclass(frozen=True)
class Coding:
    """How the clip's samples code colour: what the resizer needs to convert them to RGB and back.

    Attributes:
        matrix: the H.273 matrix code of a YUV clip (``None`` for RGB and GRAY).
        range: :data:`LIMITED` or :data:`FULL`.
        chromaloc: the ``_ChromaLocation`` code of a subsampled clip (``None`` otherwise).
    """

    matrix: int | None
    range: int
    chromaloc: int | None

    def check_frame(self, props: Mapping[str, object], n: int) -> None:
        """Raise a vs.Error if the source frame output frame ``n`` is made from codes colour unlike the clip's first."""
        here = _read(props)
        for name, value, first in (
            ("_Matrix", here.matrix, self.matrix),
            ("_Range", here.range, self.range),
            ("_ChromaLocation", here.chromaloc, self.chromaloc),
        ):
            if value is not None and first is not None and value != first:
                raise vs.Error(
                    f"flavr: output frame {n} is made from a source frame with {name}={value} but the clip's first "
                    f"frame has {name}={first}; split the clip where it changes and filter each part, or set one "
                    f"value on every frame with core.std.SetFrameProps(clip, {name}=...)"
                )


@dataclass(frozen=True)
class _Props:
    matrix: int | None
    range: int | None
    chromaloc: int | None


def _read(props: Mapping[str, object]) -> _Props:
    """The colour-coding properties a frame states (None where missing or unspecified), each checked."""
    matrix = props.get("_Matrix")
    if matrix is not None and (not isinstance(matrix, int) or (matrix not in _MATRIX_NAMES and matrix != 2)):
        raise vs.Error(
            f"flavr: frame property _Matrix={matrix!r} is not a matrix code (ITU-T H.273: 0 RGB, 1 BT.709, "
            "5/6 BT.601, 9 BT.2020, ...); set the right one, e.g. core.std.SetFrameProps(clip, _Matrix=1)"
        )
    if "_Range" in props:
        value = props["_Range"]
        range_ = value if isinstance(value, int) and value in (LIMITED, FULL) else -1
    elif "_ColorRange" in props:  # VapourSynth before R74: 0 full, 1 limited
        value = props["_ColorRange"]
        range_ = 1 - value if isinstance(value, int) and value in (0, 1) else -1
    else:
        value = range_ = None
    if range_ == -1:
        raise vs.Error(
            f"flavr: frame property _Range={value!r} is neither 0 (limited) nor 1 (full); set the right one, "
            "e.g. core.std.SetFrameProps(clip, _Range=0)"
        )
    chromaloc = props.get("_ChromaLocation")
    if chromaloc is not None and (not isinstance(chromaloc, int) or not 0 <= chromaloc < len(_CHROMA_NAMES)):
        raise vs.Error(
            f"flavr: frame property _ChromaLocation={chromaloc!r} is not a chroma location (0 left, 1 center, "
            "2 top-left, 3 top, 4 bottom-left, 5 bottom); set the right one, e.g. "
            "core.std.SetFrameProps(clip, _ChromaLocation=0)"
        )
    return _Props(None if matrix == _UNSPECIFIED else matrix, range_, chromaloc)


def check_format(clip: vs.VideoNode) -> None:
    """Refuse a clip whose format the resizer cannot convert to float RGB, with a one-line vs.Error."""
    fmt = clip.format
    if fmt.color_family not in (vs.YUV, vs.GRAY, vs.RGB):
        raise vs.Error(f"flavr: cannot read {fmt.name} clips; give a YUV, GRAY or RGB clip")
    if (fmt.sample_type == vs.INTEGER and fmt.bits_per_sample > 16) or (
        fmt.sample_type == vs.FLOAT and fmt.bits_per_sample not in (16, 32)
    ):
        raise vs.Error(
            f"flavr: VapourSynth's resizer cannot convert {fmt.name} ({fmt.bits_per_sample}-bit "
            f"{'integer' if fmt.sample_type == vs.INTEGER else 'float'}); it takes 8-16 bit integer or 16/32-bit float, "
            "e.g. clip = core.resize.Point(clip, format=vs.YUV420P16)"
        )


def coding_of(clip: vs.VideoNode) -> Coding:
    """The clip's colour coding, read from its first frame, guessed where missing (one log line says what).

    Raises vs.Error for a property that is not a valid code, that contradicts the clip's format,
    or an interlaced clip.
    """
    fmt = clip.format
    props = clip.get_frame(0).props
    stated = _read(props)
    field = props.get("_FieldBased", 0)
    if field in (1, 2):
        raise vs.Error(
            f"flavr: the clip is interlaced (_FieldBased={field}); deinterlace it first, or if its frames are "
            "progressive, say so: clip = core.std.SetFrameProps(clip, _FieldBased=0)"
        )
    guesses: list[str] = []
    matrix = None
    if fmt.color_family == vs.YUV:
        matrix = stated.matrix
        if matrix == 0 and (fmt.subsampling_w or fmt.subsampling_h):
            raise vs.Error(
                f"flavr: _Matrix=0 (RGB) contradicts the {fmt.name} clip (RGB is never chroma-subsampled); set "
                "its real matrix, e.g. core.std.SetFrameProps(clip, _Matrix=1)"
            )
        if matrix is None:
            guess = guess_matrix(clip.width, clip.height)
            matrix = guess.matrix
            guesses.append(f"_Matrix={matrix} ({_MATRIX_NAMES[matrix]}, for {guess.label} at {clip.width}x{clip.height})")
    elif fmt.color_family == vs.RGB and stated.matrix not in (None, 0):
        raise vs.Error(
            f"flavr: _Matrix={stated.matrix} (a YUV matrix) contradicts the {fmt.name} clip; set "
            "core.std.SetFrameProps(clip, _Matrix=0), or convert the clip to the format it really is"
        )
    range_ = stated.range
    if range_ is None:
        range_ = FULL if fmt.color_family == vs.RGB else LIMITED
        if fmt.sample_type == vs.INTEGER:  # float samples have no range
            guesses.append(f"_Range={range_} ({'full' if range_ else 'limited'})")
    chromaloc = None
    if fmt.subsampling_w or fmt.subsampling_h:
        chromaloc = stated.chromaloc
        if chromaloc is None:
            chromaloc = 0
            guesses.append("_ChromaLocation=0 (left)")
    if guesses:
        stated_as = ", ".join(g.split(" ")[0] for g in guesses)
        logger.warning(
            "flavr: the clip does not say how it codes colour; guessed %s. If that is wrong, state it: "
            "clip = core.std.SetFrameProps(clip, %s) with the right values",
            ", ".join(guesses),
            stated_as,
        )
    return Coding(matrix, range_, chromaloc)


def to_network(clip: vs.VideoNode, coding: Coding) -> vs.VideoNode:
    """``clip`` as FLAVR reads it: float RGB in 0..1 (RGBS or RGBH clips as they are; GRAY in all three planes).

    Each frame's own properties win over ``coding`` where they state a value, as the resizer does.
    """
    fmt = clip.format
    if fmt.id in NETWORK_FORMATS:
        return clip
    core = vs.core
    try:
        if fmt.color_family == vs.GRAY:
            gray = core.resize.Point(clip, format=vs.GRAYS, range_in=coding.range)
            rgb = core.std.ShufflePlanes(gray, [0, 0, 0], vs.RGB)
        else:
            rgb = getattr(core.resize, CHROMA_IN)(
                clip,
                format=vs.RGBS,
                range_in=coding.range,
                **_yuv_args(coding, "_in"),
            )
        rgb.get_frame(0)  # a conversion zimg has no path for fails here, not in the middle of a render
    except vs.Error as exc:
        raise vs.Error(f"flavr: VapourSynth's resizer cannot convert this {fmt.name} clip to RGB ({one_line(exc)})") from None
    return rgb


def from_network(rgb: vs.VideoNode, fmt: vs.VideoFormat, coding: Coding) -> vs.VideoNode:
    """FLAVR's frames (float RGB) back in the clip's format and coding.

    RGB float clips are clamped to 0..1 as FLAVR's range; a clip converted to RGB keeps the
    values its own format holds beyond that range (out-of-gamut YUV colours, super-whites) until
    the resizer writes the format's codes.
    """
    core = vs.core
    if fmt.color_family == vs.RGB:
        clamped = core.std.Limiter(rgb, 0.0, 1.0)
        if fmt.id == rgb.format.id:
            return clamped
        return core.resize.Point(clamped, format=fmt.id, range=coding.range, dither_type=DITHER)
    if fmt.color_family == vs.GRAY:
        gray = core.std.ShufflePlanes(rgb, 0, vs.GRAY)  # FLAVR's three planes of a GRAY clip stay equal
        return core.resize.Point(gray, format=fmt.id, range=coding.range, dither_type=DITHER)
    back = getattr(core.resize, CHROMA_OUT)
    return back(rgb, format=fmt.id, range=coding.range, dither_type=DITHER, **_yuv_args(coding, ""))


def luma(clip: vs.VideoNode, coding: Coding, width: int | None = None, height: int | None = None) -> vs.VideoNode:
    """The clip's luma as GRAYS in 0..1, optionally scaled (bilinear) to ``width`` x ``height``, for the detectors.

    YUV and GRAY: the coded luma plane itself, only rescaled to 0..1 (no colour conversion); RGB:
    BT.709 luma.  The same footage as YUV or as RGB converted from it gives the same luma (up to
    float rounding).  Frame properties pass through.
    """
    core = vs.core
    size = {} if width is None else {"width": width, "height": height}
    if clip.format.color_family == vs.RGB:
        return core.resize.Bilinear(clip, format=vs.GRAYS, matrix_s="709", range_in=coding.range, **size)
    plane = core.std.ShufflePlanes(clip, 0, vs.GRAY) if clip.format.color_family == vs.YUV else clip
    return core.resize.Bilinear(plane, format=vs.GRAYS, range_in=coding.range, **size)


def _yuv_args(coding: Coding, suffix: str) -> dict[str, int]:
    """The resizer's matrix and chroma-location arguments (``matrix_in``... with ``suffix="_in"``)."""
    args = {f"matrix{suffix}": coding.matrix}
    if coding.chromaloc is not None:
        args[f"chromaloc{suffix}"] = coding.chromaloc
    return {k: v for k, v in args.items() if v is not None}
