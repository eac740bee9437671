"""The documentation builds strictly and says what the code does.

README.md and the pages in docs/ (docs/_incoming, other branches' unplaced notes, excepted) must:
build as a MkDocs site with warnings as errors; list every flavr() keyword with its real default;
list every option of every command; keep every relative link and anchor working on a code forge
and on the site; and hold only code that parses.  The table formats are described on
docs/contributing.md, "The documentation".
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import importlib.util
import inspect
import io
import os
import re
import shlex
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import pytest

import vsflavr
from vsflavr.__main__ import DOCS, build_parser, main

ROOT = Path(__file__).parent.parent
DOCS_DIR = ROOT / "docs"


def _hooks() -> ModuleType:
    spec = importlib.util.spec_from_file_location("mkdocs_hooks", ROOT / "tools" / "mkdocs_hooks.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


EXTERNAL = {ROOT / path: uri for path, uri in _hooks().EXTERNAL.items()}
"""Pages kept outside docs/ (README.md, the model card) and their names on the site."""

FENCE = re.compile(r"^\s*(```+|~~~+)\s*([^\s`]*)")
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
CODE_SPAN = re.compile(r"`[^`]*`")


def pages() -> list[Path]:
    docs = sorted(p for p in DOCS_DIR.rglob("*.md") if "_incoming" not in p.relative_to(DOCS_DIR).parts)
    return [*EXTERNAL, *docs]


def built(page: Path) -> str:
    """Where the site has a page's HTML."""
    uri = Path(EXTERNAL.get(page) or page.relative_to(DOCS_DIR))
    return "index.html" if uri == Path("index.md") else str(uri.with_suffix("") / "index.html")


def name(page: Path) -> str:
    return str(page.relative_to(ROOT))


@dataclass
class Block:
    language: str
    code: str
    line: int


@dataclass
class Page:
    """A Markdown file split into its fenced code blocks and the lines outside them (numbered from 1)."""

    blocks: list[Block]
    prose: list[tuple[int, str]]


def split(page: Path) -> Page:
    blocks: list[Block] = []
    prose: list[tuple[int, str]] = []
    fence: str | None = None
    indent = ""  # a block inside a list item is indented like the fence that opens it
    for number, line in enumerate(page.read_text(encoding="utf-8").splitlines(), 1):
        match = FENCE.match(line)
        if fence is None and match:
            fence, indent = match[1], line[: len(line) - len(line.lstrip())]
            blocks.append(Block(match[2].lower(), "", number))
        elif fence is not None and line.strip().startswith(fence) and not line.strip()[len(fence) :].strip():
            fence = None
        elif fence is not None:
            blocks[-1].code += line.removeprefix(indent) + "\n"
        else:
            prose.append((number, line))
    assert fence is None, f"{name(page)}: a code block opened and never closed"
    return Page(blocks, prose)


def slug(heading: str) -> str:
    """The anchor of a heading as GitHub and the site (pymdownx.slugs, case lower) make it."""
    text = LINK.sub(lambda m: m[0][1 : m[0].index("](")], heading)  # [text](url) -> text
    text = text.replace("`", "").strip().lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def headings(page: Path) -> list[str]:
    return [slug(line.lstrip("#")) for _, line in split(page).prose if re.match(r"#{1,6}\s", line)]


def tables(lines: list[tuple[int, str]]) -> Iterator[tuple[list[str], list[list[str]]]]:
    """Each table among prose lines as (header cells, rows of cells); ``\\|`` stays inside a cell."""
    rows: list[list[str]] = []
    for _, line in [*lines, (0, "")]:
        if line.startswith("|"):
            cells = re.split(r"(?<!\\)\|", line.strip().strip("|"))
            rows.append([cell.strip().replace("\\|", "|") for cell in cells])
        elif rows:
            if len(rows) > 1:
                yield rows[0], rows[2:]
            rows = []


