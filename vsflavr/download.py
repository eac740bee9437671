"""Download the official FLAVR checkpoints, verify them and record them in a manifest.

Each file is fetched from a list of sources, tried in order until one gives a valid
checkpoint: the official Google Drive files (with Drive's "can't scan this file for
viruses" confirmation step), then the public GitHub release mirror.  Whatever comes back
is written to a temporary file in the target directory, loaded with the real loader
(``weights_only=True``), checked for its frame-rate factor, and only then moved into place
under its official name, so a failed or interrupted download never leaves a ``.pth``
behind.  ``manifest.json`` next to the weights records each file's multi, size, sha256
and source.

This module never imports VapourSynth.
"""

from __future__ import annotations

import hashlib
import html
import json
import logging
import os
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from html.parser import HTMLParser
from pathlib import Path
from typing import IO, Any
from urllib.parse import urlencode, urljoin, urlsplit, urlunsplit

import requests
from tqdm import tqdm

from .checkpoint import CheckpointError, load_checkpoint

__all__ = [
    "MULTIS",
    "DownloadError",
    "Source",
    "download_weights",
    "file_name",
    "official_sources",
    "verify_weights",
]

logger = logging.getLogger("vsflavr")

MULTIS: tuple[int, ...] = (2, 4, 8)
"""Frame-rate factors of the official checkpoints."""

DRIVE_IDS: dict[int, str] = {
    2: "1IZe-39ZuXy3OheGJC-fT3shZocGYuNdH",
    4: "1GARJK0Ti1gLH_O0spxAEqzbMwUKqE37S",
    8: "1xoZqWJdIOjSaE2DtH4ifXKlRwFySm5Gq",
}
"""Google Drive file ids of FLAVR_2x/4x/8x.pth, from the official project's README."""

DRIVE_URL = "https://drive.usercontent.google.com/download?id={id}&export=download"
MIRROR_URL = "https://github.com/Fannovel16/ComfyUI-Frame-Interpolation/releases/download/models/FLAVR_{multi}x.pth"
MANIFEST = "manifest.json"

TIMEOUT_S = (15, 60)  # connect, and each read
CHUNK = 1 << 20
MAX_HTML = 1 << 20  # an HTML page larger than this is not read whole
MAX_CONFIRMS = 1  # Drive asks once; another page after confirming means it refused


@dataclass(frozen=True)
class Source:
    """A place a checkpoint can be fetched from: a name for messages and a URL."""

    name: str
    url: str


class DownloadError(Exception):
    """No source gave a valid checkpoint; the message lists each source and why."""

    def __init__(self, file: str, failures: list[str]) -> None:
        self.file = file
        self.failures = failures
        super().__init__(f"could not download {file}; every source failed:\n" + "\n".join(f"  {f}" for f in failures))


class _SourceFailed(Exception):
    """One source gave something other than the checkpoint; the message says what."""


def file_name(multi: int) -> str:
    """The official file name of the ``multi``x checkpoint, e.g. ``FLAVR_2x.pth``."""
    return f"FLAVR_{multi}x.pth"


def official_sources(multi: int) -> list[Source]:
    """Where the official ``multi``x checkpoint is published, in the order to try them."""
    return [
        Source("Google Drive", DRIVE_URL.format(id=DRIVE_IDS[multi])),
        Source("GitHub mirror", MIRROR_URL.format(multi=multi)),
    ]


def verify_weights(path: Path, multi: int) -> None:
    """Raise :class:`CheckpointError` unless ``path`` is a FLAVR checkpoint of ``multi``x.

    The file is loaded with the real loader (plain tensors only), so anything it accepts
    here the filter accepts too.
    """
    architecture = load_checkpoint(path).architecture
    if architecture.multi != multi:
        raise CheckpointError(f"weights file {path} is a {architecture.multi}x checkpoint, not {multi}x")


