"""BBF701: bbflow.toml checked with the program by `bbflow check` (every format) and refused by `bbflow run`."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from bbflow import project_schema
from bbflow.cli import main
from bbflow.compiler.pipeline import compile_paths
from bbflow.project import ProjectError, load_project
from bbflow.project_schema import SCHEMA, Table, key_lines, locate

CELL = """\
signal go
robot Arm {
    states idle, busy
    command home() -> bool
    event force: {newtons: float}
}
agent Picker on Arm {
    on go { run home() }
}
"""

GOOD = """\
[project]
name = "cell"
source = "flows"

[robot.arm]
interface = "cell.Arm"
driver = "sim"
queue = 4

[robot.arm.sim]
duration = "5ms"
busy_state = "busy"

[robot.arm.sim.commands.home]
result = true

[[robot.arm.sim.events]]
after = "home"
event = "force"
data = {newtons = 1.0}

[agent.Picker]
robot = "arm"

[run]
agents = ["cell.Picker"]

[journal]
recovery = "hold"

[bus]
kind = "local"

[serve]
listen = "127.0.0.1:8350"

[supervision]
max_restarts = 3
within = "5s"
strategy = "one_for_one"
"""


def project(tmp_path: Path, toml: str, flow: str = CELL) -> Path:
    (tmp_path / "flows").mkdir(exist_ok=True)
    (tmp_path / "flows" / "cell.flow").write_text(flow)
    (tmp_path / "bbflow.toml").write_text(toml)
    return tmp_path


def bbf701(tmp_path: Path) -> list[tuple[int, str, str | None]]:
    """(line, message, help) of every BBF701 of a check of the project, with and without the cache."""
    found = []
    for use_cache in (False, True, True):
        result = compile_paths([tmp_path], use_cache=use_cache)
        found.append([(d.span.line, d.message, d.help) for d in result.diagnostics.items if d.code == "BBF701"])
    assert found[0] == found[1] == found[2]
    return found[0]


def edit(toml: str, old: str, new: str) -> str:
    assert old in toml
    return toml.replace(old, new, 1)


def test_a_good_project_file_has_no_problem(tmp_path: Path) -> None:
    assert bbf701(project(tmp_path, GOOD)) == []


@pytest.mark.parametrize(("old", "new", "line", "message", "help"), [
    ('duration = "5ms"', 'duraton = "5ms"', 11, "robot.arm.sim.duraton: unknown key", "did you mean `duration`?"),
    ('driver = "sim"', 'driver = "sim"\narm = "yes"', 8, "robot.arm.arm: expected true or false, found a string",
     None),
    ("queue = 4", "queue = 0", 8, "robot.arm.queue: expected an integer of at least 1", None),
    ("queue = 4", 'queue = 4\nconnect_timeout = "0s"', 9, "robot.arm.connect_timeout: expected a duration above 0",
     None),
    ('interface = "cell.Arm"', 'interface = "cell.Arn"', 6, "no robot interface `cell.Arn`", "did you mean `cell.Arm`?"),
    ('interface = "cell.Arm"', 'interface = "Arm"', 6, "no robot interface `Arm`", "did you mean `cell.Arm`?"),
    ("[agent.Picker]", "[agent.Pickr]", 22, "[agent.Pickr] names no agent", "did you mean `Picker`?"),
    ('robot = "arm"', 'robot = "amr"', 23, "agent.Picker.robot: no robot instance 'amr'", "did you mean `arm`?"),
    ('agents = ["cell.Picker"]', 'agents = ["cell.Pickr"]', 26, "no agent `cell.Pickr`", "did you mean `cell.Picker`?"),
    ('driver = "sim"', 'driver = "simm"', 7, 'driver "simm" is neither', "did you mean `sim`?"),
    ('busy_state = "busy"', 'busy_state = "bsy"', 12, "`bsy` is not one of Arm's states", "did you mean `busy`?"),
    ("commands.home]", "commands.hom]", 14, "Arm has no command `hom`", "did you mean `home`?"),
    ('event = "force"', 'event = "forse"', 19, "Arm declares no event `forse`", "did you mean `force`?"),
    ('after = "home"', 'after = "hme"', 18, "Arm has no command `hme`", "did you mean `home`?"),
    ('after = "home"\n', "", 17, "robot.arm.sim.events[1].after: missing", "add after = ..."),
    # the values too, against the interface's types, as `bbflow run` converts them
    ("result = true", 'result = "yes"', 15,
     "robot.arm.sim.commands.home.result: not a bool (the result of Arm.home): expected bool, got str 'yes'", None),
    ("data = {newtons = 1.0}", 'data = {newtons = "hard"}', 20,
     "robot.arm.sim.events[1].data: not a payload of event `force` ({newtons: float}): newtons: expected float", None),
    ("data = {newtons = 1.0}", "data = {force = 1.0}", 20, "not a payload of event `force`", None),
    # not also every name of the program, as the project folder then names the modules (flows.cell.Arm)
    ('source = "flows"', "source = 3", 3, "project.source: expected a non-empty string", None),
])
def test_each_problem_is_one_bbf701_at_its_key(tmp_path: Path, old: str, new: str, line: int, message: str,
                                               help: str | None) -> None:
    [(at, text, advice)] = bbf701(project(tmp_path, edit(GOOD, old, new)))
    assert (at, advice) == (line, help) and message in text


def test_sim_values_that_fit_the_interface_pass(tmp_path: Path) -> None:
    """An int where a float is wanted, an optional field left out, a record result: what `run` accepts."""
    flow = CELL.replace("command home() -> bool", "command home() -> {at: float, note: str?}").replace(
        "event force: {newtons: float}", "event force: {newtons: float}\n    event bump")
    toml = edit(edit(GOOD, "result = true", "result = {at = 2}"), "data = {newtons = 1.0}", "data = {newtons = 1}")
    assert bbf701(project(tmp_path, toml, flow)) == []
    toml += '\n[[robot.arm.sim.events]]\nafter = "home"\nevent = "bump"\ndata = {n = 1}\n'
    assert bbf701(project(tmp_path, toml, flow)) == [(45, "robot.arm.sim.events[2].data: event `bump` of Arm has no "
                                                         "payload", "remove `data`")]


def test_sim_values_follow_the_types_of_other_modules_through_the_cache(tmp_path: Path) -> None:
    """The result type is an alias of another module: editing it changes the verdict on a warm check too."""
    flow = "from shapes import Pose\n" + CELL.replace("command home() -> bool", "command home() -> Pose")
    toml = edit(GOOD, "result = true", "result = {x = 1.0}")
    project(tmp_path, toml, flow)
    (tmp_path / "flows" / "shapes.flow").write_text("type Pose = {x: float}\n")
    assert bbf701(tmp_path) == []
    (tmp_path / "flows" / "shapes.flow").write_text("type Pose = {x: str}\n")
    [(line, message, _)] = bbf701(tmp_path)
    assert line == 15 and "not a {x: str} (the result of Arm.home): x: expected str, got float 1.0" in message


@pytest.mark.parametrize(("old", "new", "line", "help"), [
    ('result = "closed"', 'result = "closd"', 15, "did you mean `closed`?"),
    ("data = {newtons = 1.0}", 'data = {newtons = 1.0, grip = "opne"}', 20, "did you mean `open`?"),
    ('result = "closed"', 'result = "shut"', 15, None),  # nothing close: the members are listed
])
def test_a_misspelt_enum_member_gets_a_did_you_mean(tmp_path: Path, old: str, new: str, line: int,
                                                     help: str | None) -> None:
    flow = (CELL.replace("signal go", "signal go\nenum Grip { open, closed }").replace("-> bool", "-> Grip")
            .replace("{newtons: float}", "{newtons: float, grip: Grip?}"))
    toml = edit(GOOD, "result = true", 'result = "closed"')
    assert bbf701(project(tmp_path, toml, flow)) == []
    [(at, text, advice)] = bbf701(project(tmp_path, edit(toml, old, new), flow))
    assert (at, advice) == (line, help) and "expected Grip (one of open, closed)" in text


@pytest.mark.parametrize(("old", "new", "message", "help"), [
    ('kind = "local"', 'kind = "zenho"', 'bus.kind: expected "local" or "zenoh"', "did you mean `zenoh`?"),
    ('within = "5s"', "within = 5", "supervision.within: expected a duration", None),
    ('recovery = "hold"', 'recovery = "hodl"', "journal.recovery", "did you mean `hold`?"),
    ('listen = "127.0.0.1:8350"', 'listen = 8350', "serve.listen: expected [HOST:]PORT", None),
    # `bbflow run` refused these ("expected [HOST:]PORT") while `bbflow check` found no problem
    ('listen = "127.0.0.1:8350"', 'listen = "nonsense"', "serve.listen: expected [HOST:]PORT", None),
    ('listen = "127.0.0.1:8350"', 'listen = "127.0.0.1:99999"', "serve.listen: expected [HOST:]PORT", None),
    ('kind = "local"', 'prefix = "cell/*"', "bus.prefix: bus prefix 'cell/*': expected chunks", None),  # (so was this)
    ('[supervision]', '[supervison]', "supervison: unknown key", "did you mean `supervision`?"),
])
def test_the_v0_2_tables_are_typed_too(tmp_path: Path, old: str, new: str, message: str, help: str | None) -> None:
    [(_, text, advice)] = bbf701(project(tmp_path, edit(GOOD, old, new)))
    assert message in text and advice == help


def test_an_installed_driver_name_is_accepted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(project_schema, "installed_drivers", lambda: frozenset({"toy"}))
    assert bbf701(project(tmp_path, edit(GOOD, 'driver = "sim"', 'driver = "toy"'))) == []
    [(_, text, _)] = bbf701(project(tmp_path, edit(GOOD, 'driver = "sim"', 'driver = "tooy"')))
    assert "installed: sim, toy" in text


def test_invalid_toml_is_one_bbf701_at_its_line(tmp_path: Path) -> None:
    [(line, text, _)] = bbf701(project(tmp_path, "[project]\nname = \n"))
    assert line == 2 and text.startswith("invalid TOML")


@pytest.mark.parametrize("broken", [
    ("queue = 4", "queue = "),  # the mistake is in another table
    ('name = "cell"', "name = "),  # in the [project] table, not on its `source` line
    ("[project]", "[project]  # the cell\nversion = [1,"),  # an array never closed, in [project]
])
def test_invalid_toml_keeps_the_source_folder_of_its_project_table(tmp_path: Path,
                                                                   broken: tuple[str, str]) -> None:
    """A file that was not TOML named every module from the project's folder (`flows.cell`): every
    import of the program was a BBF103, hiding the one mistake in bbflow.toml."""
    project(tmp_path, edit(GOOD, *broken))
    (tmp_path / "flows" / "task.flow").write_text("from cell import Arm\n\nreactor Home() on Arm {\n"
                                                  "    step h = home()\n}\n")
    result = compile_paths([tmp_path])
    assert [d.code for d in result.diagnostics.items] == ["BBF701"]
    assert result.diagnostics.items[0].message.startswith("invalid TOML")
    assert result.projects[0].source_dir == tmp_path.resolve() / "flows"


def test_json_and_sarif_carry_the_project_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(project(tmp_path, edit(GOOD, 'duration = "5ms"', 'duraton = "5ms"')))
    runner = CliRunner()
    out = runner.invoke(main, ["check", "--format", "json", "--no-cache"])
    assert out.exit_code == 1
    [d] = json.loads(out.stdout)["diagnostics"]
    assert (d["code"], d["file"], d["line"], d["column"], d["end_column"]) == ("BBF701", "bbflow.toml", 11, 1, 8)
    sarif = json.loads(runner.invoke(main, ["check", "--format", "sarif", "--no-cache"]).stdout)
    [r] = sarif["runs"][0]["results"]
    place = r["locations"][0]["physicalLocation"]
    assert r["ruleId"] == "BBF701" and place["artifactLocation"]["uri"].endswith("bbflow.toml")
    assert place["region"]["startLine"] == 11
    text = runner.invoke(main, ["check", "--no-cache"])
    assert "--> bbflow.toml:11:1" in text.stdout and "11 | duraton" in text.stdout


def test_run_refuses_with_the_same_diagnostic(tmp_path: Path) -> None:
    cell = project(tmp_path, edit(GOOD, 'duration = "5ms"', 'duraton = "5ms"'))
    out = CliRunner().invoke(main, ["run", str(cell), "--until-idle"], input="")
    assert out.exit_code == 2
    assert "error[BBF701]: robot.arm.sim.duraton: unknown key" in out.stderr
    assert "help: did you mean `duration`?" in out.stderr


def test_key_lines_finds_headers_keys_and_array_entries() -> None:
    text = ('a = """\n[not.a.table]\n"""\n[robot.arm]   # c\n"quoted key" = [\n  1,\n]\n'
            "[[robot.arm.sim.events]]\nafter = 'x'\n[[robot.arm.sim.events]]\nevent.sub = {k = 1}\n")
    lines = key_lines(text)
    assert lines[("a",)] == (1, 1) and ("not", "a", "table") not in lines
    assert lines[("robot", "arm", "quoted key")] == (5, 1)
    assert lines[("robot", "arm", "sim", "events", 0, "after")] == (9, 1)
    assert lines[("robot", "arm", "sim", "events", 1, "event", "sub")] == (11, 1)
    assert locate(("robot", "arm", "sim", "events", 1, "event", "sub", "k"), lines) == (11, 1)
    assert locate(("nowhere",), lines) == (1, 1)


def test_a_table_under_an_array_of_tables_is_found_in_its_last_entry() -> None:
    """`[a.b]` after `[[a]]` is a table of a's last entry: a problem in the second event's `[...data]` table
    was reported at the first event's header."""
    text = ("[[robot.arm.sim.events]]\nevent = 'x'\n[[robot.arm.sim.events]]\nevent = 'y'\n"
            "[robot.arm.sim.events.data]\nnewtons = 'strong'\n[[robot.arm.sim.events.data.more]]\nk = 1\n")
    lines = key_lines(text)
    assert lines[("robot", "arm", "sim", "events", 1, "data")] == (5, 1)
    assert lines[("robot", "arm", "sim", "events", 1, "data", "newtons")] == (6, 1)
    assert lines[("robot", "arm", "sim", "events", 1, "data", "more", 0, "k")] == (8, 1)
    assert ("robot", "arm", "sim", "events", "data") not in lines