def sections(page: Path, level: int = 2) -> dict[str, list[tuple[int, str]]]:
    """The prose lines under each heading of ``level``, by the heading's text."""
    out: dict[str, list[tuple[int, str]]] = {}
    current: list[tuple[int, str]] | None = None
    for number, line in split(page).prose:
        if re.match(rf"#{{{level}}}\s", line):
            current = out.setdefault(line[level:].strip(), [])
        elif re.match(rf"#{{1,{level - 1}}}\s", line):
            current = None
        elif current is not None:
            current.append((number, line))
    return out


# -- the site -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("site")
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-f", str(ROOT / "mkdocs.yml"), "-d", str(out)],
        capture_output=True,
        text=True,
        encoding="utf-8",
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
        timeout=300,
    )
    assert result.returncode == 0, f"mkdocs build --strict failed:\n{result.stdout}{result.stderr}"
    return out


def test_the_site_builds_strictly_with_every_page(site: Path) -> None:
    for page in pages():
        path = built(page)
        assert (site / path).is_file(), f"{name(page)} is not on the site"


def test_the_site_makes_the_same_anchors_as_the_forge(site: Path) -> None:
    """Every heading's id on the site is the slug this test (and the links' check) computes."""
    for page in pages():
        path = built(page)
        html = (site / path).read_text(encoding="utf-8")
        ids = re.findall(r'<h[1-6] id="([^"]+)"', html)
        assert ids == headings(page), f"{name(page)}: site anchors {ids} differ from the forge's {headings(page)}"


def test_headings_within_a_page_differ() -> None:
    """GitHub and the site number repeated headings differently, so a page never repeats one."""
    for page in pages():
        slugs = headings(page)
        repeated = sorted({s for s in slugs if slugs.count(s) > 1})
        assert not repeated, f"{name(page)}: headings repeated: {repeated}"


# -- links ----------------------------------------------------------------------------------------


def check_link(page: Path, target: str) -> str | None:
    """Why ``target``, written on ``page``, does not resolve; None when it does."""
    path, _, anchor = target.partition("#")
    file = (page.parent / path).resolve() if path else page
    if not file.exists():
        return f"{file} does not exist"
    if ROOT.resolve() not in file.parents:
        return "it leaves the repository"
    if anchor and file.suffix != ".md":
        return "an anchor into a file that is not a page"
    if anchor and anchor not in headings(file):
        return f"{name(file)} has no heading with the anchor #{anchor}"
    return None


def test_every_relative_link_and_anchor_resolves() -> None:
    broken = []
    for page in pages():
        for number, line in split(page).prose:
            for target in LINK.findall(CODE_SPAN.sub("``", line)):
                if re.match(r"[a-z][a-z+.-]*:", target):  # https:, mailto:
                    continue
                if (why := check_link(page, target)) is not None:
                    broken.append(f"{name(page)}:{number}: ({target}): {why}")
    assert not broken, "broken links:\n" + "\n".join(broken)


# -- code blocks ----------------------------------------------------------------------------------

SHELL = {"sh", "bash", "shell", "console"}
KNOWN = {"python", "text", "json", "toml", "yaml", *SHELL}


def command_lines(code: str) -> Iterator[list[str]]:
    """Each ``python -m vsflavr ...`` command of a shell block as its arguments after ``vsflavr``."""
    for line in code.replace("\\\n", " ").splitlines():
        lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
        lexer.whitespace_split = True
        lexer.commenters = "#"
        words = list(lexer)
        for start in range(len(words) - 2):
            if words[start : start + 3] == ["python", "-m", "vsflavr"]:
                args = words[start + 3 :]
                end = next((i for i, w in enumerate(args) if w and set(w) <= set("|&;<>()")), len(args))
                yield args[:end]


def parse_error(args: list[str]) -> str | None:
    """argparse's complaint about a command line, or None when it parses."""
    parser = build_parser()
    for command in [parser, *commands(parser).values()]:
        command.allow_abbrev = False  # a prefix of an option is a misspelling on a page
    stderr = io.StringIO()
    try:
        with contextlib.redirect_stderr(stderr), contextlib.redirect_stdout(io.StringIO()):
            parser.parse_args(args)
    except SystemExit as exit:
        if exit.code:
            return stderr.getvalue().strip().splitlines()[-1]
    return None


