"""Pass a YUV4MPEG2 stream through unchanged while counting and hashing its frames.

The MD5 of a frame's payload (its planes, as y4m stores them) is what ``ffmpeg -f framemd5``
prints for the same frame decoded to raw video, so a chunk's hashes can be compared with a
decode of the spliced file and with one ``vspipe | ffmpeg -f framemd5`` run.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Callable
from typing import BinaryIO

__all__ = ["Y4MError", "frame_bytes", "tee_frames"]

_BLOCK = 1 << 20


class Y4MError(ValueError):
    """The stream is not a YUV4MPEG2 stream this module can measure."""


def frame_bytes(header: bytes) -> int:
    """Bytes of one frame's payload for a y4m stream header line (``YUV4MPEG2 W.. H.. C..``)."""
    if not header.startswith(b"YUV4MPEG2 "):
        raise Y4MError(f"not a YUV4MPEG2 stream (it starts with {header[:20]!r})")
    fields = {f[:1]: f[1:] for f in header.split()[1:]}
    try:
        width, height = int(fields[b"W"]), int(fields[b"H"])
    except (KeyError, ValueError):
        raise Y4MError(f"no frame size in the y4m header {header!r}") from None
    colorspace = fields.get(b"C", b"420jpeg").decode()
    m = re.fullmatch(r"(mono|420|422|444|411)(?:jpeg|mpeg2|paldv|alpha|p?(\d+))?", colorspace)
    if m is None:
        raise Y4MError(f"unsupported y4m colour space C{colorspace}")
    depth = int(m.group(2) or 8)
    sample = 1 if depth <= 8 else 2
    luma = width * height
    chroma = {
        "mono": 0,
        "420": math.ceil(width / 2) * math.ceil(height / 2),
        "422": math.ceil(width / 2) * height,
        "411": math.ceil(width / 4) * height,
        "444": luma,
    }[m.group(1)]
    planes = luma + 2 * chroma + (luma if colorspace.endswith("alpha") else 0)
    return planes * sample


def _read_line(stream: BinaryIO, what: str) -> bytes:
    line = stream.readline(_BLOCK)
    if line and not line.endswith(b"\n"):
        raise Y4MError(f"the {what} line of the y4m stream is cut short or too long")
    return line


def tee_frames(source: BinaryIO, sink: BinaryIO, on_frame: Callable[[int], None] | None = None) -> list[str]:
    """Copy a y4m stream from ``source`` to ``sink`` and return the MD5 (hex) of every frame's payload.

    ``on_frame(count)``, when given, is called after each frame with the number of frames passed so far.

    Raises :class:`Y4MError` when the stream ends in the middle of a frame or is not y4m;
    errors writing to ``sink`` (an encoder that stopped) propagate as ``OSError``.
    """
    header = _read_line(source, "header")
    if not header:
        return []
    size = frame_bytes(header)
    sink.write(header)
    hashes = []
    while frame := _read_line(source, "FRAME"):
        if not frame.startswith(b"FRAME"):
            raise Y4MError(f"expected a FRAME line after {len(hashes)} frames, got {frame[:20]!r}")
        payload = source.read(size)
        if len(payload) != size:
            raise Y4MError(f"the stream ends inside frame {len(hashes)} ({len(payload)} of {size} bytes)")
        hashes.append(hashlib.md5(payload).hexdigest())
        sink.write(frame)
        sink.write(payload)
        if on_frame is not None:
            on_frame(len(hashes))
    return hashes