def download_weights(
    multi: int,
    directory: str | os.PathLike[str],
    *,
    sources: Sequence[Source] | None = None,
    force: bool = False,
    progress: bool = True,
) -> Path:
    """Download the ``multi``x checkpoint into ``directory`` and return its path.

    ``sources`` (default: :func:`official_sources`) are tried in order; each failure is
    logged as one line on the ``vsflavr`` logger and the next source is tried.  An existing
    valid file is kept unless ``force``.  ``progress`` shows a progress bar on a terminal.
    Raises :class:`DownloadError` listing every source and why it failed; no ``.pth`` is
    left behind then.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    target = directory / file_name(multi)
    if target.exists() and not force:
        try:
            verify_weights(target, multi)
        except CheckpointError as exc:
            logger.warning("%s; downloading it again", exc)
        else:
            logger.info("%s is already there and valid; not downloading it again", target)
            return target
    failures = []
    for source in official_sources(multi) if sources is None else sources:
        try:
            record = _fetch_into_place(source, target, multi, f"{target.name} from {source.name}" if progress else None)
        except _SourceFailed as exc:
            failures.append(f"{source.name} ({source.url}): {exc}")
            logger.warning("%s", failures[-1])
            continue
        _update_manifest(directory, record)
        logger.info(
            "saved %s (%s bytes, sha256 %s) from %s", target, f"{record['size']:,}", record["sha256"], source.name
        )
        return target
    raise DownloadError(target.name, failures)


def _fetch_into_place(source: Source, target: Path, multi: int, bar: str | None) -> dict[str, Any]:
    """Fetch ``source`` to a temporary file next to ``target``, verify it, move it into place.

    ``bar`` labels the progress bar; None shows none.
    """
    fd, name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".part")
    temporary = Path(name)
    try:
        with os.fdopen(fd, "wb") as out:
            size, sha256 = _transfer(source, out, bar)
            out.flush()
            os.fsync(out.fileno())
        try:
            verify_weights(temporary, multi)
        except CheckpointError as exc:
            raise _SourceFailed(_describe_invalid(exc, temporary)) from None
        os.replace(temporary, target)
    finally:
        temporary.unlink(missing_ok=True)
    return {"file": target.name, "multi": multi, "size": size, "sha256": sha256, "source": source.url}


def _describe_invalid(exc: CheckpointError, temporary: Path) -> str:
    """The loader's first sentence about the temporary file, without its throw-away name."""
    what = str(exc).removeprefix(f"weights file {temporary} ").split(". ")[0].removesuffix("; download it again")
    return f"got a file that {what}"


def _transfer(source: Source, out: IO[bytes], bar: str | None) -> tuple[int, str]:
    """Stream ``source`` into ``out``, following Drive's confirmation page; returns (bytes, sha256)."""
    with requests.Session() as session:
        url = source.url
        for _ in range(MAX_CONFIRMS + 1):
            with _get(session, url) as response:
                if not _is_html(response):
                    return _stream(response, out, bar)
                page = _read_page(response)
            if page.confirm_url is None:
                raise _SourceFailed(f"got {page.describe()}, not a checkpoint")
            url = urljoin(response.url, page.confirm_url)
        raise _SourceFailed(f"got {page.describe()} again after confirming the download")


def _get(session: requests.Session, url: str) -> requests.Response:
    """GET ``url`` as a stream; a connection failure or an HTTP error status becomes a one-line reason."""
    try:
        response = session.get(url, stream=True, timeout=TIMEOUT_S)
    except requests.RequestException as exc:
        raise _SourceFailed(f"request failed ({type(exc).__name__})") from None
    if response.ok:
        return response
    with response:
        reason = f"HTTP {response.status_code} {response.reason or ''}".rstrip()
        if _is_html(response):
            reason += f" with {_read_page(response).describe()}"
    raise _SourceFailed(reason)


def _is_html(response: requests.Response) -> bool:
    return response.headers.get("Content-Type", "").split(";")[0].strip().lower() in (
        "text/html",
        "application/xhtml+xml",
    )


def _read_page(response: requests.Response) -> _Page:
    try:
        raw = response.raw.read(MAX_HTML, decode_content=True)
    except (requests.RequestException, OSError):
        raw = b""
    page = _Page()
    page.feed(raw.decode(response.encoding or "utf-8", errors="replace"))
    return page


