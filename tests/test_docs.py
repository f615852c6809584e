"""Documentation that cannot rot: the README's and the Getting started page's Python
blocks run, and the site builds with ``mkdocs build --strict``.

For each page in ``RUN_PAGES``: the quick start (the block after ``<!-- quick-start -->``)
runs alone, as pasted into an empty folder, and every block runs in order as one script,
in an empty folder too. A block may opt out with ``<!-- no-run: REASON -->`` on the line
before it; at most a third of a page's blocks may. Blocks run in a fresh interpreter
without API keys in the environment (the quick start uses the bundled fake provider).
"""

from __future__ import annotations

import os
import pathlib
import re
import subprocess
import sys
from dataclasses import dataclass

import pytest
import yaml

ROOT = pathlib.Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
RUN_PAGES = ("README.md", "docs/getting-started.md")

_FENCE = re.compile(r"^(\s*)```python\s*$")
_CLOSE = re.compile(r"^\s*```\s*$")
_NO_RUN = re.compile(r"^\s*<!-- no-run: (.*?) -->\s*$")
_QUICK_START = re.compile(r"^\s*<!-- quick-start -->\s*$")


@dataclass(frozen=True)
class Block:
    line: int  # of the opening fence, 1-based
    code: str
    no_run: str | None  # the reason given, or None
    quick_start: bool


def python_blocks(text: str) -> list[Block]:
    """The ```python blocks of a Markdown text, dedented to their fence, with their marks
    (the line right before the fence)."""
    lines = text.splitlines()
    blocks: list[Block] = []
    i = 0
    while i < len(lines):
        m = _FENCE.match(lines[i])
        if m is None:
            i += 1
            continue
        indent = len(m.group(1))
        end = i + 1
        while not _CLOSE.match(lines[end]):
            end += 1
        code = "\n".join(line[indent:] for line in lines[i + 1 : end]) + "\n"
        before = lines[i - 1] if i > 0 else ""
        no_run = _NO_RUN.match(before)
        blocks.append(
            Block(
                i + 1, code, no_run.group(1) if no_run else None, bool(_QUICK_START.match(before))
            )
        )
        i = end + 1
    return blocks


def run_script(code: str, folder: pathlib.Path, name: str) -> subprocess.CompletedProcess[str]:
    """Run ``code`` as a script in ``folder`` (empty), without API keys."""
    script = folder / name
    script.write_text(code)
    env = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY")}
    return subprocess.run(
        [sys.executable, script.name],
        cwd=folder,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )


def page_blocks(page: str) -> list[Block]:
    return python_blocks((ROOT / page).read_text())


def test_readme_stands_alone() -> None:
    text = README.read_text()
    assert "../shared" not in text
    assert "DESIGN.md" not in text


README_MAX_LINES = 250


def test_the_readme_is_a_landing_page_of_at_most_250_lines() -> None:
    lines = README.read_text().splitlines()
    assert len(lines) <= README_MAX_LINES, (
        f"README.md has {len(lines)} lines; at most {README_MAX_LINES}: move detail to docs/"
    )
    # It starts with the two commands.
    first_block = lines[lines.index("```bash") + 1 : lines.index("```bash") + 3]
    assert [line.split()[:2] for line in first_block] == [["make", "demo"], ["make", "test"]]


_LINK = re.compile(r"\]\(([^)\s]+)\)")


def _slug(heading: str) -> str:
    """The anchor Python-Markdown's toc extension gives a heading (its default slugify)."""
    explicit = re.search(r"\{#([\w-]+)\}\s*$", heading)
    if explicit:
        return explicit.group(1)
    text = re.sub(r"[^\w\s-]", "", heading.replace("`", "")).strip().lower()
    return re.sub(r"[-\s]+", "-", text)


def headings(text: str) -> list[str]:
    """The Markdown headings of a page, outside code fences, without their #s."""
    found: list[str] = []
    fenced = False
    for line in text.splitlines():
        if line.lstrip().startswith("```"):
            fenced = not fenced
        elif not fenced and re.match(r"^#{1,6} ", line):
            found.append(line.lstrip("#").strip())
    return found


def test_the_slug_is_the_one_mkdocs_makes() -> None:
    assert _slug("`evaluate()` and `adaptive-router evaluate`") == (
        "evaluate-and-adaptive-router-evaluate"
    )
    assert _slug("Tables and migrations {#migrations}") == "migrations"
    assert _slug("Spend target") == "spend-target"


def test_every_relative_link_of_the_readme_reaches_a_file_and_its_anchor() -> None:
    """The README's links into the site are relative links to docs/*.md (they work on
    GitHub); mkdocs --strict does not read the README, so this checks them."""
    links = [m for m in _LINK.findall(README.read_text()) if "://" not in m]
    assert sum(link.startswith("docs/") for link in links) >= 15
    for link in links:
        path, _, anchor = link.partition("#")
        target = ROOT / path
        assert target.is_file(), f"README links to {link}: no such file"
        if anchor:
            slugs = {_slug(h) for h in headings(target.read_text())}
            assert anchor in slugs, f"README links to {link}: no such heading in {path}"


