"""Generate a realistic ``.flow`` project of about N lines, for the compiler benchmark.

    python benchmarks/gen_project.py OUT_DIR --lines 10000

The project is what a growing robot cell looks like: ``common/types.flow``
holds the shared types and the shared ``Arm`` interface; every ``cells/cell_NNNN.flow``
module declares its own station robot (states, limits, commands with default
undos, events), its signals, four reactors (a pick-and-place with retries,
waits, guards and explicit undos; a station cycle; a ``map`` over poses with a
``switch``; a composition of the previous cell's pick-and-place, from the second cell on) and an agent
that routes its signals, runs reactors and reports. Imports are local (the
shared module and the previous cell), as in a real project, so the work per
module does not depend on the size of the project: a linear compiler checks
10x the lines in 10x the time.

Every generated project checks clean (no errors, no warnings); the smoke test
keeps it so.
"""

from __future__ import annotations

import argparse
import random
from pathlib import Path

COMMON = """\
# Shared vocabulary of the cell: poses, grips and the arm every station uses.
type Pose = {x: float, y: float, z: float}
type Part = {id: str, weight: float, at: Pose}
enum Grip { open, closed }
enum Outcome { placed, rejected, skipped }

robot Arm {
    states idle, busy
    limit motion 1

    command move_to(target: Pose, speed: float = 0.5) -> Pose
        category motion timeout 10s
    command close_gripper(force: float = 20.0) -> Grip
        undo open_gripper()
    command open_gripper() -> Grip
    command home() -> Pose category motion
    command read_force() -> float readonly
    event force: {newtons: float}
}
"""

TOML = """\
[project]
name = "generated"
source = "flows"

[robot.arm]
interface = "common.types.Arm"
driver = "sim"
"""


