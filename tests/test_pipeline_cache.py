"""One pipeline, one cache: `bbflow check`, `bbflow build` and `bbflow run` replay what is unchanged.

Hits and misses are observed by counting the parser's and the checker's calls,
never by timing.
"""

from __future__ import annotations

import json
import re
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

import attrs
import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bbflow.cli import main
from bbflow.compiler import cache as cache_module
from bbflow.compiler import pipeline
from bbflow.compiler.checker import check as check_program
from bbflow.compiler.codegen import generate
from bbflow.build import build_program, compile_project
from bbflow.compiler.syntax.parser import parse_module
from bbflow.compiler.pipeline import compile_paths
from bbflow.compiler.reports import report
from codegen_helpers import write_flows

ARM = "robot Arm {\n    command beep() -> bool\n}\n"
TASK = "from cell.arm import Arm\nreactor Beep() -> bool on Arm {\n    step b = beep()\n    return b\n}\n"
OTHER = "reactor Two() -> int {\n    return 2\n}\n"
NAMES = "reactor R() -> int {\n    return nope\n}\n"
SYNTAX = "reactor S() -> int {\n    return 1 +\n}\n"
WARNS = "robot Eye {\n    command look() -> float readonly\n}\nreactor W() -> int on Eye {\n    step b = look()\n    return 2\n}\n"


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> Counter[str]:
    """How often the pipeline parsed a file, checked a program and generated a module."""
    seen: Counter[str] = Counter()
    for module, stage in ((pipeline, "parse_module"), (pipeline, "check"), (generate, "generate_module")):
        real = getattr(module, stage)

        def counted(*args: object, _real=real, _stage=stage, **kwargs: object) -> object:  # type: ignore[no-untyped-def]
            seen[_stage] += 1
            return _real(*args, **kwargs)

        monkeypatch.setattr(module, stage, counted)
    return seen


def project(root: Path, files: dict[str, str] | None = None) -> Path:
    (root / "bbflow.toml").write_text('[project]\nname = "cell"\nsource = "flows"\n')
    write_flows(root / "flows", files or {"cell/arm.flow": ARM, "cell/task.flow": TASK, "other.flow": OTHER})
    return root


def check(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, ["check", *args])
    return result.exit_code, result.stdout, result.stderr


def test_a_warm_check_neither_parses_nor_checks(tmp_path: Path, calls: Counter[str]) -> None:
    project(tmp_path)
    assert check(str(tmp_path)) == (0, "", "no problems in 3 files\n")
    assert calls["parse_module"] == 3 and calls["check"] == 1
    calls.clear()
    assert check(str(tmp_path)) == (0, "", "no problems in 3 files\n")
    assert calls == Counter()
    assert (tmp_path / ".bbflow" / "cache" / "checks").is_dir()


def test_a_changed_import_checks_again(tmp_path: Path, calls: Counter[str]) -> None:
    project(tmp_path)
    check(str(tmp_path))
    write_flows(tmp_path / "flows", {"cell/arm.flow": ARM.replace("beep()", "beep(loud: bool)")})
    calls.clear()
    code, out, _ = check(str(tmp_path))
    assert calls["check"] == 1
    assert code == 1 and "BBF" in out and "cell/task.flow" in out  # the importer's call lacks `loud` now
    calls.clear()
    assert check(str(tmp_path))[:2] == (code, out)
    assert calls == Counter()


def test_a_created_module_invalidates_its_missing_import(tmp_path: Path, calls: Counter[str]) -> None:
    project(tmp_path, {"cell/task.flow": TASK})
    assert check(str(tmp_path))[0] == 1  # cell.arm does not exist yet
    write_flows(tmp_path / "flows", {"cell/arm.flow": ARM})
    calls.clear()
    assert check(str(tmp_path)) == (0, "", "no problems in 2 files\n")
    assert calls["check"] == 1