def test_every_table_of_the_schema_is_documented() -> None:
    """docs/language.md lists every table of the schema (the users' reference of bbflow.toml)."""
    doc = (Path(__file__).resolve().parent.parent / "docs" / "language.md").read_text()
    assert isinstance(SCHEMA, Table)
    for table in SCHEMA.keys:
        assert f"[{table}" in doc, table


def test_one_file_of_a_project_is_checked_as_part_of_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """What a pre-commit hook does: its imports resolve in the project; only its diagnostics (and the
    project file's) are shown."""
    project(tmp_path, edit(GOOD, 'duration = "5ms"', 'duraton = "5ms"'))
    cell = tmp_path / "flows" / "cell"
    cell.mkdir()
    (cell / "arm.flow").write_text("robot Arm2 {\n    command beep() -> bool\n}\n")
    (cell / "task.flow").write_text("from cell.arm import Arm2\nreactor Beep() -> bool on Arm2 {\n"
                                    "    step b = beep()\n    return nope\n}\n")
    (cell / "broken.flow").write_text("reactor Other() -> int {\n    return missing\n}\n")
    monkeypatch.chdir(tmp_path)
    for use_cache in (False, True, True):
        result = compile_paths(["flows/cell/task.flow"], use_cache=use_cache)
        shown = sorted((d.code, d.span.file, d.span.line) for d in result.diagnostics.items)
        assert shown == [("BBF101", "flows/cell/task.flow", 4), ("BBF701", "bbflow.toml", 11)]
        assert result.files == 1


