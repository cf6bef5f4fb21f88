"""Every ```flow example in the docs and the explain pages checks as the page claims.

The convention (also described in docs/diagnostics.md, for whoever writes a page):

- A ```flow block is a whole module. It must check clean (no error, no warning),
  unless its info string lists what it must give: ```flow error=BBF401 or
  ```flow warning=BBF303 (several codes: ``error=BBF101,BBF201``). The codes
  reported must be exactly those listed, with the listed severity.
- A comment that starts with a code, ``# BBF301: ...``, marks the line where that
  code must be reported.
- Short examples lean on the reference declarations of docs/language.md (the
  ``Arm`` interface, ``Pose``, ``Grip``, ``locate``, the ``pick.*`` signals and a
  ``PickAndPlace`` reactor):
  ``CONTEXT`` below is appended to every single-file block, minus what the
  block declares itself. Appending keeps the block's line numbers.
- A block made of several files starts each with a ``# path/of/module.flow``
  comment line; it is checked as a folder of those files, without the context.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from arm_spec import GRIP_ENUM, POSE_TYPE, arm_robot

from bbflow.compiler.pipeline import compile_paths

ROOT = Path(__file__).resolve().parent.parent
PAGES = sorted(
    [ROOT / "README.md", *(ROOT / "docs").glob("*.md"), *(ROOT / "bbflow" / "explain").glob("BBF*.md"),
     *(ROOT / "examples").glob("*/README.md")])

# name -> declaration: the reference interface of docs/language.md (section 4), Arm from tests/arm_spec.py.
CONTEXT = {
    "Pose": POSE_TYPE,
    "Grip": GRIP_ENUM,
    "locate": 'action locate(color: str) -> Pose? pure = "cell.vision:locate"',
    "pick.requested": "signal pick.requested: {pick: Pose, place: Pose}",
    "pick.completed": "signal pick.completed: {at: Pose}",
    "pick.failed": "signal pick.failed: {reason: str}",
    "pick.rejected": "signal pick.rejected: {reason: str}",
    "cell.alarm": "signal cell.alarm",
    "Arm": arm_robot("command wave() -> bool allowed idle, busy"),
    "PickAndPlace": """reactor PickAndPlace(pick: Pose, place: Pose) -> Pose on Arm {
    step approach = move_to(target: pick) undo home()
    step placed = move_to(target: place) after approach
    return placed
}""",
}
# The context's own signals are unused in most examples; that warning is about the context, not the page.
IGNORED_IN_CONTEXT = {"BBF505"}

BLOCK = re.compile(r"^```flow([^\n]*)\n(.*?)^```", re.M | re.S)
DECLARED = re.compile(r"^\s*(?:type|enum|robot|action|signal|reactor|agent)\s+([A-Za-z_][\w.]*)", re.M)
IMPORTED = re.compile(r"^\s*from\s+[\w.]+\s+import\s+([\w, ]+)", re.M)
FILE_HEADER = re.compile(r"^# ([\w/]+\.flow)\s*$", re.M)
LINE_MARK = re.compile(r"#\s*(BBF\d{3})\b")


class Example:
    def __init__(self, page: Path, number: int, line: int, info: str, text: str) -> None:
        self.page, self.number, self.line, self.text = page, number, line, text
        self.expected: dict[str, str] = {}  # code -> severity
        for token in info.split():
            key, _, value = token.partition("=")
            if key in ("error", "warning"):
                self.expected.update((code, key) for code in value.split(","))
            else:
                raise ValueError(f"{self.id}: unknown info {token!r} (use error=CODE or warning=CODE)")

    @property
    def id(self) -> str:
        return f"{self.page.relative_to(ROOT)}:{self.line}"


def examples() -> list[Example]:
    found = []
    for page in PAGES:
        text = page.read_text()
        for number, match in enumerate(BLOCK.finditer(text)):
            line = text.count("\n", 0, match.start()) + 1
            found.append(Example(page, number, line, match.group(1), match.group(2)))
    return found


EXAMPLES = examples()


def files_of(text: str) -> dict[str, str] | None:
    """A multi-file block as {relative path: text}, or None for a single module."""
    headers = list(FILE_HEADER.finditer(text))
    if not headers or text[: headers[0].start()].strip():
        return None
    bounds = [h.start() for h in headers] + [len(text)]
    # Keep each file's lines where they are in the block, so that reported lines are the block's lines.
    return {h.group(1): "\n" * text.count("\n", 0, h.start()) + text[h.start(): end]
            for h, end in zip(headers, bounds[1:])}


def with_context(text: str) -> str:
    declared = set(DECLARED.findall(text))
    declared.update(name.strip() for names in IMPORTED.findall(text) for name in names.split(","))
    context = [decl for name, decl in CONTEXT.items() if name not in declared]
    return text.rstrip("\n") + "\n\n" + "\n".join(context) + "\n"


def check(example: Example, tmp_path: Path) -> list[tuple[str, str, int, str]]:
    """(code, severity, line, message) of every diagnostic the example gives, in its own lines."""
    files = files_of(example.text)
    if files is None:
        source = tmp_path / "example.flow"
        source.write_text(with_context(example.text))
        target = source
    else:
        target = tmp_path / "src"
        for rel, text in files.items():
            (target / rel).parent.mkdir(parents=True, exist_ok=True)
            (target / rel).write_text(text)
    result = compile_paths([target])
    block_lines = example.text.count("\n")
    found = []
    for d in result.diagnostics.items:
        in_context = files is None and d.span.line > block_lines
        if in_context and d.code in IGNORED_IN_CONTEXT:
            continue
        assert not in_context, f"the appended context fails: {d.code} {d.message}"
        found.append((d.code, d.severity.value, d.span.line, d.message))
    return found


@pytest.mark.parametrize("example", EXAMPLES, ids=[e.id for e in EXAMPLES])
def test_example_checks_as_claimed(example: Example, tmp_path: Path) -> None:
    found = check(example, tmp_path)
    got = {(code, severity) for code, severity, _, _ in found}
    assert got == set(example.expected.items()), found
    for number, line in enumerate(example.text.splitlines(), start=1):
        for code in LINE_MARK.findall(line):
            lines = [at for c, _, at, _ in found if c == code]
            assert number in lines, f"{code} expected at line {number} of the block, got {lines}: {found}"


def test_there_are_examples_of_both_kinds() -> None:
    """The extraction itself works: guards against a regex that silently finds nothing."""
    assert len(EXAMPLES) > 40
    assert any(e.expected for e in EXAMPLES) and any(not e.expected for e in EXAMPLES)


def test_every_explain_page_with_a_flow_example_shows_the_wrong_and_the_fixed_program() -> None:
    for page in (ROOT / "bbflow" / "explain").glob("BBF*.md"):
        blocks = [e for e in EXAMPLES if e.page == page]
        if not blocks:
            continue
        code = page.stem
        assert any(code in e.expected for e in blocks), f"{page.name}: no example gives {code}"
        assert any(not e.expected for e in blocks), f"{page.name}: no fixed example that checks clean"


def test_context_matches_the_reference_interface_in_language_md() -> None:
    language = (ROOT / "docs" / "language.md").read_text()
    squash = lambda s: " ".join(s.split())  # noqa: E731
    for name in ("Pose", "Grip", "locate"):
        assert squash(CONTEXT[name]) in squash(language), name
