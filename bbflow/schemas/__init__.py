"""JSON Schemas (draft 2020-12) of bbflow's machine-readable outputs, shipped as package data.

``events``: one line of the event log (``bbflow run --events``);
``diagnostics``: the output of ``bbflow check --format json``. Each output
carries ``"version"``; the schema of that version is what ``bbflow schema
NAME`` prints.
"""

from __future__ import annotations

import json
from importlib import resources
from typing import Any

__all__ = ["SCHEMAS", "schema", "schema_text"]

SCHEMAS = ("events", "diagnostics")


def schema_text(name: str) -> str:
    """The schema ``name`` as JSON text; KeyError for an unknown name."""
    if name not in SCHEMAS:
        raise KeyError(name)
    return resources.files(__name__).joinpath(f"{name}.schema.json").read_text(encoding="utf-8")


def schema(name: str) -> dict[str, Any]:
    """The schema ``name`` as a dict."""
    loaded: dict[str, Any] = json.loads(schema_text(name))
    return loaded
