"""The content-hash cache: unchanged programs are neither checked nor generated; imports invalidate importers."""

from __future__ import annotations

from pathlib import Path

import pytest

from bbflow.compiler import pipeline
from bbflow.compiler.build import build_program
from bbflow.compiler.cache import Cache, module_keys
from codegen_helpers import write_flows

ARM = "robot Arm {\n    command beep() -> bool\n}\n"
TASK = "from cell.arm import Arm\nreactor Beep() -> bool on Arm {\n    step b = beep()\n    return b\n}\n"
OTHER = "reactor Two() -> int {\n    return 2\n}\n"


def test_keys_follow_imports() -> None:
    sources = {"a": "A", "b": "B", "c": "C"}
    imports = {"b": ("a",), "c": ()}
    before = module_keys(sources, imports)
    after = module_keys({**sources, "a": "A2"}, imports)
    assert before["a"] != after["a"] and before["b"] != after["b"] and before["c"] == after["c"]
    # a missing import enters the key, so creating that module later changes it
    assert module_keys({"x": "X"}, {"x": ("y",)}) != module_keys({"x": "X", "y": "Y"}, {"x": ("y",)})


def test_a_changed_compiler_changes_every_key(monkeypatch: pytest.MonkeyPatch) -> None:
    """A compiler being developed (same version number) must not replay what its older self found."""
    from bbflow.compiler import cache

    sources, imports = {"a": "A", "b": "B"}, {"b": ("a",)}
    before = module_keys(sources, imports)
    monkeypatch.setattr(cache, "compiler_fingerprint", lambda: "a compiler with one line changed")
    after = module_keys(sources, imports)
    assert all(before[m] != after[m] for m in sources)


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
    real = pipeline.generate_module
    monkeypatch.setattr(pipeline, "generate_module",
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