def cell_module(i: int, rng: random.Random) -> str:
    """The text of ``cells/cell_{i:04d}.flow`` (about 150 lines)."""
    c = f"c{i}"
    prev = f"cells.cell_{i - 1:04d}" if i else None
    approach_retry = rng.choice(("retry 2 backoff 200ms", "retry 3 backoff 100ms max 1s", "retry 1"))
    speed = rng.choice(("0.25", "0.5", "0.8"))
    force = rng.choice(("10.0", "15.0", "22.5"))
    lift = rng.choice(("0.05", "0.1", "0.15"))
    duration = rng.choice(("2s", "5s", "750ms"))
    extra_moves = rng.randint(2, 5)
    moves = []
    last = "placed"
    for k in range(extra_moves):
        name = f"via{k}"
        moves.append(
            f"    step {name:<8} = move_to(target: {{x: place.x + {k}.0 * 0.01, y: place.y, z: place.z + {lift}}}, "
            f"speed: {speed})\n"
            f"                     after {last} undo move_to(target: {last})"
        )
        last = name
    moves_text = "\n".join(moves)
    compose = ""
    compose_route = ""
    if prev:
        compose = """
# Hand the part on: this cell's pick-and-place, then the previous cell's.
reactor Relay(part: Part, handover: Pose, place: Pose) -> Pose on Arm {
    step here  = PickAndPlace(part: part, place: handover) undo move_to(target: part.at)
    step there = prev.PickAndPlace(part: {id: part.id, weight: part.weight, at: here}, place: place)
    return there
}
"""
        compose_route = f"""
    on {c}.relay.requested as req when not busy {{
        set busy = true
        run Relay(part: req.data.part, handover: req.data.handover, place: req.data.place)
            then {{ set busy = false  set done = done + 1  emit {c}.pick.completed {{at: result, outcome: placed}} }}
            else {{ set busy = false  emit {c}.pick.failed {{reason: error.message}} }}
    }}"""
    relay_signal = (f"signal {c}.relay.requested: {{part: Part, handover: Pose, place: Pose}}\n" if prev else "")
    imports = "from common.types import Pose, Part, Grip, Outcome, Arm\n" + (f"import {prev} as prev\n" if prev else "")
    return f"""\
# Cell {i}: a station with a conveyor and a clamp, served by the shared arm.
{imports}
type Slot{i} = {{row: int, column: int, pose: Pose}}
enum Mode{i} {{ manual, automatic, maintenance }}

signal {c}.pick.requested: {{part: Part, place: Pose}}
{relay_signal}signal {c}.pick.completed: {{at: Pose, outcome: Outcome}}
signal {c}.pick.failed: {{reason: str}}
signal {c}.sort.requested: {{parts: list[Part], mode: Mode{i}}}
signal {c}.station.cycle
signal {c}.alarm: {{station: str}}

robot Station{i} {{
    states idle, loading, clamped
    limit conveyor 1
    limit clamp 1

    command advance(distance: float = 0.1) -> float category conveyor timeout 3s
        undo retreat(distance: args.distance)
    command retreat(distance: float = 0.1) -> float category conveyor
    command clamp(force: float = 40.0) -> bool category clamp undo unclamp()
    command unclamp() -> bool category clamp
    command scan() -> str readonly timeout 1s
    command weight() -> float readonly
    event part_arrived: {{id: str}}
    event jammed
}}

# Pick a part and place it; every motion is undone if a later step fails.
reactor PickAndPlace(part: Part, place: Pose) -> Pose on Arm {{
    concurrency 2
    timeout 60s

    step ready    = wait_state(idle) timeout {duration}
    step approach = move_to(target: part.at, speed: {speed}) after ready {approach_retry} undo home()
    step grip     = close_gripper(force: {force}) after approach
    step gripped  = wait_event(force) where gripped.newtons > part.weight * 9.81 timeout 2s after grip
    step lift     = move_to(target: {{x: part.at.x, y: part.at.y, z: part.at.z + {lift}}}) after gripped
                        undo move_to(target: part.at)
    step placed   = move_to(target: place) after lift undo move_to(target: lift)
{moves_text}
    step release  = open_gripper() after {last} irreversible "the part is placed"
    return placed
}}

# One station cycle: bring the next part in, clamp it, check it, let it go.
reactor Cycle{i}(distance: float) -> str on Station{i} {{
    step loaded  = wait_state(idle, loading) timeout 5s
    step moved   = advance(distance: distance) after loaded retry 2 backoff 50ms
    step arrived = wait_event(part_arrived) timeout 3s after moved
    step held    = clamp(force: 35.0) after arrived
    step code    = scan() after held fallback "unknown"
    step mass    = weight() after held when distance > 0.05
    let label    = code + ":" + str(mass ?? 0.0)
    step freed   = unclamp() after code, mass irreversible "the clamp opens at the end"
    return label
}}

# Sort parts one by one; heavy parts are rejected, light ones placed.
reactor Sort{i}(parts: list[Part], bin: Pose, mode: Mode{i}) -> list[Outcome] on Arm {{
    let count = len(parts)
    map sorted over parts as part {{
        switch kind on part.weight > 2.5 {{
            case true {{ return Outcome.rejected }}
            case false {{
                step moved = PickAndPlace(part: part, place: bin) undo move_to(target: part.at)
                return Outcome.placed
            }}
        }}
        return kind
    }}
    step back = home() after sorted irreversible "homing ends the sort"
    return sorted
}}
{compose}
# Takes requests for this cell one at a time and reports how each went.
agent Cell{i} on Arm {{
    state {{
        busy: bool = false
        done: int = 0
        failed: int = 0
        mode: Mode{i} = automatic
    }}

    on {c}.pick.requested as req when not busy and mode == automatic {{
        set busy = true
        run PickAndPlace(part: req.data.part, place: req.data.place)
            then {{ set busy = false  set done = done + 1  emit {c}.pick.completed {{at: result, outcome: placed}} }}
            else {{ set busy = false  set failed = failed + 1  emit {c}.pick.failed {{reason: error.message}} }}
    }}
    on {c}.pick.requested priority -1 {{ emit {c}.pick.failed {{reason: "busy"}} }}{compose_route}
    on {c}.sort.requested as req when not busy {{
        set busy = true
        set mode = req.data.mode
        run Sort{i}(parts: req.data.parts, bin: {{x: 0.0, y: 0.0, z: 0.0}}, mode: req.data.mode)
            then {{ set busy = false  emit {c}.station.cycle }}
            else {{ set busy = false  emit {c}.alarm {{station: "sort"}} }}
    }}
    on {c}.pick.completed as done_sig {{
        if done > 10 {{ schedule {c}.station.cycle in 1s }} else {{ emit {c}.station.cycle }}
    }}
    on {c}.pick.failed as f when failed > 3 {{ emit {c}.alarm {{station: f.data.reason}} }}
    on {c}.pick.failed {{ }}
    on {c}.station.cycle {{ }}
    on {c}.alarm {{ set mode = maintenance }}
    on robot.safety.changed as s when s.data.to == fault {{ emit {c}.alarm {{station: "arm"}} }}
    on robot.** {{ }}
}}
"""


