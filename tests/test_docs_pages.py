"""The documentation reads as docs/index.md says: in its order, each page linking to the next, no link broken."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
ORDER = re.findall(r"^\| \w+ \| \[[^\]]+\]\(([\w-]+\.md)\)", (DOCS / "index.md").read_text(), re.M)
PAGES = sorted([ROOT / "README.md", ROOT / "CONTRIBUTING.md", *DOCS.glob("*.md"),
                *(DOCS / "diagnostics").glob("*.md"), *(ROOT / "examples").glob("*/README.md")])
FENCED = re.compile(r"^```.*?^```", re.M | re.S)
LINK = re.compile(r"\]\(([^)\s]+)\)")
HEADING = re.compile(r"^#+\s+(.*)$", re.M)


def anchors(page: Path) -> set[str]:
    """GitHub's anchors of the page's headings: lower case, punctuation dropped, spaces as hyphens."""
    headings = HEADING.findall(FENCED.sub("", page.read_text()))
    return {re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-") for h in headings}


def test_the_index_lists_every_page_once() -> None:
    assert len(ORDER) == len(set(ORDER)) > 10
    assert set(ORDER) == {p.name for p in DOCS.glob("*.md")} - {"index.md"}


@pytest.mark.parametrize("page", ORDER)
def test_each_page_ends_with_a_link_to_the_next(page: str) -> None:
    following = ORDER[ORDER.index(page) + 1] if page != ORDER[-1] else "../CONTRIBUTING.md"
    last = (DOCS / page).read_text().rstrip().splitlines()[-1]
    assert last.startswith("Next: [") and last.endswith(f"]({following}).")


@pytest.mark.parametrize("page", PAGES, ids=[str(p.relative_to(ROOT)) for p in PAGES])
def test_every_relative_link_and_anchor_resolves(page: Path) -> None:
    for link in LINK.findall(FENCED.sub("", page.read_text())):
        if re.match(r"[a-z]+:", link):
            continue
        path, _, anchor = link.partition("#")
        target = (page.parent / path).resolve() if path else page
        assert target.exists(), f"{link}: no such file"
        if anchor and target.suffix == ".md":
            assert anchor in anchors(target), f"{link}: no heading for #{anchor}"