def test_run_prints_the_check_s_warnings_and_says_which_signals_were_dropped(tmp_path: Path) -> None:
    """A typo'd route is a BBF503 warning that `run` shows before anything moves; a signal refused at the
    door and one no agent routes are one drop each, and the summary says which (an agent that has no
    route for a signal another agent handles is no drop)."""
    flow = ("signal go\nsignal robot.task.completed\nsignal other\n"
            "agent Picker {\n    on go { }\n    on robot.task.complete { }\n}\n"
            "agent Other {\n    on other { }\n}\n")
    cell = project(tmp_path, '[project]\nsource = "flows"\n[run]\nagents = ["cell.Picker", "cell.Other"]\n', flow)
    stdin = "\n".join(['{"type": "go"}', '{"type": "goo"}', '{"type": "robot.task.completed"}', ""])
    out = CliRunner().invoke(main, ["run", str(cell), "--until-idle", "--events", str(tmp_path / "ev.jsonl")],
                             input=stdin)
    assert out.exit_code == 0, out.stderr
    assert "warning[BBF503]: route pattern `robot.task.complete` matches no declared signal" in out.stderr
    assert "did you mean `robot.task.completed`?" in out.stderr
    assert "2 signals in, 1 handled, 0 emitted, 2 dropped (1 refused at the door, 1 handled by no agent)" in out.stderr
    events = [json.loads(line) for line in (tmp_path / "ev.jsonl").read_text().splitlines()]
    dropped = [(e["type"], e["reason"]) for e in events if e["event"] == "signal.dropped"]
    assert dropped == [("goo", "undeclared signal type 'goo' (did you mean 'go'?)"),
                       ("robot.task.completed", "no agent routes it")]


