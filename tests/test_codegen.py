"""Code generation: what the generated modules hold, determinism, injection safety, line map notes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bbflow.build import build_program
from bbflow.runtime import model
from bbflow.runtime import types as rt
from bbflow.runtime.linemap import add_flow_note
from bbflow.runtime.loader import load_modules
from codegen_helpers import build_and_load, write_flows

CELL = Path(__file__).parent / "data" / "codegen_cell.flow"

ARM = """
type Pose = {x: float, y: float, z: float}
enum Grip { open, closed }
robot Arm {
    limit motion 1
    command move_to(target: Pose, speed: float = 0.5) -> Pose category motion timeout 10s
    command close_gripper(force: float = 20.0) -> Grip undo open_gripper()
    command open_gripper() -> Grip
    command home() -> Pose category motion
}
"""

TASK = """
from cell.arm import Arm, Pose, Grip
reactor Inner(p: Pose) -> Pose on Arm {
    step there = move_to(target: p, speed: 1) undo home()
    return there
}
reactor Outer(ps: list[Pose], home: Pose) -> Grip on Arm {
    let first = ps[0]
    step a = Inner(p: first)
    step g = close_gripper() after a
    switch kind on g {
        case open { return Grip.open }
        case closed { return Grip.closed }
    }
    map done over ps as q {
        step b = move_to(target: {x: q.x, y: 1, z: q.z}) after g irreversible "placed"
        return b
    }
    step back = move_to(target: home) after done irreversible "home"
    return kind
}
"""


def test_generated_modules_mirror_the_model(tmp_path: Path) -> None:
    program = build_and_load(tmp_path, {"cell/arm.flow": ARM, "cell/task.flow": TASK})
    arm = program.robots["cell.arm.Arm"]
    assert arm.commands["close_gripper"].undo == model.CommandCall("open_gripper", arm.commands["close_gripper"].undo.args)
    assert arm.commands["move_to"].params[1].default({}) == 0.5
    outer = program.reactors["cell.task.Outer"]
    nodes = {n.name: n for n in outer.body.nodes}
    # imported declarations are referred to by qualified name
    assert nodes["a"].call.reactor == "cell.task.Inner"
    assert nodes["a"].deps == ("first",)
    # defaults filled in, the command's timeout taken over, the inherited undo left to Command.undo
    g = nodes["g"]
    assert g.call.args({}) == {"force": 20.0} and g.deps == ("a",) and g.undo is None and g.timeout is None
    assert nodes["back"].timeout == 10.0 and nodes["back"].deps == ("done",)
    # enum members are strings, bare or qualified
    switch = nodes["kind"]
    assert [c.values for c in switch.cases] == [("open",), ("closed",)]
    assert [c.body.end.expr({}) for c in switch.cases] == ["open", "closed"]
    # int literals become floats where a float is expected
    inner = program.reactors["cell.task.Inner"].body.nodes[0]
    assert inner.call.args({"p": {"x": 0.0}}) == {"target": {"x": 0.0}, "speed": 1.0}
    assert type(inner.call.args({"p": {}})["speed"]) is float
    mapped = nodes["done"]
    step_b = mapped.body.nodes[0]
    assert step_b.call.args({"q": {"x": 2.0, "y": 0.0, "z": 3.0}})["target"] == {"x": 2.0, "y": 1.0, "z": 3.0}
    assert step_b.irreversible == "placed" and mapped.item == "q" and mapped.deps == ("g",)
    assert outer.result == rt.Enum("Grip", ("open", "closed"))
    assert outer.file == "cell/task.flow"


def test_packages_mirror_module_names(tmp_path: Path) -> None:
    build_and_load(tmp_path, {"cell/arm.flow": ARM, "cell/task.flow": TASK, "cell.flow": "signal cell.alarm\n"})
    out = tmp_path / "out"
    for rel in ("cell/__init__.py", "cell/arm.py", "cell/task.py", "std/prelude.py", "std/__init__.py"):
        assert (out / rel).is_file(), rel
    # module `cell` lives in the package `cell` itself
    assert "MODULE = 'cell'" in (out / "cell/__init__.py").read_text()


def _build_in_subprocess(src: Path, out: Path, seed: str) -> None:
    code = ("import sys; from bbflow.build import build_program, write_package;"
            "b = build_program([sys.argv[1]], use_cache=False); assert b.ok;"
            "write_package(b.modules, sys.argv[2])")
    env = {**os.environ, "PYTHONHASHSEED": seed}
    subprocess.run([sys.executable, "-c", code, str(src), str(out)], check=True, env=env, cwd=src)


def test_same_sources_give_identical_bytes_across_processes(tmp_path: Path) -> None:
    write_flows(tmp_path / "src", {"cell/arm.flow": ARM, "cell/task.flow": TASK})
    _build_in_subprocess(tmp_path / "src", tmp_path / "a", "1")
    _build_in_subprocess(tmp_path / "src", tmp_path / "b", "4242")
    files_a = sorted(p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*") if p.is_file())
    files_b = sorted(p.relative_to(tmp_path / "b") for p in (tmp_path / "b").rglob("*") if p.is_file())
    assert files_a == files_b and files_a
    for rel in files_a:
        assert (tmp_path / "a" / rel).read_bytes() == (tmp_path / "b" / rel).read_bytes(), rel


def test_importing_generated_code_needs_no_compiler(tmp_path: Path) -> None:
    build_and_load(tmp_path, {"cell/arm.flow": ARM, "cell/task.flow": TASK})
    code = ("import sys; from bbflow.runtime.loader import load_program;"
            "p = load_program(sys.argv[1]); assert 'cell.task.Outer' in p.reactors;"
            "bad = [m for m in sys.modules if m.split('.')[0] in ('lark', 'networkx')"
            " or m.startswith('bbflow.compiler')]; assert not bad, bad")
    subprocess.run([sys.executable, "-c", code, str(tmp_path / "out")], check=True)


def test_an_expression_error_points_at_the_flow_line(tmp_path: Path) -> None:
    flow = "reactor R(xs: list[int]) -> float {\n    let n = len(xs)\n    let third = xs[2] / n\n    return third\n}\n"
    program = build_and_load(tmp_path, {"cell.flow": flow})
    let = program.reactors["cell.R"].body.nodes[1]
    try:
        let.expr({"xs": [1], "n": 1})
    except IndexError as e:
        assert add_flow_note(e) == "cell.flow:3"
        assert e.__notes__ == ["at cell.flow:3"]
        add_flow_note(e)
        assert e.__notes__ == ["at cell.flow:3"]  # once only
    else:
        raise AssertionError("expected an IndexError")
    try:
        let.expr({"xs": [1, 2, 3], "n": 0})
    except ZeroDivisionError as e:
        assert add_flow_note(e) == "cell.flow:3"
    else:
        raise AssertionError("expected a ZeroDivisionError")
    assert add_flow_note(ValueError("not from generated code")) is None


def test_generated_code_is_commented_with_flow_lines(tmp_path: Path) -> None:
    build_and_load(tmp_path, {"cell/arm.flow": ARM, "cell/task.flow": TASK})
    text = (tmp_path / "out" / "cell" / "task.py").read_text()
    assert "# cell/task.flow:4" in text
    assert "COMPILER_VERSION = " in text and "SOURCE_SHA256 = " in text and f"ABI = {model.ABI}" in text
    compile(text, "task.py", "exec")
    assert "eval(" not in text and "exec(" not in text


# --- injection ------------------------------------------------------------------------------

KEYWORDS = ["class", "None", "import", "lambda", "def", "s", "_m", "_t", "_x", "_e1", "DECLS", "register",
            "ABI", "MODULE", "__import__", "print", "_T1", "_v1", "robot_Arm"]
idents = st.one_of(st.sampled_from(KEYWORDS), st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,12}", fullmatch=True))
texts = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=40)
FLOW_KEYWORDS = set("""from import as type enum signal robot states limit category command event readonly allowed
timeout undo irreversible action pure reactor on step let switch case default map over concurrency fail return
after when retry backoff max fallback where agent state priority set emit run then else schedule in if and or not
true false none""".split())


def flow_string(text: str) -> str:
    out = []
    for c in text:
        if c == '"':
            out.append('\\"')
        elif c == "\\":
            out.append("\\\\")
        elif c == "\n":
            out.append("\\n")
        elif c == "\t":
            out.append("\\t")
        elif not c.isprintable() or c == "\r":
            out.append("\\u{%x}" % ord(c))
        else:
            out.append(c)
    return '"' + "".join(out) + '"'


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(name=idents, step=idents, param=idents, message=texts, reason=texts, payload=texts, target=texts)
def test_no_name_or_string_can_inject_code(tmp_path_factory, name: str, step: str, param: str, message: str,
                                           reason: str, payload: str, target: str) -> None:
    names = {name, step, param}
    if names & FLOW_KEYWORDS or len(names) < 3 or names & {"Arm", "Done", "k", "other"}:
        return  # keywords, or the names of the template's own declarations
    flow = f"""
