"""``python -m vsflavr download`` against a local HTTP server that plays Google Drive and a mirror."""

from __future__ import annotations

import hashlib
import http.server
import json
import socket
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from vsflavr import download as dl
from vsflavr.__main__ import main
from vsflavr.checkpoint import load_checkpoint, save_checkpoint
from vsflavr.network import FLAVR

UUID = "5b1c9c4e-0e7a-4c0f-9a43-0d1f3f0c2a11"

Handler = Callable[[http.server.BaseHTTPRequestHandler], None]


def narrow_checkpoint(path: Path, multi: int) -> bytes:
    """A tiny but valid FLAVR checkpoint of ``multi``x, returned as the bytes of its file."""
    save_checkpoint(path, FLAVR(n_outputs=multi - 1, widths=(8, 16, 32, 64)))
    return path.read_bytes()


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[int, bytes]:
    """The bytes of a narrow 2x and 8x checkpoint."""
    d = tmp_path_factory.mktemp("checkpoints")
    return {m: narrow_checkpoint(d / f"{m}.pth", m) for m in (2, 8)}


class Server:
    """A 127.0.0.1 HTTP server; ``routes`` maps a path to the handler that answers it."""

    def __init__(self) -> None:
        routes: dict[str, Handler] = {}
        self.routes = routes
        self.requests: list[str] = []
        requests_seen = self.requests

        class RequestHandler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                requests_seen.append(self.path)
                handler = routes.get(urlsplit(self.path).path)
                if handler is None:
                    self.send_error(404)
                else:
                    handler(self)

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), RequestHandler)
        self.base = f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def url(self, path: str) -> str:
        return self.base + path