@pytest.mark.parametrize("fmt", ["text", "json", "sarif"])
def test_diagnostics_are_replayed_byte_identically(tmp_path: Path, calls: Counter[str], fmt: str,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    project(tmp_path, {"cell/names.flow": NAMES, "cell/syntax.flow": SYNTAX, "cell/warns.flow": WARNS,
                       "cell/task.flow": TASK.replace("cell.arm", "cell.hand")})
    monkeypatch.chdir(tmp_path)  # relative display paths, as a user types them
    cold = check("--format", fmt, "--strict", ".")
    calls.clear()
    warm = check("--format", fmt, "--strict", ".")
    assert calls == Counter()
    assert warm == cold and cold[0] == 1
    if fmt == "json":
        codes = {d["code"] for d in json.loads(cold[1])["diagnostics"]}
        assert codes == {"BBF001", "BBF101", "BBF103", "BBF303"}


def test_the_cache_follows_the_folder_the_check_runs_from(tmp_path: Path, calls: Counter[str],
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    project(tmp_path, {"cell/bad.flow": NAMES})
    monkeypatch.chdir(tmp_path)
    _, relative, _ = check(".")
    calls.clear()
    _, absolute, _ = check(str(tmp_path))
    assert calls == Counter()  # same program, same keys: a hit whatever the paths look like
    assert " --> flows/cell/bad.flow:2:12" in relative
    assert f" --> {tmp_path}/flows/cell/bad.flow:2:12" in absolute


def test_no_cache_checks_again(tmp_path: Path, calls: Counter[str]) -> None:
    project(tmp_path)
    check(str(tmp_path))
    calls.clear()
    assert check("--no-cache", str(tmp_path))[0] == 0
    assert calls["check"] == 1


def test_check_build_and_run_share_the_cache(tmp_path: Path, calls: Counter[str]) -> None:
    project(tmp_path)
    built = build_program([tmp_path])
    assert built.ok and calls["check"] == 1 and calls["generate_module"] == 4  # 3 modules + std.prelude
    calls.clear()
    assert check(str(tmp_path))[0] == 0  # the build's diagnostics serve the check
    diags, program = compile_project(tmp_path)  # and its code serves the run
    assert program is not None and "cell.task.Beep" in program.reactors
    assert calls == Counter()


def test_a_build_after_a_check_generates_without_asking_the_check_twice(tmp_path: Path, calls: Counter[str]) -> None:
    project(tmp_path)
    check(str(tmp_path))
    calls.clear()
    first = build_program([tmp_path])  # no code cached yet: the program is checked to generate it
    assert first.ok and calls["check"] == 1
    calls.clear()
    again = build_program([tmp_path])
    assert calls == Counter() and again.result.cached
    assert [(m.module, m.code, m.linemap) for m in again.modules] == [(m.module, m.code, m.linemap) for m in first.modules]


def test_an_unreadable_file_is_never_replayed(tmp_path: Path, calls: Counter[str]) -> None:
    project(tmp_path, {"other.flow": OTHER})
    (tmp_path / "flows" / "latin.flow").write_bytes(b"# caf\xe9\n")
    for _ in range(2):
        result = compile_paths([tmp_path], use_cache=True)
        assert [d.code for d in result.diagnostics] == ["BBF001"] and not result.cached
    assert not (tmp_path / ".bbflow" / "cache" / "checks").exists()


def test_a_checker_crash_is_not_cached(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    project(tmp_path)

    def explode(*args: object, **kwargs: object) -> None:
        raise RuntimeError("boom")

    with monkeypatch.context() as patch:
        patch.setattr(pipeline, "check", explode)
        crashed = compile_paths([tmp_path], use_cache=True)
    assert [d.code for d in crashed.diagnostics] == ["BBF900"]
    again = compile_paths([tmp_path], use_cache=True)
    assert not again.cached and not again.diagnostics.items


def test_without_the_cache_the_pipeline_keeps_the_ast_and_facts(tmp_path: Path) -> None:
    project(tmp_path)
    compile_paths([tmp_path], use_cache=True)
    warm = compile_paths([tmp_path], use_cache=True)
    assert warm.cached and warm.modules == [] and warm.facts is None and warm.files == 3
    cold = compile_paths([tmp_path])
    assert not cold.cached and cold.facts is not None and [m.name for m in cold.modules] == \
        ["cell.arm", "cell.task", "other"]


# --- per module: a changed module re-checks itself and what it needs, nothing else ---------------

BASE = "robot Arm {\n    command beep() -> bool\n}\n"
MID = "from cell.base import Arm\nreactor Beep() -> bool on Arm {\n    step b = beep()\n    return b\n}\n"
LEAF = "from cell.mid import Beep\nreactor Three() -> int {\n    return 3\n}\n"
SIG = "signal cell.done\n"
AGENT = "agent Watcher {\n    on cell.done { }\n}\n"
CELL = {"cell/base.flow": BASE, "cell/mid.flow": MID, "cell/leaf.flow": LEAF, "other.flow": OTHER,
        "sig.flow": SIG, "watch.flow": AGENT}


@attrs.define
class Work:
    """The modules the pipeline parsed, and the (own) modules of each checker run."""

    parsed: list[str] = attrs.Factory(list)
    checked: list[list[str]] = attrs.Factory(list)

    def clear(self) -> None:
        self.parsed.clear()
        self.checked.clear()


@pytest.fixture
def work(monkeypatch: pytest.MonkeyPatch) -> Work:
    seen = Work()
    parse, run = pipeline.parse_module, pipeline.check

    def parsing(source, name, diags):  # type: ignore[no-untyped-def]
        seen.parsed.append(name)
        return parse(source, name, diags)

    def checking(modules, *args, **kwargs):  # type: ignore[no-untyped-def]
        seen.checked.append(sorted(m.name for m in modules))
        return run(modules, *args, **kwargs)

    monkeypatch.setattr(pipeline, "parse_module", parsing)
    monkeypatch.setattr(pipeline, "check", checking)
    return seen


def edit(root: Path, rel: str, text: str) -> None:
    write_flows(root / "flows", {rel: text})


def test_editing_a_leaf_checks_it_and_its_imports_only(tmp_path: Path, work: Work) -> None:
    project(tmp_path, CELL)
    assert check(str(tmp_path)) == (0, "", "no problems in 6 files\n")
    assert work.checked == [["cell.base", "cell.leaf", "cell.mid", "other", "sig", "watch"]]
    work.clear()
    edit(tmp_path, "cell/leaf.flow", LEAF.replace("return 3", "return nope"))
    code, out, _ = check(str(tmp_path))
    assert code == 1 and "unknown name `nope`" in out
    assert sorted(work.parsed) == ["cell.base", "cell.leaf", "cell.mid"]
    assert work.checked == [["cell.base", "cell.leaf", "cell.mid"]]


def test_editing_an_imported_module_checks_its_importers(tmp_path: Path, work: Work) -> None:
    project(tmp_path, CELL)
    check(str(tmp_path))
    work.clear()
    edit(tmp_path, "cell/base.flow", BASE.replace("beep()", "beep(loud: bool)"))
    code, out, _ = check(str(tmp_path))
    assert code == 1 and "cell/mid.flow" in out  # the importer's call lacks `loud` now
    assert work.checked == [["cell.base", "cell.leaf", "cell.mid"]]
    work.clear()
    assert check(str(tmp_path))[:2] == (code, out) and work.checked == [] and work.parsed == []


def test_editing_a_module_everything_imports_checks_everything(tmp_path: Path, work: Work) -> None:
    files = {"cell/base.flow": BASE, **{f"cell/m{i}.flow": MID.replace("Beep", f"Beep{i}") for i in range(4)}}
    project(tmp_path, files)
    check(str(tmp_path))
    work.clear()
    edit(tmp_path, "cell/base.flow", BASE + "\n")
    assert check(str(tmp_path))[0] == 0
    assert work.checked == [["cell.base", "cell.m0", "cell.m1", "cell.m2", "cell.m3"]]


def test_a_signal_declaration_is_read_by_every_agent(tmp_path: Path, work: Work) -> None:
    """Signals are global: an agent's routes are judged against declarations it does not import."""
    project(tmp_path, CELL)
    check(str(tmp_path))
    work.clear()
    edit(tmp_path, "sig.flow", "signal cell.finished\n")
    code, out, _ = check(str(tmp_path))
    assert "BBF503" in out and "BBF505" in out  # the route matches nothing; the new signal is unused
    # the declaring module first (its signals are new), then the agent, whose key the new table changed
    assert work.checked == [["sig"], ["watch"]]
    work.clear()
    edit(tmp_path, "sig.flow", SIG)
    assert check(str(tmp_path)) == (0, "", "no problems in 6 files\n")
    assert work.checked == []  # both keys are back to what the cache holds


def test_whole_program_checks_see_modules_that_were_not_checked(tmp_path: Path, work: Work) -> None:
    project(tmp_path, {rel: text for rel, text in CELL.items() if rel != "watch.flow"})
    check(str(tmp_path))
    work.clear()
    edit(tmp_path, "other.flow", OTHER + "signal cell.done\n")  # a second declaration, elsewhere
    code, out, _ = check(str(tmp_path))
    assert code == 1 and "signal `cell.done` is already declared" in out  # at sig.flow: other.flow comes first
    assert work.checked == [["other"]]  # BBF102 comes from the scans: `sig` is not checked again
    edit(tmp_path, "other.flow", OTHER)
    assert "BBF505" in check(str(tmp_path))[1]  # no agent handles `cell.done`
    work.clear()
    edit(tmp_path, "watch.flow", AGENT)
    assert check(str(tmp_path)) == (0, "", "no problems in 6 files\n")
    assert work.checked == [["watch"]]  # the signals it reads come resolved from the cache


TYPES = "type Place = {x: float, y: float}\n"
SIGNALS = "from types import Place\nsignal cell.moved: {at: Place}\n"
USER = "import sig\nreactor U() -> int {\n    return 1\n}\n"
MOVER = "agent Mover {\n    on cell.moved as m {\n        emit cell.moved {at: {x: m.data.at.x, y: 1}}\n    }\n}\n"
MOVING = {"types.flow": TYPES, "sig.flow": SIGNALS, "user.flow": USER, "mover.flow": MOVER}


def test_a_comment_in_a_declaring_module_checks_it_and_its_importers_only(tmp_path: Path, work: Work) -> None:
    """The agent reads the signals as resolved, not the declaring text: it is neither parsed nor checked."""
    project(tmp_path, MOVING)
    assert check(str(tmp_path)) == (0, "", "no problems in 4 files\n")
    work.clear()
    edit(tmp_path, "sig.flow", SIGNALS + "# where the arm ends up\n")
    assert check(str(tmp_path)) == (0, "", "no problems in 4 files\n")
    assert work.checked == [["sig", "types", "user"]] and sorted(work.parsed) == ["sig", "types", "user"]
    work.clear()
    edit(tmp_path, "types.flow", TYPES + "type Unused = {n: int}\n")  # an alias no payload uses
    assert check(str(tmp_path)) == (0, "", "no problems in 4 files\n")
    assert work.checked == [["sig", "types", "user"]]


def test_a_payload_change_checks_the_agents_again(tmp_path: Path, work: Work) -> None:
    project(tmp_path, MOVING)
    check(str(tmp_path))
    work.clear()
    edit(tmp_path, "sig.flow", SIGNALS.replace("{at: Place}", "{at: Place, speed: float}"))
    code, out, _ = check(str(tmp_path))
    assert code == 1 and "`cell.moved` needs field `speed`" in out and "mover.flow" in out
    assert work.checked == [["sig", "types", "user"], ["mover"]]  # the agent with its imports (none)
    assert (code, out) == check("--no-cache", str(tmp_path))[:2]


def test_a_type_alias_a_payload_uses_checks_the_agents_again(tmp_path: Path, work: Work) -> None:
    project(tmp_path, MOVING)
    check(str(tmp_path))
    work.clear()
    edit(tmp_path, "types.flow", TYPES.replace("y: float", "y: float, z: float"))
    code, out, _ = check(str(tmp_path))
    assert code == 1 and "field `at` of `cell.moved`" in out  # {x, y} no longer fits Place
    assert work.checked == [["sig", "types", "user"], ["mover"]]
    assert (code, out) == check("--no-cache", str(tmp_path))[:2]
    work.clear()
    edit(tmp_path, "types.flow", TYPES.replace("Place", "Spot"))  # same shape, renamed: messages name it
    edit(tmp_path, "sig.flow", SIGNALS.replace("Place", "Spot"))
    assert check(str(tmp_path))[0] == 0
    assert work.checked == [["sig", "types", "user"], ["mover"]]


def test_an_unchanged_program_reads_one_table_entry_and_a_lost_signals_entry_is_found_again(
        tmp_path: Path, work: Work) -> None:
    project(tmp_path, MOVING)
    check(str(tmp_path))
    cache = tmp_path / ".bbflow" / "cache"
    assert len(list((cache / "tables").iterdir())) == 1
    for entry in (cache / "signals").iterdir():
        entry.unlink()  # the table is still cached: a warm run does not miss them
    work.clear()
    assert check(str(tmp_path)) == (0, "", "no problems in 4 files\n") and work.parsed == []
    edit(tmp_path, "mover.flow", MOVER.replace("y: 1", "y: \"far\""))
    code, out, _ = check(str(tmp_path))
    assert work.checked == [["mover", "sig", "types"]]  # the agent, and the declaration it cannot read resolved
    assert code == 1 and out == check("--no-cache", str(tmp_path))[1]


def test_modules_that_each_declare_signals_and_have_an_agent_check_only_the_edited_one(
        tmp_path: Path, work: Work) -> None:
    """The benchmark's worst case before signal tables: every module declares signals and routes them."""
    def cell(i: int) -> str:
        return (f"signal c{i}.done: {{n: int}}\nagent A{i} {{\n    on c{i}.done as d {{ emit c{(i + 1) % 3}.done "
                "{n: d.data.n} }\n}\n")

    project(tmp_path, {f"c{i}.flow": cell(i) for i in range(3)})
    assert check(str(tmp_path)) == (0, "", "no problems in 3 files\n")
    work.clear()
    edit(tmp_path, "c1.flow", cell(1) + "# a comment\n")
    assert check(str(tmp_path)) == (0, "", "no problems in 3 files\n")
    assert work.checked == [["c1"]] and work.parsed == ["c1"]
    work.clear()
    edit(tmp_path, "c1.flow", cell(1).replace("{n: int}", "{n: str}"))
    code, out, _ = check(str(tmp_path))
    assert work.checked == [["c1"], ["c0", "c2"]]  # c1's agent too, in step one: its text changed
    assert code == 1 and out == check("--no-cache", str(tmp_path))[1]


def test_a_check_that_read_part_of_the_program_does_not_serve_a_module_that_reads_all_of_it(
        tmp_path: Path, work: Work) -> None:
    """The declaring module's check reads its imports; an importee whose BBF103 suggests from every module
    name is checked again with the whole program, not taken from that check."""
    lost = "import gone\nagent A {\n    on sig.s0 { }\n}\n"
    project(tmp_path, {"lost.flow": lost, "sig.flow": "import lost\nsignal sig.s0: {n: int}\n", "gone2.flow": OTHER})
    check(str(tmp_path))
    work.clear()
    edit(tmp_path, "sig.flow", "import lost\nsignal sig.s0: {n: str}\n")
    _, out, _ = check(str(tmp_path))
    assert "did you mean `gone2`?" in out and out == check("--no-cache", str(tmp_path))[1]
    assert work.checked[:2] == [["lost", "sig"], ["gone2", "lost", "sig"]]


def test_an_import_cycle_is_reported_after_an_edit_elsewhere_in_it(tmp_path: Path) -> None:
    project(tmp_path, {"a.flow": "import b\n", "b.flow": "import c\n", "c.flow": "reactor R() -> int {\n    return 1\n}\n"})
    assert check(str(tmp_path))[0] == 0
    edit(tmp_path, "c.flow", "import a\n")
    _, warm, _ = check(str(tmp_path))
    assert "import cycle: `a` -> `b` -> `c` -> `a`" in warm
    assert warm == check("--no-cache", str(tmp_path))[1]


def test_a_new_module_changes_the_suggestion_for_a_missing_import(tmp_path: Path, work: Work) -> None:
    """BBF103's "did you mean" looks at every module name: creating one re-checks the importer."""
    project(tmp_path, {"cell/task.flow": TASK.replace("cell.arm", "cell.hand"), "other.flow": OTHER})
    assert "`cell.hands`" not in check(str(tmp_path))[1]
    work.clear()
    edit(tmp_path, "cell/hands.flow", ARM)
    _, warm, _ = check(str(tmp_path))
    assert "did you mean `cell.hands`?" in warm and warm == check("--no-cache", str(tmp_path))[1]
    assert work.checked[0] == ["cell.hands", "cell.task", "other"]  # the whole program: every name counts


def test_a_file_with_syntax_errors_is_checked_again_when_its_importers_change(tmp_path: Path) -> None:
    """Its declarations are resolved only when a module uses them, so what it is told depends on its importers."""
    broken = "robot R0 {\n    command c0() -> bool\n    command arm() -> bool\n}\nreactor S() -> int {\n    return 1 +\n}\n"
    user = "from m0 import R0\nreactor Q() -> bool on R0 {\n    step s = c0()\n    return s\n}\n"
    project(tmp_path, {"m0.flow": broken, "m1.flow": OTHER})
    for text, told in ((OTHER, False), (user, True), (OTHER, False)):
        edit(tmp_path, "m1.flow", text)
        _, warm, _ = check(str(tmp_path))
        assert ("`arm` is a built-in command of every robot" in warm) is told
        assert warm == check("--no-cache", str(tmp_path))[1]


@pytest.mark.parametrize("fmt", ["text", "json", "sarif"])
def test_an_edit_replays_the_rest_byte_identically(tmp_path: Path, fmt: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Five modules, errors in two and warnings in a third: warm after an edit == a check without the cache."""
    project(tmp_path, {"cell/arm.flow": ARM, "cell/task.flow": TASK, "cell/names.flow": NAMES,
                       "cell/syntax.flow": SYNTAX, "cell/warns.flow": WARNS})
    monkeypatch.chdir(tmp_path)
    check("--format", fmt, ".")
    for rel, text in (("cell/arm.flow", ARM.replace("beep()", "beep(loud: bool)")),
                      ("cell/warns.flow", WARNS + "signal cell.lonely\n"),
                      ("cell/names.flow", NAMES.replace("nope", "nah")),
                      ("cell/syntax.flow", OTHER)):
        edit(tmp_path, rel, text)
        warm = check("--format", fmt, ".")
        assert warm == check("--format", fmt, "--no-cache", ".")
        assert warm == check("--format", fmt, ".")  # and replayed again, unchanged


def test_a_build_after_an_edit_generates_what_a_build_without_the_cache_does(tmp_path: Path) -> None:
    project(tmp_path, CELL)
    build_program([tmp_path])
    edit(tmp_path, "cell/base.flow", BASE.replace("beep() -> bool", "beep(loud: bool = true) -> bool"))
    warm, cold = build_program([tmp_path]), build_program([tmp_path], use_cache=False)
    assert warm.ok and [(m.module, m.code, m.linemap) for m in warm.modules] == \
        [(m.module, m.code, m.linemap) for m in cold.modules]


# --- the property: after any edit, the cache changes nothing but the work done -------------------

def test_a_signal_no_longer_declared_twice_judges_its_uses_again(tmp_path: Path) -> None:
    """Found by the property below: whether a signal is declared twice is a fact of other modules that an
    agent's verdict depends on (the uses of a signal declared twice are not judged), so it keys the agent."""
    project(tmp_path, {"m0.flow": "signal sig.s0: {n: int}\n",
                       "m1.flow": "agent A1 {\n    on sig.s0 { emit sig.s0 }\n}\n",
                       "m2.flow": "signal sig.s0\n"})
    assert [d.code for d in compile_paths([tmp_path], use_cache=True).diagnostics.items] == ["BBF102"]
    edit(tmp_path, "m2.flow", "")
    warm = compile_paths([tmp_path], use_cache=True)
    assert [(d.code, Path(d.span.file).name) for d in warm.diagnostics.items] == [("BBF201", "m1.flow")]
    assert warm.diagnostics.items == compile_paths([tmp_path]).diagnostics.items


def test_a_reactor_waiting_for_a_signal_is_judged_again_when_its_payload_changes(tmp_path: Path) -> None:
    """A `wait_signal` step reads the payload of a signal its module does not import: the reactor's verdict
    depends on other modules' declarations, as an agent's does, so the signal table keys it too."""
    waiting = "reactor W() -> int {\n    step w = wait_signal(sig.s0) timeout 1s\n    return w.data.n\n}\n"
    project(tmp_path, {"m0.flow": "signal sig.s0: {n: int}\n", "m1.flow": waiting})
    assert not compile_paths([tmp_path], use_cache=True).diagnostics.items
    for payload, codes in (("{m: int}", ["BBF203"]), ("{n: int}", []), ("", ["BBF201"])):
        edit(tmp_path, "m0.flow", f"signal sig.s0{': ' + payload if payload else ''}\n")
        warm = compile_paths([tmp_path], use_cache=True).diagnostics.items
        assert [d.code for d in warm] == codes and warm == compile_paths([tmp_path]).diagnostics.items


def test_a_signal_only_waited_for_is_used_for_the_whole_program_check_of_the_checker_too(tmp_path: Path) -> None:
    """Found by the property below: the pipeline counted a `wait_signal` step as handling its signal (no
    BBF505), the checker's own whole-program check (the language server's) did not."""
    waiting = "reactor W() -> int {\n    step w = wait_signal(sig.s0) timeout 1s\n    return 1\n}\n"
    project(tmp_path, {"m0.flow": "signal sig.s0\n", "m1.flow": waiting})
    assert not compile_paths([tmp_path]).diagnostics.items
    assert cold_checker_diagnostics(tmp_path) == Counter()


def test_a_check_that_read_signals_its_key_does_not_cover_is_not_stored(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The checker records which modules read the program's signals; a module whose scan missed it (here:
    made to) is checked again every time rather than replayed under a key that would lie."""
    monkeypatch.setattr(cache_module.Scan, "reads_signals", property(lambda scan: False))
    project(tmp_path, {"m0.flow": "signal sig.s0: {n: int}\n",
                       "m1.flow": "agent A {\n    on sig.s0 { emit sig.s0 {n: 1} }\n}\n"})
    assert not compile_paths([tmp_path], use_cache=True).diagnostics.items
    assert not (tmp_path / ".bbflow" / "cache" / "checks").exists()
    edit(tmp_path, "m0.flow", "signal sig.s0: {n: str}\n")
    warm = compile_paths([tmp_path], use_cache=True)
    assert [d.code for d in warm.diagnostics.items] == ["BBF201"] and not warm.cached


N = 3  # modules m0..m2 of a generated project: few, so that they often meet


def _imports(j: int) -> list[str]:
    return [f"from m{j} import R{j}\n", f"from m{j} import R{j}, P{j}\n", f"import m{j}\n", f"import gone{j}\n",
            f"from m{j} import T{j}, G{j}\n"]


def _decls(i: int, j: int, k: int) -> list[str]:
    return [
        f"robot R{i} {{\n    command c{i}() -> bool\n    event e{i}\n}}\n",
        # a mistake found only when the robot is used: in a file with syntax errors, by its importers
        f"robot R{i} {{\n    command c{i}() -> bool\n    command arm() -> bool\n}}\n",
        f"reactor P{i}() -> bool on R{j} {{\n    step s = c{j}()\n    return s\n}}\n",
        f"reactor C{i}() -> bool on R{j} {{\n    step x = P{j}()\n    return x\n}}\n",
        f"signal sig.s{k}\n",
        f"signal sig.s{k}: {{n: int}}\n",
        f"agent A{i} {{\n    on sig.s{k} {{ emit sig.s{j} }}\n}}\n",
        f"agent W{i} on R{j} {{\n    on sig.* {{ }}\n    on robot.event.e{k} {{ }}\n}}\n",
        f"reactor Bad{i}() -> int {{\n    return nope{k}\n}}\n",
        f"reactor Syn{i}() -> int {{\n    return 1 +\n}}\n",
        f"robot Eye{i} {{\n    command look() -> float readonly\n}}\nreactor U{i}() -> int on Eye{i} {{\n"
        "    step b = look()\n    return 2\n}\n",
        # payloads through type aliases and enums, possibly of other modules, and agents that read them
        f"enum G{i} {{ a, b }}\ntype T{i} = {{n: int, g: G{i}}}\n",
        f"signal sig.s{k}: {{at: T{j}}}\n",
        f"signal sig.s{k}: {{g: G{j}, n: int}}\n",
        f"agent B{i} {{\n    on sig.s{k} as e {{ emit sig.s{j} {{n: e.data.n}} }}\n}}\n",
        f"agent D{i} {{\n    on sig.* as e {{ emit sig.s{k} {{g: a, n: 1}} }}\n}}\n",
        # a reactor (no agent) that reads a signal's payload: it depends on declarations it does not import
        f"reactor Wt{i}() -> int {{\n    step w = wait_signal(sig.s{k}) timeout 1s\n    return w.data.n\n}}\n",
    ]


def module_text(i: int) -> st.SearchStrategy[str]:
    index = st.integers(0, N - 1)
    imports = st.lists(st.builds(lambda j, n: _imports(j)[n], index, st.integers(0, 3)), max_size=2)
    kinds = st.one_of(st.integers(0, 16), st.sampled_from([4, 5, 6, 11, 12, 13, 14, 15, 16]))  # signals, agents often
    decls = st.lists(st.builds(lambda j, k, n: _decls(i, j, k)[n], index, st.integers(0, 2), kinds), max_size=3)
    return st.builds(lambda a, b: "".join(dict.fromkeys(a)) + "".join(b), imports, decls)


#: edits that keep most of a text: a payload's field type (`n: 1` no longer fits), a field more, an enum's
#: members (a bare `a` no longer one), an alias renamed (payloads using it no longer resolve), a signal renamed
SWAPS = [("n: int", "n: str"), ("n: int", "n: float"), ("{n: int", "{n: int, m: int"), ("{ a, b }", "{ b, c }"),
         ("{ a, b }", "{ b, a }"), ("type T", "type V"), ("sig.s0", "sig.s1")]


def edit_of(i: int) -> st.SearchStrategy[tuple[int, object]]:
    """An edit of module ``m{i}``: a new text, a comment added, one of ``SWAPS``, or a declaration deleted."""
    return st.tuples(st.just(i), st.one_of(module_text(i), st.integers(0, 9), st.sampled_from(SWAPS),
                                           st.builds(Delete, st.integers(0, 5))))


@attrs.frozen
class Delete:
    """Delete the declaration (or import) at this index, modulo their number."""

    index: int


def edited(text: str, change: object) -> str:
    if isinstance(change, str):
        return change
    if isinstance(change, int):
        return f"{text}# note {change}\n"
    if isinstance(change, Delete):
        items = [m.group() for m in re.finditer(r"(?m)^\S.*\n(?:[ }].*\n)*", text)]
        return "".join(item for n, item in enumerate(items) if n != change.index % max(len(items), 1))
    old, new = change  # type: ignore[misc]
    return text.replace(old, new, 1)


def cold_checker_diagnostics(root: Path) -> Counter[object]:
    """What the checker finds when it sees the whole program at once (program-wide checks inline)."""
    result = compile_paths([root])
    parsed = pipeline.CompileResult(sources=result.sources)
    for unit in result.units:
        parsed.modules.append(parse_module(result.sources[unit.display], unit.module, parsed.diagnostics))
    check_program(parsed.modules, parsed.diagnostics)
    return Counter(parsed.diagnostics)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(first=st.tuples(*(module_text(i) for i in range(N))),
       edits=st.lists(st.integers(0, N - 1).flatmap(edit_of), min_size=1, max_size=4))
def test_after_random_edits_the_cache_changes_nothing_but_the_work(first: tuple[str, ...],
                                                                   edits: list[tuple[int, object]]) -> None:
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        texts = dict(enumerate(first))
        project(root, {f"m{i}.flow": text for i, text in texts.items()})
        for i, change in [(-1, None), *edits]:
            if i >= 0:
                texts[i] = edited(texts[i], change)
                edit(root, f"m{i}.flow", texts[i])
            warm = compile_paths([root], use_cache=True)
            cold = compile_paths([root])
            assert warm.diagnostics.items == cold.diagnostics.items
            assert all(report(warm, fmt) == report(cold, fmt) for fmt in ("text", "json", "sarif"))
            assert Counter(cold.diagnostics) == cold_checker_diagnostics(root)
            if i >= 0:  # the edited file alone, as a pre-commit hook checks it: as part of the project
                one = root / "flows" / f"m{i}.flow"
                alone = compile_paths([one], use_cache=True).diagnostics.items
                assert alone == compile_paths([one]).diagnostics.items
                assert alone == [d for d in cold.diagnostics.items if d.span.file == str(one)]


#: a program whose agents read signals declared in a module they do not import, with payloads through an
#: alias and an enum of a third module; the knobs are what the edits turn (an agent module's text aside)
KNOBS = {
    "members": st.sampled_from(["a, b", "b, c", "a"]),
    "field": st.sampled_from(["int", "str", "G?"]),
    "alias": st.sampled_from(["T", "U"]),  # renamed where it is declared and used: messages name it
    "p0": st.sampled_from([": {n: int}", ": {at: T}", ": {g: G, n: int}", ": T", ": {n: int, m: int}"]),
    "p1": st.sampled_from(["", ": {n: int}", ": {at: T}", ": {n: float}", ": {n: int}?"]),
    "note": st.integers(0, 3),  # a comment in the declaring module
    "wildcard": st.booleans(),  # an agent module more
}
#: an emitted field read from a bound payload, a bare enum member, a nested record literal
AGENTS = ("agent A {\n    on sig.s0 as e { emit sig.s1 {n: e.data.n} }\n    on sig.s1 { emit sig.s0 {g: a, n: 1} }\n}\n"
          "agent C {\n    on sig.s0 { emit sig.s0 {at: {n: 1, g: b}} }\n}\n")
WILDCARD = "agent B {\n    on sig.* as w { emit sig.s0 }\n    on sig.s1 as e { emit sig.s0 {at: e.data.at} }\n}\n"


def signal_program(knobs: dict[str, Any]) -> dict[str, str]:
    signals = f"from types import T, G\nsignal sig.s0{knobs['p0']}\nsignal sig.s1{knobs['p1']}\n"
    return {
        "types.flow": f"enum G {{ {knobs['members']} }}\ntype {knobs['alias']} = {{n: {knobs['field']}, g: G}}\n",
        "sig.flow": signals.replace("T", knobs["alias"]) + "# a note\n" * knobs["note"],
        "agents.flow": AGENTS,
        **({"wild.flow": WILDCARD} if knobs["wildcard"] else {}),
    }


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(first=st.fixed_dictionaries(KNOBS),
       edits=st.lists(st.sampled_from(sorted(KNOBS)).flatmap(lambda k: st.tuples(st.just(k), KNOBS[k])),
                      min_size=1, max_size=5))
def test_after_edits_to_what_agents_read_the_cache_changes_nothing_but_the_work(
        first: dict[str, Any], edits: list[tuple[str, Any]]) -> None:
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        knobs = dict(first)
        project(root, signal_program(knobs))
        for name, value in [("note", knobs["note"]), *edits]:
            knobs[name] = value
            (root / "flows" / "wild.flow").unlink(missing_ok=True)
            write_flows(root / "flows", signal_program(knobs))
            warm = compile_paths([root], use_cache=True)
            cold = compile_paths([root])
            assert warm.diagnostics.items == cold.diagnostics.items
            assert report(warm, "json") == report(cold, "json")


def test_parsed_trees_are_kept_from_the_collector_during_a_run_and_handed_back_after(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import gc

    from bbflow.compiler import pipeline as pl

    (tmp_path / "a.flow").write_text("reactor A() -> int {\n    return 1\n}\n")
    (tmp_path / "b.flow").write_text("reactor B() -> int {\n    return 2\n}\n")
    frozen_after_parse = []
    real = pl.parse_module

    def parse(*args, **kwargs):
        frozen_after_parse.append(gc.get_freeze_count())
        return real(*args, **kwargs)

    monkeypatch.setattr(pl, "parse_module", parse)
    result = pl.compile_paths([tmp_path])
    assert not result.diagnostics.has_errors()
    assert frozen_after_parse[0] == 0 and frozen_after_parse[-1] > 0  # earlier trees frozen before later parses
    assert gc.get_freeze_count() == 0  # all handed back


def test_a_process_that_froze_objects_itself_is_left_alone(tmp_path: Path) -> None:
    import gc

    from bbflow.compiler import pipeline as pl

    (tmp_path / "a.flow").write_text("reactor A() -> int {\n    return 1\n}\n")
    gc.freeze()
    try:
        before = gc.get_freeze_count()
        pl.compile_paths([tmp_path])
        assert gc.get_freeze_count() == before
    finally:
        gc.unfreeze()


# --- an editor's runs: syntax trees kept between runs, facts asked for ----------------------------------------


def test_kept_trees_are_not_parsed_again_and_a_changed_file_is(tmp_path: Path, calls: Counter[str]) -> None:
    from bbflow.compiler import ParsedTrees

    root = project(tmp_path)
    trees = ParsedTrees()
    first = compile_paths([root], trees=trees)
    assert calls["parse_module"] == 3 and not first.diagnostics.items
    again = compile_paths([root], trees=trees)
    assert calls["parse_module"] == 3 and [m.name for m in again.modules] == [m.name for m in first.modules]
    assert all(a is b for a, b in zip(again.modules, first.modules))  # the very trees
    other = (root / "flows" / "other.flow").resolve()
    edited = compile_paths([root], trees=trees, buffers={other: OTHER + "# a comment\n"})
    assert calls["parse_module"] == 4 and not edited.diagnostics.items
    assert len(trees.trees) == 3  # the tree of the text no longer in the program is dropped


def test_facts_for_checks_a_cached_module_again_for_its_facts(tmp_path: Path, calls: Counter[str]) -> None:
    root = project(tmp_path)
    compile_paths([root], use_cache=True)
    replayed = compile_paths([root], use_cache=True)
    assert replayed.cached and replayed.module_facts == {}
    task = (root / "flows" / "cell" / "task.flow").resolve()
    asked = compile_paths([root], use_cache=True, facts_for=[task])
    assert "cell.task" in asked.module_facts and "other" not in asked.module_facts
    facts = asked.module_facts["cell.task"]
    assert facts.modules["cell.task"].file == str(task) and facts.modules["cell.arm"] is not None
    assert asked.diagnostics.items == replayed.diagnostics.items


def test_an_edit_checks_the_bodies_of_the_edited_module_and_its_importers_only(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Not those of the modules they import (read for their declarations), except the reactors they compose."""
    bodies: list[object] = []
    real = pipeline.check

    def recorded(*args: Any, **kwargs: Any) -> Any:
        bodies.append(kwargs.get("bodies"))
        return real(*args, **kwargs)

    monkeypatch.setattr(pipeline, "check", recorded)
    root = project(tmp_path, {"cell/arm.flow": ARM, "cell/task.flow": TASK, "other.flow": OTHER,
                              "cell/twice.flow": "from cell.arm import Arm\nimport cell.task as t\n"
                              "reactor Twice() -> bool on Arm {\n    step a = t.Beep()\n    return a\n}\n"})
    compile_paths([root], use_cache=True)
    assert len(bodies) == 1 and {"cell.arm", "cell.task", "cell.twice", "other"} <= set(bodies[0] or ())  # cold
    task = (root / "flows" / "cell" / "task.flow").resolve()
    edited = TASK.replace("step b = beep()", "step b = beep()\n    step c = beep() after b")
    warm = compile_paths([root], use_cache=True, buffers={task: edited})
    assert bodies[1:] == [{"cell.task", "cell.twice"}]
    cold = compile_paths([root], buffers={task: edited})
    assert [str(d) for d in warm.diagnostics.items] == [str(d) for d in cold.diagnostics.items]
    assert {d.code for d in warm.diagnostics.items} == {"BBF401"}  # `b` can be followed by the failure of `c`