def test_a_robot_instance_is_named_so_it_can_name_files_bus_keys_and_urls(tmp_path: Path) -> None:
    """`+` separates the robots in a `--robot` process's journal name (`journal.left+right.db`): a robot named
    `b+a` would hide that process's journal from recovery and `bbflow runs`."""
    good = GOOD + '\n[robot.left-2]\ninterface = "cell.Arm"\n\n[robot._spare]\ninterface = "cell.Arm"\n'
    assert bbf701(project(tmp_path, good)) == []
    lines = len(good.splitlines())
    for name, tidy in (('"b+a"', "b_a"), ('"9x"', "_9x"), ('"arm/1"', "arm_1"), ('"-x"', "_-x")):
        found = bbf701(project(tmp_path, good + f'\n[robot.{name}]\ninterface = "cell.Arm"\n'))
        assert found == [(lines + 2, f"robot.{name.strip(chr(34))}: '{name.strip(chr(34))}' is not a robot "
                                     "instance's name: letters, digits, `_` and `-`, not starting with a digit or `-` "
                                     "(it names the robot's journal, bus keys and URLs)",
                          f"rename it, for example [robot.{tidy}]")], name
    taken = good + '\n[robot.b_a]\ninterface = "cell.Arm"\n\n[robot."b+a"]\ninterface = "cell.Arm"\n'
    [(_, _, advice)] = bbf701(project(tmp_path, taken))
    assert advice == "rename it, for example [robot.b_a_2]"  # not a name the file has already


