"""Completion of ``on robot.event.NAME`` routes: the events of the robot the agent around the cursor is on."""

from __future__ import annotations

import re

from bbflow.compiler import ast
from bbflow.lsp.program import Program

__all__ = ["robot_event_signals"]

_AGENT = re.compile(r"^\s*agent\s+\w+\s+on\s+([A-Za-z_][\w.]*)", re.MULTILINE)


def robot_event_signals(program: Program | None, text_before: str) -> list[str]:
    """``robot.event.NAME`` for every event of the robot interface the enclosing agent is ``on``."""
    agents = list(_AGENT.finditer(text_before))
    facts = program.result.facts if program is not None else None
    if not agents or facts is None:
        return []
    interface = agents[-1].group(1)
    short = interface.rsplit(".", 1)[-1]
    for qualname, decl in facts.decls.items():
        if isinstance(decl, ast.RobotDecl) and (qualname == interface or qualname.endswith("." + short)):
            return [f"robot.event.{e.name.name}" for e in decl.events]
    return []
