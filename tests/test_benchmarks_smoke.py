"""The benchmark code runs, on tiny sizes, so that it does not rot. No timing is asserted."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parent.parent / "benchmarks"
sys.path.insert(0, str(BENCH))

import bench_peers  # noqa: E402
import gen_project  # noqa: E402
import run as bench_run  # noqa: E402
from common import Figure, Stats, compare, ratios, sync_timer, table  # noqa: E402

from bbflow.compiler.pipeline import compile_paths  # noqa: E402

TINY = {
    "compiler": {"sizes": (300,), "repeat": 1, "big": 10_000, "big_repeat": 1, "cache": (300,), "startup": 1,
                 "routes": (10, 20), "modules": (2, 4), "module_routes": 5, "terms": (100, 400)},
    "executor": {"steps": 12, "repeat": 2},
    "memory": {"runs": 6, "steps": 4, "repeat": 1},
    "router": {"routes": (10, 50), "seconds": 0.001, "repeat": 2},
    "agent": {"signals": 50, "burst": 10, "repeat": 1},
    "bus": {"signals": 50, "burst": 10, "repeat": 1},
    "tasks": {"runs": 5, "queued": (3, 9), "repeat": 2},
    "peers": {"steps": 5, "repeat": 2},
    "serve": {"seconds": 0.5, "rate": 40, "clients": 2},
    "journal": {"steps": 8, "repeat": 2, "size_runs": 20, "recover_runs": 3},
    "stdin": {"signals": (20, 200)},
    "hardening": {"names": (20, 40), "literals": (10_000,), "runs": (10, 20)},
    "lsp": {"lines": 300, "edits": 2, "steps": 40},
}


def test_generated_projects_check_clean_and_grow_with_the_size(tmp_path):
    small = gen_project.generate(tmp_path / "small", 300)
    large = gen_project.generate(tmp_path / "large", 1_200)
    assert small["lines"] >= 300 and large["lines"] >= 1_200 and large["files"] > small["files"]
    result = compile_paths([tmp_path / "large"])
    assert [(d.code, d.message) for d in result.diagnostics.items] == []
    assert result.files == large["files"]
    text = "\n".join(s.text for s in result.sources.values())
    for construct in ("robot ", "reactor ", "agent ", "undo ", "after ", "import cells.", "map ", "switch "):
        assert construct in text, construct


@pytest.mark.slow
def test_every_section_runs_and_the_results_serialise(tmp_path):
    results = bench_run.run(False, bench_run.SECTIONS, log=lambda line: None, conf=TINY)
    out = json.loads(json.dumps(results))
    assert set(out["seconds"]) == {"total", *bench_run.SECTIONS}
    assert out["machine"]["nproc"] >= 1 and out["machine"]["python"]
    sections = {f["section"] for f in out["figures"]}
    assert sections == set(bench_run.SECTIONS)
    for f in out["figures"]:
        assert f["value"] is not None or f["note"], f
        if f["value"]:
            assert f["value"]["min"] <= f["value"]["median"] <= f["value"]["max"], f
        for r in f["ratios"]:
            assert r["vs"] and r["min"] <= r["median"] <= r["max"], f
    names = [f["name"] for f in out["figures"]]
    assert any("rollback: bbflow run_reactor" in n for n in names)
    assert any("phase" in n and "checker passes" in n for n in names)
    assert any("warm cache" in n for n in names)
    assert any(n.startswith("target: bbflow check of a one-line file") for n in names)
    assert any(n.startswith("routes x signals: ") for n in names) and any(n.startswith("modules x routes: ") for n in names)
    assert "| executor |" in out["table"]
    assert "### Targets" in bench_run.render(out)


def test_targets_say_their_limit_and_whether_they_were_met():
    from common import target

    rows = [target("compiler", "a / b", Stats.of([1.1, 1.3, 1.15]), 1.2).as_dict(),
            target("compiler", "c / d", Stats.of([11.0]), 10).as_dict(),
            Figure("compiler", "not a target", "s", Stats.of([1.0])).as_dict()]
    text = bench_run.targets_table(rows)
    assert "| a / b | 1.15 [1.10 - 1.30]x | 1.2x | met |" in text
    assert "| c / d | 11.0 [11.0 - 11.0]x | 10x | NOT met |" in text
    assert "not a target" not in text


def test_the_results_block_of_a_document_is_replaced(tmp_path):
    doc = tmp_path / "B.md"
    doc.write_text(f"# B\n\nbefore\n{bench_run.BEGIN}\nold table\n{bench_run.END}\nafter\n")
    bench_run.update(doc, "| new | table |")
    assert doc.read_text() == f"# B\n\nbefore\n{bench_run.BEGIN}\n\n| new | table |\n\n{bench_run.END}\nafter\n"
    with pytest.raises(SystemExit):
        bench_run.update(tmp_path / "none.md" if (tmp_path / "none.md").write_text("no block") else doc, "x")


def test_missing_peers_say_not_installed_and_bbflow_still_runs(monkeypatch):
    for name in ("py_trees", "langgraph", "langgraph.graph"):
        monkeypatch.setitem(sys.modules, name, None)  # importing it raises ImportError
    figures = bench_peers.figures(4, 1)
    by_name = {f.name: f for f in figures}
    assert by_name["sequence of 4: bbflow reactor"].value is not None
    assert by_name["fan-out of 4: bbflow reactor"].value is not None
    for peer in ("sequence of 4: py_trees Sequence", "sequence of 4: LangGraph chain", "fan-out of 4: LangGraph fan-out"):
        assert by_name[peer].value is None and by_name[peer].note == bench_peers.NOT_INSTALLED
    assert "not installed" in table(figures)


def test_ratios_pair_the_measurements_of_the_same_round():
    times = {"a": [2.0, 4.0, 9.0], "b": [1.0, 4.0, 3.0]}
    assert ratios(times, "a", "b") == Stats(2.0, 1.0, 3.0, 3)
    calls = []
    out = compare({"x": lambda: calls.append("x") or 1.0, "y": lambda: calls.append("y") or 2.0}, repeat=2, warmup=1)
    assert calls == ["x", "y"] * 3 and out == {"x": [1.0, 1.0], "y": [2.0, 2.0]}


def test_stats_and_timers():
    stats = Stats.of([4.0, 1.0, 2.0])
    assert (stats.median, stats.min, stats.max, stats.n) == (2.0, 1.0, 4.0, 3)
    assert stats.inverse(8.0) == Stats(4.0, 2.0, 8.0, 3)
    seen = []
    assert sync_timer(lambda: seen.append("run"), before=lambda: seen.append("before"))() >= 0
    assert seen == ["before", "run"]
    with pytest.raises(ValueError):
        Stats.of([])
    row = Figure("s", "n", "u", note="not installed")
    assert "not installed" in table([row])


def test_the_stdin_soak_loses_nothing(tmp_path):
    import bench_stdin

    result = bench_stdin.soak(bench_stdin.project(tmp_path / "soak"), 300)
    assert (result["in"], result["handled"], result["dropped"], result["lost"]) == (300, 300, 0, 0)
    assert result["peak_mb"] > 0


def test_the_lsp_client_script_measures_edits_hovers_and_a_cancellation() -> None:
    pytest.importorskip("pygls", reason="bbflow lsp needs the optional `lsp` extra")
    import bench_lsp

    by_name = {f.name.split(": ", 1)[1] if "-line project" in f.name else f.name: f
               for f in bench_lsp.figures(300, 2, 40)}
    assert by_name["diagnostics after a one-line edit, module nothing imports"].value.n == 2  # type: ignore[union-attr]
    assert by_name["hover on an idle server"].value is not None
    cancelled = by_name["a request cancelled while it waits for a check"]
    assert "RequestCancelled (-32800)" in cancelled.note
    typing = by_name["completion while typing at the end of a 40-step reactor (19 keystrokes)"]
    assert typing.value.n == 19 and typing.ratios  # type: ignore[union-attr]
