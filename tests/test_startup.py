"""A short command starts fast: parser tables loaded from a trusted cache, nothing imported that is not used."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from lark import Lark

from bbflow.compiler.syntax import tables
from bbflow.compiler.syntax.parser import parse_text


def _modules_after(args: list[str], env: dict[str, str] | None = None, *, top: bool = True) -> set[str]:
    """The modules imported by ``bbflow ARGS`` in a fresh process (with ``main``, never ``entry``): their
    top-level packages, or with ``top=False`` every module by its full name."""
    code = ("import sys\nimport bbflow.cli\nsys.argv = ['bbflow', *sys.argv[1:]]\n"
            "try:\n    bbflow.cli.main()\nexcept SystemExit:\n    pass\n"
            "print(' '.join(sorted(sys.modules)), file=sys.stderr)")
    done = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=120,
                          env={**os.environ, **(env or {})})
    names = set(done.stderr.strip().splitlines()[-1].split())
    return {name.split(".")[0] for name in names} if top else names


def test_version_and_explain_import_no_compiler_stack() -> None:
    for args in (["--version"], ["explain", "BBF401"]):
        assert not _modules_after(args) & {"lark", "networkx", "rich"}, args


def test_checking_a_file_without_reactors_never_imports_networkx_or_rich(tmp_path: Path) -> None:
    (tmp_path / "one.flow").write_text("type T = int\n")
    imported = _modules_after(["check", "--no-cache", str(tmp_path / "one.flow")],
                              {"BBFLOW_PARSER_CACHE": str(tmp_path / "tables")})
    assert "lark" in imported and not imported & {"networkx", "rich"}


def test_checking_reactors_without_cycles_never_imports_networkx(tmp_path: Path) -> None:
    example = Path(__file__).resolve().parents[1] / "examples" / "pick_and_place"
    imported = _modules_after(["check", "--no-cache", str(example)], {"BBFLOW_PARSER_CACHE": str(tmp_path / "t")})
    assert "lark" in imported and "networkx" not in imported


def test_a_check_builds_no_runtime_model_and_no_code_generator(tmp_path: Path) -> None:
    """A project's agents, routes and reactors are checked without the classes of the executable model, the
    signal machinery, the code generator or the graph drawing: building them would only slow the start."""
    example = Path(__file__).resolve().parents[1] / "examples" / "pick_and_place"
    (tmp_path / "flows").mkdir()
    (tmp_path / "flows" / "cell.flow").write_text((example / "flows" / "cell.flow").read_text())
    (tmp_path / "bbflow.toml").write_text('[project]\nname = "cell"\nsource = "flows"\n\n'
                                          '[robot.arm]\ninterface = "cell.Arm"\ndriver = "sim"\n')
    imported = _modules_after(["check", "--no-cache", str(tmp_path)], {"BBFLOW_PARSER_CACHE": str(tmp_path / "t")},
                              top=False)
    assert {"bbflow.compiler.analysis.analyses", "bbflow.compiler.project_check"} <= imported
    assert not imported & {"bbflow.runtime.model", "bbflow.runtime.signals", "bbflow.compiler.codegen.src",
                           "bbflow.compiler.analysis.graphviz"}


def test_console_script_exits_with_the_commands_status(tmp_path: Path) -> None:
    (tmp_path / "bad.flow").write_text("type T = intt\n")
    bad = subprocess.run([sys.executable, "-m", "bbflow", "check", str(tmp_path / "bad.flow")],
                         capture_output=True, text=True, timeout=120)
    assert (bad.returncode, "BBF101" in bad.stdout, "1 error" in bad.stderr) == (1, True, True)
    missing = subprocess.run([sys.executable, "-m", "bbflow", "check", str(tmp_path / "nope")],
                             capture_output=True, text=True, timeout=120)
    assert missing.returncode == 2 and "no such file" in missing.stderr


# --- the tables cache ---------------------------------------------------------------


def _calc(grammar: str = 'start: "a"+') -> Lark:
    return Lark(grammar, parser="lalr")


def test_tables_are_built_once_then_loaded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(tables.CACHE_ENV, str(tmp_path / "c"))
    built: list[int] = []

    def build() -> Lark:
        built.append(1)
        return _calc()

    first = tables.load_or_build('start: "a"+', build)
    second = tables.load_or_build('start: "a"+', build)
    assert built == [1] and first.parse("aaa") == second.parse("aaa")
    assert oct((tmp_path / "c").stat().st_mode & 0o777) == "0o700"
    tables.load_or_build('start: "b"+', lambda: built.append(2) or _calc('start: "b"+'))  # type: ignore[func-returns-value]
    assert built == [1, 2]  # another grammar never loads the first one's tables


@pytest.mark.parametrize("damage", ["group-writable folder", "group-writable file", "garbage", "symlink"])
def test_an_untrusted_or_damaged_cache_is_never_loaded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                      damage: str) -> None:
    folder = tmp_path / "c"
    monkeypatch.setenv(tables.CACHE_ENV, str(folder))
    tables.load_or_build('start: "a"+', _calc)
    (path,) = folder.glob("parser-*.lark")
    if damage == "group-writable folder":
        folder.chmod(0o770)
    elif damage == "group-writable file":
        path.chmod(0o660)
    elif damage == "garbage":
        path.write_bytes(b"not a pickle")
    else:
        other = tmp_path / "elsewhere.lark"
        path.rename(other)
        path.symlink_to(other)
    built: list[int] = []
    parser = tables.load_or_build('start: "a"+', lambda: built.append(1) or _calc())  # type: ignore[func-returns-value]
    assert built == [1] and parser.parse("aa")


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root writes into read-only folders")
def test_a_read_only_cache_folder_still_parses(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "ro"
    folder.mkdir(mode=0o500)
    monkeypatch.setenv(tables.CACHE_ENV, str(folder))
    assert tables.load_or_build('start: "a"+', _calc).parse("a")


def test_the_flow_parser_loaded_from_tables_parses_like_a_fresh_one(tmp_path: Path) -> None:
    code = ("from bbflow.compiler.syntax.parser import parse_text\n"
            "m, d = parse_text('reactor R() {\\n  step a = beep()\\n}\\n', 'r.flow')\n"
            "print(repr(m), [x.message for x in d])")
    env = {**os.environ, tables.CACHE_ENV: str(tmp_path / "t")}
    runs = [subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
            for _ in range(2)]
    assert runs[0].returncode == 0, runs[0].stderr
    assert len(list((tmp_path / "t").glob("parser-*.lark"))) == 1
    assert runs[0].stdout == runs[1].stdout
    module, diags = parse_text("reactor R() {\n  step a = beep()\n}\n", "r.flow")
    assert repr(module) in runs[0].stdout


@pytest.mark.parametrize("package", ["bbflow.compiler", "bbflow.compiler.analysis", "bbflow.compiler.codegen",
                                     "bbflow.compiler.syntax", "bbflow.runtime"])
def test_every_public_name_is_found_where_the_table_says(package: str) -> None:
    import importlib

    module = importlib.import_module(package)
    assert set(module.__all__) == set(module.__getattr__.home)
    for name in module.__all__:
        assert getattr(module, name) is not None


def test_the_compiler_reads_the_runtime_abi_without_the_executor() -> None:
    code = "import sys, bbflow.compiler.cache\nprint('bbflow.runtime.executor' in sys.modules, 'asyncio' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.stdout.split() == ["False", "False"], done.stderr
