"""MkDocs hooks: pages that live outside docs/ (README.md, the model card) become pages of the site.

On the forge every page links to the others by its path in the repository (README.md to
``docs/cli.md``, a page to ``../vsflavr/models/MODEL_CARD.md``).  The site puts those files at
``index.md`` and ``model-card.md``; :func:`on_page_markdown` rewrites such links to the site's
names, so the same Markdown works in both places.
"""

from __future__ import annotations

import posixpath
import re
from pathlib import Path
from typing import Any

from mkdocs.structure.files import File, Files

EXTERNAL = {"README.md": "index.md", "vsflavr/models/MODEL_CARD.md": "model-card.md"}
"""Repository path -> site path of the pages kept outside docs/."""

DOCS = "docs"
LINK = re.compile(r"(\]\()([^)\s#]+)(#[^)\s]*)?(\))")


def on_files(files: Files, config: Any) -> Files:
    root = Path(config.config_file_path).parent
    for repo_path, uri in EXTERNAL.items():
        files.append(File.generated(config, uri, abs_src_path=str(root / repo_path)))
    return files


def repo_path(uri: str) -> str:
    """Where the page the site serves as ``uri`` lives in the repository."""
    return next((path for path, site in EXTERNAL.items() if site == uri), f"{DOCS}/{uri}")


def site_uri(path: str) -> str | None:
    """The site path of a repository file, or None when the site does not have it."""
    if path in EXTERNAL:
        return EXTERNAL[path]
    if path.startswith(f"{DOCS}/"):
        return path.removeprefix(f"{DOCS}/")
    return None


def on_page_markdown(markdown: str, page: Any, config: Any, files: Files) -> str:
    here = page.file.src_uri
    source_dir = posixpath.dirname(repo_path(here))

    def rewrite(match: re.Match[str]) -> str:
        target = match[2]
        if "://" in target or target.startswith(("mailto:", "/")):
            return match[0]
        uri = site_uri(posixpath.normpath(posixpath.join(source_dir, target)))
        if uri is None:
            return match[0]  # left for MkDocs to report
        new = posixpath.relpath(uri, posixpath.dirname(here) or ".")
        return f"{match[1]}{new}{match[3] or ''}{match[4]}"

    return LINK.sub(rewrite, markdown)
