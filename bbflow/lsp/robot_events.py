"""Completion of ``on robot.event.NAME`` routes: the events of the robot the agent around the cursor is on."""

from __future__ import annotations

import re

from bbflow.compiler import Facts, ast

__all__ = ["robot_event_signals"]

_AGENT = re.compile(r"^\s*agent\s+\w+\s+on\s+([A-Za-z_][\w.]*)", re.MULTILINE)


def robot_event_signals(facts: Facts | None, module: str | None, text_before: str) -> list[str]:
    """``robot.event.NAME`` for every event of the robot interface the enclosing agent is ``on``
    (a name the module ``module`` declares first, then one imported)."""
    agents = list(_AGENT.finditer(text_before))
    if not agents or facts is None:
        return []
    interface = agents[-1].group(1)
    short = interface.rsplit(".", 1)[-1]
    robots = {q: d for q, d in facts.decls.items() if isinstance(d, ast.RobotDecl)}
    own = robots.get(f"{module}.{interface}") or robots.get(interface)
    found = own or next((d for q, d in robots.items() if q.endswith("." + short)), None)
    return [f"robot.event.{e.name.name}" for e in found.events] if found is not None else []