def _stream(response: requests.Response, out: IO[bytes], bar: str | None) -> tuple[int, str]:
    """Copy the body into ``out`` with a progress bar; a short body is a failure."""
    expected = int(response.headers.get("Content-Length", 0)) or None
    digest = hashlib.sha256()
    size = 0
    with tqdm(
        total=expected, desc=bar, unit="B", unit_scale=True, unit_divisor=1024, disable=True if bar is None else None
    ) as shown:
        try:
            for chunk in response.iter_content(CHUNK):
                out.write(chunk)
                digest.update(chunk)
                size += len(chunk)
                shown.update(len(chunk))
        except requests.RequestException as exc:
            raise _SourceFailed(_cut_short(response, expected, type(exc).__name__)) from None
    if expected is not None and response.raw.tell() < expected:
        raise _SourceFailed(_cut_short(response, expected, "connection closed"))
    return size, digest.hexdigest()


def _cut_short(response: requests.Response, expected: int | None, why: str) -> str:
    of = f" of {expected:,}" if expected else ""
    return f"transfer cut short after {response.raw.tell():,}{of} bytes ({why})"


class _Page(HTMLParser):
    """What matters in an HTML page a source sent instead of a file.

    Google Drive answers a large file with a "can't scan this file for viruses" page whose
    ``download-form`` (GET, hidden ``id``, ``export``, ``confirm``, ``uuid``) leads to the file;
    older Drive pages carry a link with a ``confirm=`` token instead.  Quota and sign-in
    pages have neither; their title and ``uc-error-subcaption`` say what went wrong.
    """

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.title = ""
        self.detail = ""
        self._form_action: str | None = None
        self._form_fields: dict[str, str] = {}
        self._link: str | None = None
        self._capture: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "form" and a.get("id") == "download-form":
            self._form_action = a.get("action", "")
        elif tag == "input" and self._form_action is not None and a.get("type") == "hidden" and a.get("name"):
            self._form_fields[a["name"]] = a.get("value", "")
        elif tag == "a" and "confirm=" in a.get("href", "") and self._link is None:
            self._link = a["href"]
        elif tag == "title" or (tag == "p" and "uc-error-subcaption" in a.get("class", "").split()):
            self._capture = tag

    def handle_endtag(self, tag: str) -> None:
        if tag == self._capture:
            self._capture = None

    def handle_data(self, data: str) -> None:
        if self._capture == "title":
            self.title += data
        elif self._capture == "p":
            self.detail += data

    @property
    def confirm_url(self) -> str | None:
        """The URL that confirms the download, or None when the page offers none."""
        if self._form_action is not None:
            parts = urlsplit(self._form_action)
            query = "&".join(q for q in (parts.query, urlencode(self._form_fields)) if q)
            return urlunsplit(parts._replace(query=query))
        return self._link

    def describe(self) -> str:
        """``an HTML page "title" (detail)`` in one line."""
        title = " ".join(html.unescape(self.title).split())
        detail = " ".join(self.detail.split())
        text = f'an HTML page "{title}"' if title else "an HTML page"
        return f"{text} ({detail})" if detail else text


def _update_manifest(directory: Path, record: dict[str, Any]) -> None:
    """Replace ``record["file"]``'s entry in ``directory/manifest.json``, written atomically."""
    path = directory / MANIFEST
    records = [r for r in _read_manifest(path) if r.get("file") != record["file"]]
    records.append({**record, "downloaded": datetime.now(UTC).isoformat(timespec="seconds")})
    records.sort(key=lambda r: str(r.get("file")))
    fd, name = tempfile.mkstemp(dir=directory, prefix=f".{MANIFEST}.", suffix=".part")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            json.dump({"files": records}, out, indent=2)
            out.write("\n")
        os.replace(name, path)
    finally:
        Path(name).unlink(missing_ok=True)


def _read_manifest(path: Path) -> Iterator[dict[str, Any]]:
    if not path.exists():
        return
    try:
        files = json.loads(path.read_text(encoding="utf-8"))["files"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        logger.warning("%s is unreadable (%s); starting a new one", path, type(exc).__name__)
        return
    yield from (r for r in files if isinstance(r, dict))