def test_every_code_block_has_a_language_and_python_blocks_parse() -> None:
    bad = []
    for page in pages():
        for block in split(page).blocks:
            where = f"{name(page)}:{block.line}"
            if block.language not in KNOWN:
                bad.append(f"{where}: code block language {block.language!r} is none of {sorted(KNOWN)}")
            elif block.language == "python":
                try:
                    ast.parse(block.code)
                except SyntaxError as exc:
                    bad.append(f"{where}: python block does not parse: {exc}")
    assert not bad, "\n".join(bad)


def test_every_command_line_in_the_docs_parses() -> None:
    bad, seen = [], 0
    for page in pages():
        for block in split(page).blocks:
            if block.language in SHELL:
                for args in command_lines(block.code):
                    seen += 1
                    if (error := parse_error(args)) is not None:
                        bad.append(f"{name(page)}:{block.line}: python -m vsflavr {shlex.join(args)}: {error}")
    assert seen > 10 and not bad, "\n".join(bad)


# -- flavr() parameters ---------------------------------------------------------------------------

PARAMETERS_PAGE = DOCS_DIR / "parameters.md"
SIGNATURE = inspect.signature(vsflavr.flavr).parameters
REQUIRED = "required"


def literal(node: ast.expr) -> object:
    """A default as written in the docs: a constant, or arithmetic on constants (``3 / 255``)."""
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        return -literal(node.operand)  # type: ignore[operator]
    operators = {ast.Div: lambda a, b: a / b, ast.Mult: lambda a, b: a * b, ast.Add: lambda a, b: a + b}
    if isinstance(node, ast.BinOp) and type(node.op) in operators:
        return operators[type(node.op)](literal(node.left), literal(node.right))
    raise ValueError(f"not a literal: {ast.unparse(node)}")


def parameter_rows(page: Path) -> Iterator[tuple[str, str]]:
    for header, rows in tables(split(page).prose):
        if [cell.lower() for cell in header] == ["parameter", "default", "meaning"]:
            for row in rows:
                yield row[0], row[1]


def row_errors(page: Path) -> tuple[list[str], set[str]]:
    errors, names = [], set()
    for cell, default in parameter_rows(page):
        match = re.fullmatch(r"`(\w+)`", cell)
        if match is None or match[1] not in SIGNATURE:
            errors.append(f"{name(page)}: {cell} is not one flavr() parameter in backticks")
            continue
        names.add(key := match[1])
        real = SIGNATURE[key].default
        if real is inspect.Parameter.empty:
            if default != REQUIRED:
                errors.append(f"{name(page)}: {key} has no default; write {REQUIRED!r}, not {default!r}")
            continue
        written = re.fullmatch(r"`([^`]+)`", default)
        try:
            value = literal(ast.parse(written[1], mode="eval").body) if written else ValueError
        except (SyntaxError, ValueError):
            value = ValueError
        if value is ValueError or value != real or type(value) is not type(real):
            errors.append(f"{name(page)}: {key}'s default is {real!r}, the table says {default}")
    return errors, names


def test_every_flavr_parameter_has_a_row_with_its_real_default() -> None:
    errors, names = row_errors(PARAMETERS_PAGE)
    missing = [key for key in SIGNATURE if key not in names]
    assert not missing, f"{name(PARAMETERS_PAGE)} has no row for: {missing}"
    assert not errors, "\n".join(errors)


def test_parameter_tables_on_every_page_are_true() -> None:
    errors = [error for page in pages() for error in row_errors(page)[0]]
    assert not errors, "\n".join(errors)