signal done.it: {{text: str}}
robot Arm {{
    command beep() -> bool
    command hum() -> bool
}}
action {name}_act({param}: str) -> str pure = {flow_string(target)}
reactor {name}({param}: str) -> bool on Arm {{
    step {step} = beep() irreversible {flow_string(reason)}
    step other = hum() after {step} irreversible "hum"
    switch k on {param} {{
        case {flow_string(message)} {{ fail {flow_string(message)} }}
        default {{ return other }}
    }}
    return k
}}
agent Done {{
    on done.it as {step} {{ emit done.it {{text: {flow_string(payload)}}} }}
}}
"""
    root = tmp_path_factory.mktemp("inject")
    program = build_and_load(root, {"cell.flow": flow})
    reactor = program.reactors[f"cell.{name}"]
    assert reactor.name == name and reactor.params[0].name == param
    first, second, switch = reactor.body.nodes
    assert first.name == step and first.irreversible == reason and second.deps == (step,)
    assert switch.cases[0].values == (message,) and switch.cases[0].body.end.message == message
    assert switch.subject({param: "x"}) == "x"
    assert program.actions[f"cell.{name}_act"].target == target
    route = program.agents["cell.Done"].routes[0]
    assert route.bind == step and route.body[0].data({}) == {"text": payload}
    assert len(load_modules(root / "out")) == 2  # nothing else was created or imported


def test_build_refuses_programs_with_errors(tmp_path: Path) -> None:
    write_flows(tmp_path, {"cell.flow": "reactor R() -> int { return nope }\n"})
    built = build_program([tmp_path], use_cache=False)
    assert not built.ok and built.modules == []
    assert [d.code for d in built.diagnostics.errors] == ["BBF101"]