@pytest.mark.parametrize(("old", "new", "message"), [
    ('within = "5s"', f'within = "{"9" * 400}s"', 'supervision.within: expected a duration like "20ms"'),
    ('recovery = "hold"', f'keep = "{"9" * 400}d"', 'journal.keep: expected a duration like "7d"'),
    ('recovery = "hold"', 'keep = "²d"', 'journal.keep: expected a duration like "7d"'),
])
def test_a_duration_too_long_for_a_number_is_a_problem(tmp_path: Path, old: str, new: str, message: str) -> None:
    """A duration of 400 digits was infinity, and in days an OverflowError: a traceback from `bbflow check`."""
    [(line, text, _)] = bbf701(project(tmp_path, edit(GOOD, old, new)))
    assert text.startswith(message) and line == GOOD.splitlines().index(old) + 1


@pytest.mark.parametrize(("old", "new", "message"), [
    ('source = "flows"', 'source = "loop"', "project.source: folder 'loop' cannot be read: a loop of symbolic links"),
    ('kind = "local"', 'config = "loop"', "bus.config: no file 'loop'"),
])
def test_a_path_the_system_cannot_look_up_is_a_problem(tmp_path: Path, old: str, new: str, message: str) -> None:
    """A loop of links gave a traceback (RuntimeError from resolve); so did a name longer than the system allows
    (OSError), now refused by the schema (below) unless the project's own folder makes the path too long."""
    (tmp_path / "loop").symlink_to("loop")
    [(line, text, _)] = bbf701(project(tmp_path, edit(GOOD, old, new)))
    assert text.startswith(message) and line == GOOD.splitlines().index(old) + 1