def test_the_signature_on_the_parameters_page_is_the_real_one() -> None:
    blocks = [b.code for b in split(PARAMETERS_PAGE).blocks if b.code.startswith("def flavr(")]
    assert len(blocks) == 1, "docs/parameters.md needs one python block starting with def flavr("
    function = ast.parse(blocks[0]).body[0]
    assert isinstance(function, ast.FunctionDef)
    arguments = function.args
    written = [(a.arg, "positional") for a in arguments.args] + [(a.arg, "keyword") for a in arguments.kwonlyargs]
    real = [(key, "keyword" if p.kind is p.KEYWORD_ONLY else "positional") for key, p in SIGNATURE.items()]
    assert written == real
    defaults = dict(zip([a.arg for a in arguments.args][-len(arguments.defaults) :], arguments.defaults, strict=True))
    defaults |= {a.arg: d for a, d in zip(arguments.kwonlyargs, arguments.kw_defaults, strict=True) if d}
    for key, p in SIGNATURE.items():
        assert (literal(defaults[key]) if key in defaults else inspect.Parameter.empty) == p.default, key


# -- the command line -----------------------------------------------------------------------------

CLI_PAGE = DOCS_DIR / DOCS.removeprefix("docs/")


def commands(parser: argparse.ArgumentParser | None = None) -> dict[str, argparse.ArgumentParser]:
    """Each command's parser, by name."""
    parser = parser or build_parser()
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


def arguments(parser: argparse.ArgumentParser) -> set[str]:
    """Every option string of a command's parser, and each positional argument's name in capitals."""
    out = set()
    for action in parser._actions:
        if isinstance(action, argparse._HelpAction):
            continue
        out |= set(action.option_strings) if action.option_strings else {action.dest.upper()}
    return out


def documented(lines: list[tuple[int, str]]) -> set[str]:
    """The options and arguments in the first column of the ``| option | meaning |`` tables of a section."""
    out = set()
    for header, rows in tables(lines):
        if header[0].lower() == "option":
            for row in rows:
                out |= {span.split()[0] for span in re.findall(r"`([^`]+)`", row[0])}
    return out


def test_every_command_and_option_is_on_the_command_line_page_and_nothing_else() -> None:
    parsers = commands()
    page_sections = {title.strip("`"): lines for title, lines in sections(CLI_PAGE).items()}
    assert sorted(page_sections) == sorted(parsers), "docs/cli.md needs one ## section per command, no other"
    problems = []
    for command, parser in parsers.items():
        real, written = arguments(parser), documented(page_sections[command])
        if missing := sorted(real - written):
            problems.append(f"docs/cli.md, {command}: not in its option table: {missing}")
        if unknown := sorted(written - real):
            problems.append(f"docs/cli.md, {command}: no such option or argument: {unknown}")
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("command", [None, *commands()])
def test_help_names_the_page_that_explains_it(command: str | None, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit:
        main(["--help"] if command is None else [command, "--help"])
    assert exit.value.code == 0
    help_text = " ".join(capsys.readouterr().out.split())
    target = DOCS if command is None else f"{DOCS}#{command}"
    assert help_text.endswith(target), help_text[-200:]
    assert check_link(ROOT / "README.md", target) is None


# -- the front door -------------------------------------------------------------------------------


def test_readme_is_short_and_ci_runs_its_test_command() -> None:
    readme = ROOT / "README.md"
    assert len(readme.read_text(encoding="utf-8").splitlines()) <= 150
    quick_start = next(b.code for b in split(readme).blocks if b.language in SHELL)
    commands_given = [line for line in quick_start.splitlines() if line and not line.startswith("#")]
    assert len(commands_given) == 2, "the Quick start gives two commands"
    ci = [line for line in (ROOT / ".ci" / "run").read_text().splitlines() if line and not line.startswith("#")]
    assert ci[-1] == commands_given[1] == "python -m pytest -q"
    getting_started = [b.code for b in split(DOCS_DIR / "getting-started.md").blocks if b.language in SHELL]
    assert getting_started[0] == quick_start, "docs/getting-started.md gives the Quick start of README.md"