def test_the_parser_reads_marks_and_indented_blocks() -> None:
    text = (
        "<!-- quick-start -->\n```python\nx = 1\n```\n"
        "* item\n  <!-- no-run: needs an API key -->\n  ```python\n  y = 2\n  ```\n"
        "```bash\nz\n```\n"
    )
    assert python_blocks(text) == [
        Block(2, "x = 1\n", None, True),
        Block(7, "y = 2\n", "needs an API key", False),
    ]


@pytest.mark.parametrize("page", RUN_PAGES)
def test_at_most_a_third_of_the_blocks_opt_out_each_with_a_reason(page: str) -> None:
    blocks = page_blocks(page)
    opted_out = [b for b in blocks if b.no_run is not None]
    assert blocks, f"{page} has no Python block"
    assert all(b.no_run.strip() for b in opted_out), "each no-run mark needs its reason"
    assert 3 * len(opted_out) <= len(blocks), (
        f"{page}: {len(opted_out)} of {len(blocks)} blocks opt out (lines "
        f"{[b.line for b in opted_out]}); at most a third may"
    )


@pytest.mark.parametrize("page", RUN_PAGES)
def test_the_quick_start_runs_as_pasted_into_an_empty_folder(
    page: str, tmp_path: pathlib.Path
) -> None:
    (quick,) = [b for b in page_blocks(page) if b.quick_start]
    assert quick.no_run is None
    result = run_script(quick.code, tmp_path, "quick_start.py")
    assert result.returncode == 0, result.stderr[-3000:]
    lines = result.stdout.splitlines()
    # What it prints: each path's posterior, then what the requests cost.
    paths = {line.split()[0] for line in lines[:-1]}
    assert paths == {"gpt-4o", "claude", "regex"}, result.stdout
    requests, _, rest = lines[-1].partition(" requests, ")
    assert requests == "200" and rest.endswith(tuple("0123456789")), lines[-1]


def test_the_quick_start_is_the_same_in_the_readme_and_the_site() -> None:
    (readme,) = [b.code for b in page_blocks("README.md") if b.quick_start]
    (site,) = [b.code for b in page_blocks("docs/getting-started.md") if b.quick_start]
    assert readme == site


@pytest.mark.parametrize("page", RUN_PAGES)
def test_every_block_of_the_page_runs_in_order_as_one_script(
    page: str, tmp_path: pathlib.Path
) -> None:
    parts = [
        f"# --- {page}, block at line {b.line} ---\n{b.code}"
        for b in page_blocks(page)
        if b.no_run is None
    ]
    result = run_script("\n".join(parts), tmp_path, "page_blocks.py")
    assert result.returncode == 0, result.stderr[-3000:]


# The pages whose examples build on the quick start's names (paths, ok, extract_regex,
# text) and on each other's (Order, prompt, openai_path), in the order the README held
# them before it became a landing page: they run as one script after Getting started, so
# an example moved out of the README is still run.
CHAINED_PAGES = (
    "docs/getting-started.md",
    "docs/guides/providers.md",
    "docs/concepts/success-and-scores.md",
    "docs/concepts/contexts.md",
    "docs/concepts/paths.md",
    "docs/reference/error-kinds.md",
    "docs/concepts/objectives-budgets-spend.md",
    "docs/guides/evaluation.md",
)


def test_the_guides_blocks_run_in_order_after_getting_started(tmp_path: pathlib.Path) -> None:
    blocks = [(page, b) for page in CHAINED_PAGES for b in page_blocks(page)]
    runnable = [(page, b) for page, b in blocks if b.no_run is None]
    assert len(runnable) >= 12 and all(b.no_run.strip() for _, b in blocks if b.no_run)
    parts = [f"# --- {page}, block at line {b.line} ---\n{b.code}" for page, b in runnable]
    result = run_script("\n".join(parts), tmp_path, "guides.py")
    assert result.returncode == 0, result.stderr[-3000:]


def test_every_python_block_of_the_site_runs_or_says_why_not() -> None:
    """A page outside the runs above holds only blocks marked no-run, with a reason."""
    pages = [str(p.relative_to(ROOT)) for p in (ROOT / "docs").rglob("*.md")]
    for page in pages:
        if page in CHAINED_PAGES or page in RUN_PAGES:
            continue
        unmarked = [b.line for b in page_blocks(page) if not (b.no_run or "").strip()]
        assert not unmarked, f"{page}: blocks at lines {unmarked} are neither run nor marked"


# -- the site ------------------------------------------------------------------------------