@pytest.mark.parametrize("separator", ["\u2028", "\x85", "\u2029"])
def test_a_line_separator_in_a_comment_or_string_does_not_shift_the_lines(tmp_path: Path, separator: str) -> None:
    """TOML ends lines at LF (or CRLF) only; str.splitlines also ends one at these, so every BBF701 after
    such a comment (or a string holding one) was reported lines too low, underlining the wrong text."""
    toml = edit(GOOD, "[project]", f"# the cell{separator}(north)\n[project]")
    toml = edit(toml, 'name = "cell"', f'name = "cell{separator}"')
    toml = edit(toml, 'duration = "5ms"', 'duraton = "5ms"').replace("\n", "\r\n")
    result = compile_paths([project(tmp_path, toml)])
    [d] = [d for d in result.diagnostics.items if d.code == "BBF701"]
    assert (d.span.line, d.span.column, d.span.end_column) == (12, 1, 8) and d.message.startswith("robot.arm.sim.duraton")


def test_a_byte_order_mark_is_not_part_of_the_project_file(tmp_path: Path) -> None:
    """An editor that saves UTF-8 with a BOM made the file "invalid TOML" at line 1, column 1 (a .flow
    file with one is read as without it); the BOM is not counted in columns either."""
    project(tmp_path, "")
    (tmp_path / "bbflow.toml").write_text("\ufeff" + GOOD, encoding="utf-8")
    assert bbf701(tmp_path) == [] and load_project(tmp_path).name == "cell"
    (tmp_path / "bbflow.toml").write_text("\ufeff" + 'robt = "arm"\n' + GOOD, encoding="utf-8")
    [d] = [d for d in compile_paths([tmp_path]).diagnostics.items if d.code == "BBF701"]
    assert (d.span.line, d.span.column, d.span.end_column, d.help) == (1, 1, 5, "did you mean `robot`?")


def test_every_table_and_key_of_the_schema_is_in_the_language_reference() -> None:
    """The reference listed [journal] without `sync` and `keep`, and two of the three strategies."""
    page = (Path(__file__).resolve().parent.parent / "docs" / "language.md").read_text()
    section = page.split("## 8. Projects", 1)[1].split("\n## ", 1)[0]

    def keys(kind: object) -> set[str]:
        if isinstance(kind, Table):
            return {*kind.keys, *(k for item in kind.keys.values() for k in keys(item))}
        inner = getattr(kind, "item", None)
        return keys(inner) if inner is not None else set()

    written = re.findall(r"`([a-z_]+)`|[\[.]([a-z_]+)(?=[\].])", section)
    assert sorted(keys(SCHEMA) - {name for pair in written for name in pair}) == []
    assert all(f'`"{s}"`' in section for s in project_schema.STRATEGIES)


@pytest.mark.parametrize("bad", ["a\\u0000b", "x" * 256, "d/" * 2048 + "j.db"])
@pytest.mark.parametrize(("old", "key"), [
    ('source = "flows"', "project.source"), ('recovery = "hold"', "journal.path"), ('kind = "local"', "bus.config"),
    ('busy_state = "busy"', "robot.arm.sim.record"),
])
def test_a_path_no_system_can_open_is_refused_at_its_key(tmp_path: Path, old: str, key: str, bad: str) -> None:
    """A NUL, a name over 255 bytes or a path over 4095: `bbflow run` failed later, far from the key (the sim's
    `record` as "move_to failed: embedded null byte", a journal's path in a traceback); check said nothing."""
    name = key.rsplit(".", 1)[1]
    toml = edit(GOOD, old, f'{name} = "{bad}"')
    [(line, text, _)] = bbf701(project(tmp_path, toml))
    assert text.startswith(f"{key}: ") and "is not a file name" in text and line == GOOD.splitlines().index(old) + 1
    with pytest.raises(ProjectError, match=f"bbflow.toml: {key}: "):
        load_project(tmp_path)


@pytest.mark.parametrize("nested", ["[" * 5000 + "]" * 5000, "{a = " * 5000 + "1" + "}" * 5000])
def test_a_value_nested_too_deeply_to_read_is_one_bbf701_at_its_line(tmp_path: Path, nested: str) -> None:
    """tomllib reads nested arrays and inline tables by recursion: a RecursionError was a traceback."""
    [(line, text, _)] = bbf701(project(tmp_path, GOOD + f"[robot.arm.options]\nx = {nested}\n"))
    assert (line, text) == (GOOD.count("\n") + 2, "arrays or inline tables nested too deeply to be read")
    with pytest.raises(ProjectError, match="nested too deeply"):
        load_project(tmp_path)
