"""The control plane of a running cell: HTTP ingress, live events, dashboard, metrics, schema.

Needs the optional extra ``pip install 'bbflow[serve]'`` (Starlette, uvicorn with httptools,
prometheus-client); ``bbflow.serve.config`` alone does not, so the rules about
where a cell may listen are checked before anything is imported or moves.
See docs/control-plane.md.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from bbflow.serve.config import ServeError, ServeSettings, serve_settings

if TYPE_CHECKING:
    from bbflow.runtime.model import Program
    from bbflow.serve.plane import ControlPlane

__all__ = ["EXTRA_HINT", "EXTRA_MODULES", "ServeError", "ServeSettings", "control_plane", "serve_settings"]

EXTRA_HINT = "bbflow run --serve needs the optional `serve` extra: pip install 'bbflow[serve]'"
EXTRA_MODULES = ("starlette", "uvicorn", "httptools", "prometheus_client", "anyio", "h11")


def control_plane(settings: ServeSettings, program: Program, *, title: str = "bbflow cell") -> ControlPlane:
    """The control plane for a run; ``ModuleNotFoundError`` when the extra is missing."""
    from bbflow.serve.plane import ControlPlane

    return ControlPlane(settings, program, title=title)
