"""The content-hash cache: module keys cover what a module's check reads; entries round-trip; code is per module."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from bbflow.compiler import compile_paths, pipeline
from bbflow.compiler.codegen import generate
from bbflow.compiler.semantic import types as T
from bbflow.build import build_program
from bbflow.compiler.cache import (
    FORMAT, Cache, ModuleCheck, RobotSite, Scan, SignalEntry, SignalSite, base_keys, canonical_type, module_keys,
    table_digest, type_from_json, type_to_json,
)
from bbflow.compiler.diagnostics.core import Diagnostic, Label, Severity
from bbflow.compiler.source import Span
from codegen_helpers import write_flows

ARM = "robot Arm {\n    command beep() -> bool\n}\n"
TASK = "from cell.arm import Arm\nreactor Beep() -> bool on Arm {\n    step b = beep()\n    return b\n}\n"
OTHER = "reactor Two() -> int {\n    return 2\n}\n"


def scan(*imports: str, signals: tuple[str, ...] = (), agents: bool = False, broken: bool = False) -> Scan:
    at = Span("", 1, 1, 1, 2)
    return Scan(tuple(sorted(imports)), tuple(SignalSite(s, at, at) for s in signals), ("A",) if agents else (), broken)


def keys(sources: dict[str, str], scans: dict[str, Scan],
         table: tuple[tuple[str, str, T.Type], ...] = ()) -> dict[str, str]:
    return module_keys(base_keys(sources, scans), scans, table_digest(table))


def changed(before: dict[str, str], after: dict[str, str]) -> set[str]:
    return {m for m in before if before[m] != after.get(m)}


def test_keys_follow_imports_transitively() -> None:
    sources = {"a": "A", "b": "B", "c": "C", "d": "D"}
    scans = {"a": scan(), "b": scan("a"), "c": scan("b"), "d": scan()}
    before = keys(sources, scans)
    assert changed(before, keys({**sources, "a": "A2"}, scans)) == {"a", "b", "c"}
    assert changed(before, keys({**sources, "c": "C2"}, scans)) == {"c"}


def test_every_module_of_an_import_cycle_depends_on_every_other() -> None:
    sources = {"a": "A", "b": "B", "c": "C"}
    scans = {"a": scan("b"), "b": scan("a"), "c": scan("a")}
    before = keys(sources, scans)
    assert changed(before, keys({**sources, "a": "A2"}, scans)) == {"a", "b", "c"}
    assert changed(before, keys({**sources, "b": "B2"}, scans)) == {"a", "b", "c"}


def test_a_missing_import_enters_the_key_with_every_module_name() -> None:
    """Creating the missing module changes the key; so does any new module (BBF103's "did you mean")."""
    scans = {"x": scan("y"), "z": scan()}
    before = keys({"x": "X", "z": "Z"}, scans)
    created = keys({"x": "X", "y": "Y", "z": "Z"}, {**scans, "y": scan()})
    assert changed(before, created) == {"x"}
    other = keys({"x": "X", "w": "W", "z": "Z"}, {**scans, "w": scan()})
    assert changed(before, other) == {"x"}


POSE = T.RecordT((("x", T.FLOAT), ("y", T.FLOAT)), "Pose")
GRIP = T.EnumT("cell.Grip", ("open", "closed"))


def test_a_module_with_agents_depends_on_the_signal_table_not_on_the_declaring_texts() -> None:
    sources = {"sig": "S", "dep": "D", "agent": "A", "plain": "P"}
    scans = {"sig": scan("dep", signals=("done",)), "dep": scan(), "agent": scan(agents=True), "plain": scan()}
    table = (("done", "sig", T.RecordT((("at", POSE), ("grip", GRIP)))),)
    before = keys(sources, scans, table)
    # what the declaring module imports changes its own key, not the agent's while the table stays
    assert changed(before, keys({**sources, "dep": "D2"}, scans, table)) == {"dep", "sig"}
    assert changed(before, keys({**sources, "sig": "S2"}, scans, table)) == {"sig"}
    # anything of the table changes it: a payload's field type, an alias name (messages show it), an enum's
    # members (a bare member is looked up in them), the declaring module, the order, a new signal
    for other in ((("done", "sig", T.RecordT((("at", POSE), ("grip", T.STR)))),),
                  (("done", "sig", T.RecordT((("at", T.RecordT(POSE.fields, "Place")), ("grip", GRIP)))),),
                  (("done", "sig", T.RecordT((("at", POSE), ("grip", T.EnumT("cell.Grip", ("open",)))))),),
                  (("done", "plain", table[0][2]),),
                  (*table, ("go", "sig", T.NONE)),
                  (("go", "sig", T.NONE), *table)):
        assert changed(before, keys(sources, scans, other)) == {"agent"}


def test_a_module_with_syntax_errors_depends_on_the_whole_program() -> None:
    """Its declarations are resolved by whichever module uses them, so its importers matter too."""
    sources = {"broken": "B", "user": "U", "other": "O"}
    scans = {"broken": scan(broken=True), "user": scan("broken"), "other": scan()}
    before = keys(sources, scans)
    assert changed(before, keys({**sources, "other": "O2"}, scans)) == {"broken", "other"}


def test_a_changed_compiler_changes_every_key(monkeypatch: pytest.MonkeyPatch) -> None:
    """A compiler being developed (same version number) must not replay what its older self found."""
    from bbflow.compiler import cache

    sources, scans = {"a": "A", "b": "B"}, {"a": scan(), "b": scan("a")}
    before = keys(sources, scans)
    monkeypatch.setattr(cache, "compiler_fingerprint", lambda: "a compiler with one line changed")
    after = keys(sources, scans)
    assert changed(before, after) == {"a", "b"}
    assert cache.scan_key("text") != before["a"]


def test_scans_and_checks_round_trip_with_the_paths_of_this_run(tmp_path: Path) -> None:
    cache = Cache.for_project(tmp_path)
    at = Span("", 3, 1, 3, 20)
    stored = Scan(("cell.arm", "std.prelude"), (SignalSite("cell.done", at, Span("", 3, 8, 3, 17)),), ("Picker",), False,
                  (RobotSite("Arm", ("home",), ("force",), ("idle", "busy")),))
    cache.put_scan("text", stored)
    assert cache.scan("text") == stored and cache.scan("other text") is None
    diag = Diagnostic("BBF101", Severity.ERROR, "unknown name `x`", Span("old/cell/task.flow", 2, 5, 2, 6),
                      (Label(Span("old/cell/arm.flow", 1, 1, 1, 4), "here"),), ("a note",), None)
    check = ModuleCheck((diag,), frozenset({"cell.done"}), frozenset())
    cache.put_check("k", {"cell.task": "old/cell/task.flow", "cell.arm": "old/cell/arm.flow"}, check)
    back = cache.check("k", {"cell.task": "new/task.flow", "cell.arm": "new/arm.flow"})
    assert back is not None and back.routes == check.routes and back.emitted == frozenset()
    assert back.diagnostics[0].span.file == "new/task.flow"
    assert back.diagnostics[0].labels[0].span.file == "new/arm.flow"
    assert cache.check("missing", {}) is None and (cache.hits, cache.misses) == (1, 1)


def test_resolved_types_round_trip_with_what_equality_leaves_out() -> None:
    """Alias names and enum members are not part of a type's identity, but messages and checks read them."""
    payload = T.RecordT((("at", T.OptionalT(POSE)), ("grips", T.ListT(GRIP)), ("by", T.MapT(T.INT)),
                         ("broken", T.ERROR), ("nothing", T.NONE), ("any", T.ANY), ("d", T.DURATION)))
    back = type_from_json(type_to_json(payload))
    assert back == payload and str(back) == str(payload)
    assert back.field("at").inner.name == "Pose" and back.field("grips").item.members == ("open", "closed")
    assert canonical_type(POSE) != canonical_type(T.RecordT(POSE.fields))  # equal types, different messages
    for bad in (["record", None], ["enum"], "flaot", ["list", "int", "int"], 3):
        with pytest.raises((KeyError, TypeError, ValueError)):
            type_from_json(bad)


def test_resolved_signals_round_trip_and_a_damaged_entry_is_a_miss(tmp_path: Path) -> None:
    cache = Cache.for_project(tmp_path)
    entries = (SignalEntry("cell.done", T.RecordT((("at", POSE),))), SignalEntry("cell.go", T.NONE))
    cache.put_signals("k", entries)
    assert cache.signals("k") == entries and cache.signals("other") is None
    (cache.root / "signals" / "k.json").write_text(json.dumps({"format": FORMAT, "signals": [["cell.done", ["enum"]]]}))
    assert cache.signals("k") is None


def test_the_compiler_fingerprint_covers_the_compiler_s_code() -> None:
    from bbflow.compiler import cache

    assert cache.compiler_fingerprint() == cache.compiler_fingerprint.__wrapped__()  # stable within a process
    assert len(cache.compiler_fingerprint()) == 64


def test_an_unchanged_program_is_not_checked_again(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_flows(tmp_path, {"cell/arm.flow": ARM, "cell/task.flow": TASK, "other.flow": OTHER})
    first = build_program([tmp_path])
    assert first.ok and first.modules

    def no_check(*args: object, **kwargs: object) -> None:
        raise AssertionError("checked again")

    monkeypatch.setattr(pipeline, "check", no_check)
    second = build_program([tmp_path])
    assert [(m.module, m.code) for m in second.modules] == [(m.module, m.code) for m in first.modules]
    assert (tmp_path / ".bbflow" / "cache" / "modules").is_dir()


def test_a_changed_import_regenerates_its_importers_only(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_flows(tmp_path, {"cell/arm.flow": ARM, "cell/task.flow": TASK, "other.flow": OTHER})
    build_program([tmp_path])
    generated: list[str] = []
    real = generate.generate_module
    monkeypatch.setattr(generate, "generate_module",
                        lambda module, facts, text: generated.append(module.name) or real(module, facts, text))
    write_flows(tmp_path, {"cell/arm.flow": ARM.replace("beep() -> bool", "beep(loud: bool = true) -> bool")})
    again = build_program([tmp_path])
    assert again.ok
    assert sorted(generated) == ["cell.arm", "cell.task"]
    task = next(m for m in again.modules if m.module == "cell.task")
    assert "'loud': True" in task.code


def test_diagnostics_come_back_from_the_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_flows(tmp_path, {"cell.flow": "reactor R() -> int {\n    return nope\n}\n"})
    first = build_program([tmp_path])
    monkeypatch.setattr(pipeline, "check", lambda *a, **k: (_ for _ in ()).throw(AssertionError("checked")))
    second = build_program([tmp_path])
    assert [(d.code, d.span.line, d.span.file) for d in second.diagnostics] == \
        [(d.code, d.span.line, d.span.file) for d in first.diagnostics]
    assert not second.ok and second.modules == []


def test_a_corrupt_entry_is_a_miss(tmp_path: Path) -> None:
    write_flows(tmp_path, {"other.flow": OTHER})
    build_program([tmp_path])
    for entry in (tmp_path / ".bbflow" / "cache").rglob("*.json"):
        entry.write_text("{not json")
    assert build_program([tmp_path]).ok
    cache = Cache.for_project(tmp_path)
    assert cache.get("0" * 64) is None and cache.misses == 1


def test_bbflow_cache_keeps_the_cache_out_of_the_project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    project, elsewhere = tmp_path / "project", tmp_path / "caches"
    write_flows(project, {"cell/arm.flow": ARM, "cell/task.flow": TASK})
    monkeypatch.setenv("BBFLOW_CACHE", str(elsewhere))
    first = build_program([project])
    assert first.ok and not (project / ".bbflow").exists()
    (folder,) = [p for p in elsewhere.iterdir() if not p.name.startswith(".")]  # one folder for this project

    def no_check(*args: object, **kwargs: object) -> None:
        raise AssertionError("checked again")

    monkeypatch.setattr(pipeline, "check", no_check)
    assert build_program([project]).ok  # the second build hits the cache kept in ``folder``
    assert folder == Cache.for_project(project).root


# --- trust: entries verified, folders others can write refused ------------------------------------------


def test_an_edited_code_entry_is_never_executed(tmp_path: Path) -> None:
    """Editing modules/<key>.json (code injected) makes it a miss: the code is generated again."""
    write_flows(tmp_path, {"other.flow": OTHER})
    first = build_program([tmp_path])
    assert first.ok
    for entry in (tmp_path / ".bbflow" / "cache" / "modules").glob("*.json"):
        header, body = entry.read_bytes().split(b"\n", 1)
        data = json.loads(body)
        data["code"] = "import os\nos.system('touch PWNED')\n" + data["code"]
        entry.write_bytes(header + b"\n" + json.dumps(data, sort_keys=True).encode())
    again = build_program([tmp_path])
    assert again.ok and again.modules and all("PWNED" not in m.code for m in again.modules)


def test_a_check_entry_with_its_diagnostics_cleared_is_a_miss(tmp_path: Path) -> None:
    write_flows(tmp_path, {"bad.flow": "reactor R() {\n    step a = nowhere()\n}\n"})
    assert not compile_paths([tmp_path], use_cache=True).diagnostics.items == []
    for entry in (tmp_path / ".bbflow" / "cache" / "checks").glob("*.json"):
        header, body = entry.read_bytes().split(b"\n", 1)
        data = json.loads(body)
        data["diagnostics"] = []
        entry.write_bytes(header + b"\n" + json.dumps(data, sort_keys=True).encode())
    assert [d.code for d in compile_paths([tmp_path], use_cache=True).diagnostics.items] == ["BBF101"]


def test_an_entry_copied_under_another_key_is_a_miss(tmp_path: Path) -> None:
    cache = Cache(tmp_path / ".bbflow" / "cache")
    cache.put_table("a" * 16, "digest-of-a")
    assert cache.table("a" * 16) == "digest-of-a"
    folder = tmp_path / ".bbflow" / "cache" / "tables"
    (folder / f"{'b' * 16}.json").write_bytes((folder / f"{'a' * 16}.json").read_bytes())
    assert cache.table("b" * 16) is None


@pytest.mark.skipif(not hasattr(os, "getuid"), reason="POSIX permissions")
def test_a_cache_folder_others_can_write_is_not_used(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_flows(tmp_path, {"other.flow": OTHER})
    assert build_program([tmp_path]).ok
    folder = tmp_path / ".bbflow" / "cache"
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700  # the cache makes its folders private
    folder.chmod(0o777)
    cache = Cache.for_project(tmp_path)
    assert cache.refused is not None and "writable by other users" in cache.refused
    assert "warning: cache folder" in capsys.readouterr().err
    build = build_program([tmp_path])
    assert build.ok and build.cache is not None and build.cache.hits == 0
