"""Collections for agent state: lists joined with `+`, slices, `in`/`not in`, `get`, `keys`, `remove`, and
`set FIELD[KEY] = EXPR` — checked, generated and run."""

from __future__ import annotations

import pytest
from checker_helpers import check_text, codes

from bbflow.runtime import exprlib
from e2e_flows import build, serve_agents

QUEUE = """
type Job = {id: int, station: str}
enum Status { idle, working }
signal job.requested: {id: int, station: str}
signal job.done: {robot: str, job: int}
signal job.assigned: {job: Job, robot: str}

agent Coordinator {
    state {
        queue: list[Job] = []
        robots: map[Status] = {left: idle, right: idle}
        done: list[int] = []
    }

    on job.requested as r when r.data.id not in done {
        set queue = queue + [{id: r.data.id, station: r.data.station}]
        if len(queue) == 1 and "left" in robots and get(robots, "left") == Status.idle {
            emit job.assigned {job: queue[0], robot: "left"}
            set robots["left"] = working
            set queue = queue[1:]
        }
    }
    on job.done as d {
        set robots[d.data.robot] = idle
        set done = done + [d.data.job]
        if len(queue) > 0 {
            emit job.assigned {job: queue[0], robot: d.data.robot}
            set robots[d.data.robot] = working
            set queue = queue[1:]
        }
    }
    on job.assigned { }
}
"""


def test_the_queue_example_checks_clean() -> None:
    diags, _, _ = check_text(QUEUE)
    assert codes(diags) == []


@pytest.mark.parametrize(("text", "code"), [
    # the items of a list literal are checked as those of the list it extends
    ("set jobs = jobs + [{id: 1}]", "BBF201"),
    ("set jobs = jobs + [1]", "BBF201"),
    ("set ids = ids + jobs", "BBF201"),
    ("set ids = ids[\"a\":]", "BBF201"),
    ("set ids = n[1:]", "BBF201"),
    ("set flag = 1 in table", "BBF201"),
    ("set flag = \"a\" in ids", "BBF201"),
    ("set flag = 1 in n", "BBF201"),
    ("set n = get(table, \"a\")", "BBF204"),
    ("set n = get(table, 1) ?? 0", "BBF201"),
    ("set ids = keys(ids)", "BBF201"),
    ("set table = remove(ids, \"a\")", "BBF201"),
    ("set n[0] = 1", "BBF201"),
    ("set ids[\"a\"] = 1", "BBF201"),
    ("set ids[0] = \"a\"", "BBF201"),
    ("set table[0] = 1", "BBF201"),
    ("set nope[0] = 1", "BBF101"),
])
def test_collection_mistakes_are_one_diagnostic_each(text: str, code: str) -> None:
    program = ("type Job = {id: int, station: str}\nsignal go\nagent A {\n"
               "    state { jobs: list[Job] = []  ids: list[int] = []  table: map[int] = {}  n: int = 0"
               "  flag: bool = false }\n"
               f"    on go {{ {text} }}\n}}\n")
    diags, _, _ = check_text(program)
    assert codes(diags) == [code], [d.message for d in diags.items]


@pytest.mark.parametrize("text", [
    "set jobs = jobs + [{id: 1, station: \"a\"}] + jobs[1:] + jobs[:2] + jobs[:] + []",
    "set ids = [] + ids + [n] + [len(keys(table))] + ids[len(ids):]",
    "set flag = n in ids and \"a\" not in table and \"ab\" in \"cab\" and \"x\" in keys(table)",
    "set n = (get(table, \"a\") ?? 0) + (get(ids, 3) ?? 0)",
    "set table = remove(table, \"a\")",
    "set table[\"b\"] = n",
    "set ids[0] = n",
    "set jobs[0] = {id: 2, station: \"b\", extra: true}",
])
def test_collection_expressions_that_check(text: str) -> None:
    program = ("type Job = {id: int, station: str}\nsignal go\nagent A {\n"
               "    state { jobs: list[Job] = []  ids: list[int] = []  table: map[int] = {}  n: int = 0"
               "  flag: bool = false }\n"
               f"    on go {{ {text} }}\n}}\n")
    diags, _, _ = check_text(program)
    assert codes(diags) == [], [d.message for d in diags.items]


def test_the_runtime_helpers() -> None:
    xs = [1, 2, 3]
    assert [exprlib.slice_(xs, i, j) for i, j in [(1, None), (None, 2), (-5, 99), (2, 1), (None, None)]] == [
        [2, 3], [1, 2], [1, 2, 3], [], [1, 2, 3]]
    assert exprlib.slice_("robot", 1, 3) == "ob"
    assert exprlib.get({"a": 1}, "a") == 1 and exprlib.get({"a": 1}, "b") is None
    assert exprlib.get(xs, 2) == 3 and exprlib.get(xs, 3) is None and exprlib.get(xs, -1) is None
    assert exprlib.keys({"b": 1, "a": 2}) == ["a", "b"]
    table = {"a": 1, "b": 2}
    assert exprlib.remove(table, "a") == {"b": 2} and table == {"a": 1, "b": 2}


def test_a_coordinator_keeps_a_queue_end_to_end() -> None:
    program = build(QUEUE)
    signals = [{"type": "job.requested", "data": {"id": n, "station": f"s{n}"}} for n in (1, 2, 3)]
    signals += [{"type": "job.done", "data": {"robot": "left", "job": 1}},
                {"type": "job.requested", "data": {"id": 1, "station": "again"}}]  # done: not queued again
    run = serve_agents(program, {}, {"Coordinator": None}, signals, gap=1.0)
    assigned = [e["data"] for e in run.named("signal.emit") if e["type"] == "job.assigned"]
    assert assigned == [{"job": {"id": 1, "station": "s1"}, "robot": "left"},
                        {"job": {"id": 2, "station": "s2"}, "robot": "left"}]
    assert run.servers["Coordinator"].state == {
        "queue": [{"id": 3, "station": "s3"}], "robots": {"left": "working", "right": "idle"}, "done": [1]}


def test_a_set_element_out_of_range_fails_the_handler_and_keeps_the_state() -> None:
    program = build("signal go\nagent A {\n    state { ids: list[int] = [1]  n: int = 0 }\n"
                    "    on go { set n = 5  set ids[3] = 2 }\n}\n")
    run = serve_agents(program, {}, {"A": None}, [{"type": "go", "data": {}}])
    assert run.servers["A"].state == {"ids": [1], "n": 0}
    [error] = run.named("agent.error")
    assert "index out of range" in str(error)


def test_a_map_key_that_is_not_a_str_fails_the_handler_not_the_agent() -> None:
    """A key from an `any` payload that is a list used to raise TypeError (unhashable) out of the turn:
    the agent crashed and its supervisor restarted it with a fresh state."""
    program = build("signal poke: {key: any}\nagent A {\n    state { m: map[int] = {}  n: int = 0 }\n"
                    "    on poke as p { set n = n + 1  set m[p.data.key] = n }\n}\n")
    signals = [{"type": "poke", "data": {"key": key}} for key in ("a", [1, 2], {"k": 1}, 5, "b")]
    run = serve_agents(program, {}, {"A": None}, signals)
    assert run.servers["A"].state == {"m": {"a": 1, "b": 2}, "n": 2}
    assert run.servers["A"].stats.crashes == 0
    errors = [e["error"]["message"] for e in run.named("agent.error")]
    assert errors == ["set m[[1, 2]]: a map key must be a str, not list",
                      "set m[{'k': 1}]: a map key must be a str, not dict",
                      "set m[5]: a map key must be a str, not int"]