@pytest.fixture
def server() -> Iterator[Server]:
    s = Server()
    thread = threading.Thread(target=s.httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield s
    s.httpd.shutdown()
    s.httpd.server_close()


def send(
    h: http.server.BaseHTTPRequestHandler,
    body: bytes,
    *,
    status: int = 200,
    kind: str,
    length: int | None = None,
    extra: dict[str, str] | None = None,
) -> None:
    h.send_response(status)
    h.send_header("Content-Type", kind)
    h.send_header("Content-Length", str(len(body) if length is None else length))
    for k, v in (extra or {}).items():
        h.send_header(k, v)
    h.end_headers()
    h.wfile.write(body)


def serve_file(body: bytes) -> Handler:
    return lambda h: send(
        h, body, kind="application/octet-stream", extra={"Content-Disposition": 'attachment; filename="FLAVR_2x.pth"'}
    )


def serve_cut_off(body: bytes) -> Handler:
    """Announce the whole file, send half of it, close the connection."""

    def handler(h: http.server.BaseHTTPRequestHandler) -> None:
        send(h, body[: len(body) // 2], kind="application/octet-stream", length=len(body))
        h.close_connection = True

    return handler


def serve_html(page: str, status: int = 200) -> Handler:
    return lambda h: send(h, page.encode(), status=status, kind="text/html; charset=utf-8")


QUOTA_PAGE = """<!DOCTYPE html><html><head><title>Google Drive - Quota exceeded</title></head><body>
<div class="uc-main"><div id="uc-text"><p class="uc-error-caption">Sorry, you can&#39;t view or download this file
at this time.</p><p class="uc-error-subcaption">Too many users have viewed or downloaded this file recently.</p>
</div></div></body></html>"""


def virus_scan_page(action: str, file_id: str) -> str:
    """Google Drive's answer to a large file (drive.usercontent.google.com, 2024 on)."""
    return f"""<!DOCTYPE html><html><head><title>Google Drive - Virus scan warning</title></head><body>
<div class="uc-main"><div id="uc-text"><p class="uc-warning-caption">Google Drive can't scan this file for viruses.</p>
<p class="uc-warning-subcaption"><span class="uc-name-size"><a href="/open?id={file_id}">FLAVR_2x.pth</a> (161M)</span>
is too large for Google to scan for viruses. Would you still like to download this file?</p>
<form id="download-form" action="{action}" method="get"><input type="submit" id="uc-download-link"
class="goog-inline-block jfk-button jfk-button-action" value="Download anyway"/><input type="hidden" name="id"
value="{file_id}"><input type="hidden" name="export" value="download"><input type="hidden" name="confirm"
value="t"><input type="hidden" name="uuid" value="{UUID}"></form></div></div></body></html>"""


def serve_drive(server: Server, body: bytes) -> Handler:
    """The file after the virus-scan page, only when the request carries confirm=t and the page's uuid."""

    def handler(h: http.server.BaseHTTPRequestHandler) -> None:
        query = parse_qs(urlsplit(h.path).query)
        if query.get("confirm") == ["t"] and query.get("uuid") == [UUID]:
            serve_file(body)(h)
        else:
            serve_html(virus_scan_page(server.url("/download"), query["id"][0]))(h)

    return handler


@pytest.fixture
def official(server: Server, monkeypatch: pytest.MonkeyPatch) -> Server:
    """Point the official sources at the local server: Drive at /download, the mirror at /mirror/."""
    monkeypatch.setattr(dl, "DRIVE_URL", server.url("/download?id={id}&export=download"))
    monkeypatch.setattr(dl, "MIRROR_URL", server.url("/mirror/FLAVR_{multi}x.pth"))
    return server


def leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.suffix in (".pth", ".part"))


def manifest(directory: Path) -> dict[str, dict]:
    return {r["file"]: r for r in json.loads((directory / "manifest.json").read_text())["files"]}


def test_good_file_lands_verified_with_manifest(server: Server, files: dict[int, bytes], tmp_path: Path) -> None:
    server.routes["/FLAVR_2x.pth"] = serve_file(files[2])
    source = dl.Source("mirror", server.url("/FLAVR_2x.pth"))

    path = dl.download_weights(2, tmp_path, sources=[source], progress=False)

    assert path == tmp_path / "FLAVR_2x.pth"
    assert path.read_bytes() == files[2]
    assert load_checkpoint(path).architecture.multi == 2
    entry = manifest(tmp_path)["FLAVR_2x.pth"]
    assert entry["multi"] == 2
    assert entry["size"] == len(files[2])
    assert entry["sha256"] == hashlib.sha256(files[2]).hexdigest()
    assert entry["source"] == source.url
    assert leftovers(tmp_path) == ["FLAVR_2x.pth"]


def test_drive_confirm_page_then_file(official: Server, files: dict[int, bytes], tmp_path: Path) -> None:
    official.routes["/download"] = serve_drive(official, files[2])

    assert main(["download", "2x", "--dir", str(tmp_path), "-q"]) == 0

    assert (tmp_path / "FLAVR_2x.pth").read_bytes() == files[2]
    first, confirmed = official.requests
    assert parse_qs(urlsplit(first).query) == {"id": [dl.DRIVE_IDS[2]], "export": ["download"]}
    assert parse_qs(urlsplit(confirmed).query)["uuid"] == [UUID]
    assert manifest(tmp_path)["FLAVR_2x.pth"]["source"] == dl.DRIVE_URL.format(id=dl.DRIVE_IDS[2])


def test_older_drive_confirm_link(server: Server, files: dict[int, bytes], tmp_path: Path) -> None:
    """drive.google.com/uc pages (before 2024) carried a relative link with a confirm token."""

    def handler(h: http.server.BaseHTTPRequestHandler) -> None:
        if "confirm=Ab1x" in h.path:
            serve_file(files[2])(h)
        else:
            link = '<a id="uc-download-link" href="/uc?export=download&amp;confirm=Ab1x&amp;id=x">Download anyway</a>'
            serve_html(
                f"<html><head><title>Google Drive - Virus scan warning</title></head><body>{link}</body></html>"
            )(h)

    server.routes["/uc"] = handler
    dl.download_weights(
        2, tmp_path, sources=[dl.Source("Drive", server.url("/uc?export=download&id=x"))], progress=False
    )
    assert server.requests == ["/uc?export=download&id=x", "/uc?export=download&confirm=Ab1x&id=x"]


def test_drive_asking_again_after_confirming_fails(server: Server, tmp_path: Path) -> None:
    server.routes["/download"] = serve_html(virus_scan_page(server.url("/download"), "x"))
    with pytest.raises(dl.DownloadError, match="Virus scan warning.* again after confirming"):
        dl.download_weights(2, tmp_path, sources=[dl.Source("Drive", server.url("/download?id=x"))], progress=False)
    assert leftovers(tmp_path) == []


def redirect(location: str) -> Handler:
    def handler(h: http.server.BaseHTTPRequestHandler) -> None:
        h.send_response(302)
        h.send_header("Location", location)
        h.send_header("Content-Length", "0")
        h.end_headers()

    return handler


def bad_answers(files: dict[int, bytes]) -> dict[str, tuple[Handler, str]]:
    """What a source may send instead of the 2x checkpoint, and the reason the download must give."""
    return {
        "quota page": (serve_html(QUOTA_PAGE), 'an HTML page "Google Drive - Quota exceeded" (Too many users'),
        "quota page 403": (serve_html(QUOTA_PAGE, 403), "HTTP 403 Forbidden with an HTML page"),
        "sign-in redirect": (redirect("/ServiceLogin"), 'an HTML page "Sign in - Google Accounts"'),
        "404": (lambda h: h.send_error(404), "HTTP 404 Not Found"),
        "cut off": (serve_cut_off(files[2]), f"transfer cut short after {len(files[2]) // 2:,} of {len(files[2]):,}"),
        "wrong multi": (serve_file(files[8]), "got a file that is a 8x checkpoint, not 2x"),
        "not a checkpoint": (serve_file(b"PK\x03\x04 not really a zip"), "got a file that is truncated, corrupt"),
    }


@pytest.mark.parametrize(
    "answer", ["quota page", "quota page 403", "sign-in redirect", "404", "cut off", "wrong multi", "not a checkpoint"]
)
def test_bad_answer_fails_with_one_line_and_no_file(
    answer: str, official: Server, files: dict[int, bytes], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    handler, reason = bad_answers(files)[answer]
    official.routes["/download"] = handler
    official.routes["/mirror/FLAVR_2x.pth"] = handler
    official.routes["/ServiceLogin"] = serve_html("<html><head><title>Sign in - Google Accounts</title></head></html>")

    assert main(["download", "2x", "--dir", str(tmp_path), "-q"]) == 1

    lines = capsys.readouterr().err.splitlines()
    drive = dl.DRIVE_URL.format(id=dl.DRIVE_IDS[2])
    assert lines[0].startswith(f"Google Drive ({drive}): ") and reason in lines[0]
    assert lines[1].startswith(f"GitHub mirror ({official.url('/mirror/FLAVR_2x.pth')}): ") and reason in lines[1]
    assert leftovers(tmp_path) == []
    assert not (tmp_path / "manifest.json").exists()


def test_every_source_failing_lists_each_and_why(
    official: Server, files: dict[int, bytes], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    official.routes["/download"] = serve_html(QUOTA_PAGE)
    official.routes["/other/FLAVR_2x.pth"] = serve_cut_off(files[2])  # the mirror answers 404

    assert (
        main(["download", "2x", "--dir", str(tmp_path), "-q", "--url", official.url("/other/FLAVR_{multi}x.pth")]) == 1
    )

    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 4
    assert lines[0].startswith("--url (") and "transfer cut short" in lines[0]
    assert lines[1].startswith("Google Drive (") and "Quota exceeded" in lines[1]
    assert lines[2].startswith("GitHub mirror (") and "HTTP 404" in lines[2]
    assert lines[3] == "vsflavr download: no source gave a valid FLAVR_2x.pth (3 tried); nothing saved"
    assert leftovers(tmp_path) == []


def test_download_error_lists_each_source(server: Server, tmp_path: Path) -> None:
    sources = [dl.Source("one", server.url("/a.pth")), dl.Source("two", server.url("/b.pth"))]
    with pytest.raises(dl.DownloadError) as caught:
        dl.download_weights(2, tmp_path, sources=sources, progress=False)
    assert str(caught.value).splitlines() == [
        "could not download FLAVR_2x.pth; every source failed:",
        f'  one ({sources[0].url}): HTTP 404 Not Found with an HTML page "Error response"',
        f'  two ({sources[1].url}): HTTP 404 Not Found with an HTML page "Error response"',
    ]


def test_unreachable_host(tmp_path: Path) -> None:
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{closed.getsockname()[1]}/FLAVR_2x.pth"
    with pytest.raises(dl.DownloadError, match=r"request failed \(ConnectionError\)"):
        dl.download_weights(2, tmp_path, sources=[dl.Source("dead", url)], progress=False)


def test_falls_back_to_the_next_source(official: Server, files: dict[int, bytes], tmp_path: Path) -> None:
    official.routes["/download"] = serve_html(QUOTA_PAGE)
    official.routes["/mirror/FLAVR_8x.pth"] = serve_file(files[8])

    assert main(["download", "8x", "--dir", str(tmp_path), "-q"]) == 0

    assert manifest(tmp_path)["FLAVR_8x.pth"]["source"] == official.url("/mirror/FLAVR_8x.pth")


def test_all_keeps_going_and_manifest_keeps_every_file(
    official: Server, files: dict[int, bytes], tmp_path: Path
) -> None:
    official.routes["/mirror/FLAVR_2x.pth"] = serve_file(files[2])
    official.routes["/mirror/FLAVR_8x.pth"] = serve_file(files[8])  # 4x answers 404 everywhere

    assert main(["download", "all", "--dir", str(tmp_path), "-q"]) == 1

    assert leftovers(tmp_path) == ["FLAVR_2x.pth", "FLAVR_8x.pth"]
    assert sorted(manifest(tmp_path)) == ["FLAVR_2x.pth", "FLAVR_8x.pth"]


def test_valid_file_is_kept_unless_forced(official: Server, files: dict[int, bytes], tmp_path: Path) -> None:
    (tmp_path / "FLAVR_2x.pth").write_bytes(files[2])

    assert main(["download", "2x", "--dir", str(tmp_path), "-q"]) == 0
    assert official.requests == []

    official.routes["/mirror/FLAVR_2x.pth"] = serve_file(files[2])
    assert main(["download", "2x", "--dir", str(tmp_path), "-q", "--force"]) == 0
    assert official.requests[-1] == "/mirror/FLAVR_2x.pth"


def test_url_for_all_needs_a_placeholder(tmp_path: Path) -> None:
    assert main(["download", "all", "--dir", str(tmp_path), "--url", "http://127.0.0.1:9/FLAVR.pth"]) == 2
