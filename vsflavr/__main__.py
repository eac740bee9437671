"""Command line: ``python -m vsflavr COMMAND ...`` (also installed as ``vsflavr``).

Each command is one small function taking the parsed arguments and returning the exit
status, plus an ``add_*`` function that declares its sub-parser; :func:`build_parser`
calls those.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from .download import MULTIS, DownloadError, Source, download_weights, official_sources
from .weights import ENV_WEIGHTS_DIR, default_download_dir, user_weights_dir

logger = logging.getLogger("vsflavr")


def download(args: argparse.Namespace) -> int:
    """Download, verify and install the official checkpoints; 0 when every one is in place."""
    directory = args.dir or default_download_dir()
    multis = MULTIS if args.which == "all" else (int(args.which.removesuffix("x")),)
    if args.url and len(multis) > 1 and "{multi}" not in args.url:
        logger.error("vsflavr download: --url with 'all' needs a {multi} placeholder, e.g. .../FLAVR_{multi}x.pth")
        return 2
    failed = 0
    for multi in multis:
        sources = official_sources(multi)
        if args.url:
            sources.insert(0, Source("--url", args.url.replace("{multi}", str(multi))))
        try:
            download_weights(multi, directory, sources=sources, force=args.force, progress=not args.quiet)
        except DownloadError as exc:
            logger.error(
                "vsflavr download: no source gave a valid %s (%d tried); nothing saved", exc.file, len(exc.failures)
            )
            failed += 1
    return 1 if failed else 0


def add_download(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = commands.add_parser(
        "download",
        help="download the official FLAVR checkpoints",
        description="Download the official FLAVR checkpoints, verify them and install them where vsflavr finds "
        "them. Sources are tried in order (--url first when given, then Google Drive, then the GitHub mirror) "
        "until one gives a valid checkpoint.",
    )
    p.add_argument(
        "which", nargs="?", default="all", choices=[f"{m}x" for m in MULTIS] + ["all"], help="which (default: all)"
    )
    p.add_argument("--dir", help=f"target directory (default: ${ENV_WEIGHTS_DIR}, else {user_weights_dir()})")
    p.add_argument("--url", help="another mirror to try first; {multi} in it becomes 2, 4 or 8")
    p.add_argument("--force", action="store_true", help="download again even if a valid file is there")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.set_defaults(run=download)


def build_parser() -> argparse.ArgumentParser:
    """The parser of every command; each ``add_*`` function adds one and sets ``run`` to its function."""
    parser = argparse.ArgumentParser(prog="python -m vsflavr", description="FLAVR frame interpolation for VapourSynth")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    add_download(commands)
    return parser


@contextmanager
def _log_to_stderr() -> Iterator[None]:
    """Show the ``vsflavr`` logger's lines on stderr while a command runs."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    args = build_parser().parse_args(argv)
    with _log_to_stderr():
        return int(args.run(args))


if __name__ == "__main__":
    sys.exit(main())