def generate(out: Path, lines: int, seed: int = 1) -> dict[str, int]:
    """Write a project of at least ``lines`` lines under ``out``; returns {"files": F, "lines": L}."""
    rng = random.Random(seed)
    flows = out / "flows"
    (flows / "common").mkdir(parents=True, exist_ok=True)
    (flows / "cells").mkdir(parents=True, exist_ok=True)
    (out / "bbflow.toml").write_text(TOML, encoding="utf-8")
    (flows / "common" / "types.flow").write_text(COMMON, encoding="utf-8")
    total, files = COMMON.count("\n"), 1
    i = 0
    while total < lines:
        text = cell_module(i, rng)
        (flows / "cells" / f"cell_{i:04d}.flow").write_text(text, encoding="utf-8")
        total += text.count("\n")
        files += 1
        i += 1
    return {"files": files, "lines": total}


# --- the route-checking workloads (BBF5xx): routes x signals, modules x routes ----------------

ROUTED_ROBOT = """\
robot Station {
    states idle, busy
    command home() -> float
    event jam
}
"""


def _routed(prefix: str, signals: int, routes: int) -> str:
    """``signals`` signals under ``prefix`` and one agent with ``routes`` routes on them: literal routes,
    wildcards (some binding the signal, some guarded) and emits, as route checking meets them."""
    lines = [f"signal {prefix}.s{k}.done: {{n: int}}" for k in range(signals)]
    lines.append(f"agent Router_{prefix} on Station {{\n    state {{ seen: int = 0 }}")
    for k in range(routes):
        target = k % signals
        shape = k % 4
        guard = f" when seen != {k}"  # (a wildcard without one would shadow the routes after it: BBF502)
        if shape == 0:
            lines.append(f"    on {prefix}.s{target}.done as e{guard if k >= signals else ''} {{ set seen = e.data.n }}")
        elif shape == 1:
            lines.append(f"    on {prefix}.s{target}.*{guard} {{ emit {prefix}.s{(target + 1) % signals}.done {{n: {k}}} }}")
        elif shape == 2:
            lines.append(f"    on {prefix}.*.done as e{guard} priority -{k % 7 + 1} {{ set seen = e.data.n + {k} }}")
        else:
            lines.append(f"    on {prefix}.**{guard} priority -{k % 5 + 9} {{ set seen = {k} }}")
    lines.append("    on robot.event.jam { set seen = 0 }\n}")
    return "\n".join(lines) + "\n"


def routes_by_signals(routes: int, signals: int) -> dict[str, str]:
    """One module: ``signals`` signals and one agent of ``routes`` routes over them (file -> text)."""
    return {"routed.flow": ROUTED_ROBOT + _routed("r", signals, routes)}


def modules_by_routes(modules: int, routes: int) -> dict[str, str]:
    """``modules`` modules, each with its own signals (as many as routes) and an agent of ``routes`` routes."""
    files = {"station.flow": ROUTED_ROBOT}
    for m in range(modules):
        files[f"m{m:04d}.flow"] = "from station import Station\n" + _routed(f"m{m}", routes, routes)
    return files


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--lines", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    made = generate(args.out, args.lines, args.seed)
    print(f"{args.out}: {made['files']} files, {made['lines']:,} lines")


if __name__ == "__main__":
    main()