def test_the_site_builds_with_strict_and_no_warning(tmp_path: pathlib.Path) -> None:
    site = tmp_path / "site"
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)],
        cwd=ROOT,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-5000:]
    assert "WARNING" not in result.stderr, result.stderr
    # Generated from the code: every command's reference, the API's docstrings.
    cli = (site / "reference" / "cli" / "index.html").read_text()
    for command in ("demo", "posteriors", "stats", "costs", "plot", "check", "evaluate"):
        assert f"adaptive-router {command}" in cli
    assert "adaptive-router db upgrade" in cli and "--max-missing-reward" in cli
    router = (site / "reference" / "api" / "router" / "index.html").read_text()
    assert "Routes each request to the path most likely to succeed now" in router
    assert ":class:" not in router  # Sphinx roles are rendered, not shown raw
    config = (site / "reference" / "configuration" / "index.html").read_text()
    assert "half_life" in config and "max_buffer" in config


def _nav_pages(items: list[object], titles: tuple[str, ...] = ()) -> list[tuple[str, str]]:
    """(titles on the way to the page, joined; the page's path) for every page of the nav."""
    pages: list[tuple[str, str]] = []
    for item in items:
        if isinstance(item, str):
            pages.append((" / ".join(titles), item))
        elif isinstance(item, dict):
            for title, value in item.items():
                if isinstance(value, list):
                    pages += _nav_pages(value, (*titles, str(title)))
                else:
                    pages.append((" / ".join((*titles, str(title))), str(value)))
    return pages


def _page_text(page: str) -> str:
    path = ROOT / "docs" / page
    if not path.exists():  # the simulation write-ups the hooks add to the site
        path = ROOT / page
    return path.read_text()


# What a reader must find from the site's navigation alone: a page whose nav title or
# one of whose headings names it.
NAV_NEEDLES = [
    "spend target",
    "fork safety",
    "fault table",
    "evaluate",
    "dashboard",
    "litellm_path",
    "error kinds",
    "command line",
    "changelog",
    "benchmarks",
]


def _names(text: str, needle: str) -> bool:
    return needle in text.replace("`", "").lower()


@pytest.mark.parametrize("needle", NAV_NEEDLES)
def test_the_navigation_leads_to_the_page_for(needle: str) -> None:
    nav = yaml.safe_load((ROOT / "mkdocs.yml").read_text())["nav"]
    pages = _nav_pages(nav)
    assert len(pages) > 30
    found = [
        page
        for title, page in pages
        if _names(title, needle) or any(_names(h, needle) for h in headings(_page_text(page)))
    ]
    assert found, f"no page in mkdocs.yml's nav names {needle!r} in its title or headings"


def test_the_nav_search_fails_for_what_no_page_names() -> None:
    nav = yaml.safe_load((ROOT / "mkdocs.yml").read_text())["nav"]
    assert not any(
        _names(title, "no such topic")
        or any(_names(h, "no such topic") for h in headings(_page_text(p)))
        for title, p in _nav_pages(nav)
    )


def test_every_row_of_the_fault_table_names_a_test() -> None:
    """A row of the fault table is proved by at least one named ``test_x.py::test_y``
    (whether those exist is the test below)."""
    text = (ROOT / "docs/guarantees.md").read_text()
    lines = text.split("## The fault table", 1)[1].split("\n## ", 1)[0].splitlines()
    table = [line for line in lines if line.startswith("|")]
    header = [cell.strip() for cell in table[0].strip("|").split("|")]
    assert header == ["fault", "what the router does", "what you lose", "proved by"]
    rows = table[2:]
    assert len(rows) >= 15
    for row in rows:
        cells = row.strip("|").split(" | ")
        assert len(cells) == 4, row
        assert re.search(r"`test_\w+\.py::test_\w+`", cells[3]), f"no test named: {cells[0]}"


@pytest.mark.parametrize("page", ["README.md", "docs/guarantees.md"])
def test_every_test_the_page_names_exists(page: str) -> None:
    """The fault table and the Guarantees name the tests that prove each row: a renamed or
    deleted test must not leave a row proved by nothing. Every ``test_x.py::test_y`` in
    the page (and every bare ``test_y`` in the same table cell, which refers to the
    file named before it) is a test function of that file."""
    tests_dir = ROOT / "tests"
    text = (ROOT / page).read_text()
    named = re.findall(r"`(test_\w+\.py)::(test_\w+)", text)
    if page == "docs/guarantees.md":
        assert len(named) >= 20
    for file_, name in named:
        assert f"def {name}(" in (tests_dir / file_).read_text(), f"{file_}::{name}"
    for row in (line for line in text.splitlines() if line.startswith("|")):
        current = None
        for file_, name in re.findall(r"`(test_\w+\.py)?(?:::)?(test_\w+\b(?!\.py))?", row):
            current = file_ or current
            if current is None or not name:
                continue
            assert f"def {name}(" in (tests_dir / current).read_text(), f"{current}::{name}"
