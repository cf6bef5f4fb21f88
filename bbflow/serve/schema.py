"""``GET /api/schema``: the cell's signals as JSON Schema and as an AsyncAPI 3.0 document.

Generated from the runtime's model of the program (its payload type
descriptors), not from the compiler: what the door checks is what the schema
says. A payload's JSON Schema accepts exactly the data the door accepts, with
two documented widenings the door adds: an ``int`` is accepted where a
``float`` is expected (JSON has one number type), and a duration may be a
number of seconds or a string such as ``"250ms"``.
"""

from __future__ import annotations

import re
from typing import Any

from bbflow.runtime.signals import SignalCatalog, is_robot_bound
from bbflow.runtime.types import Enum, ListOf, MapOf, Optional, Prim, Record, RType

JSON_SCHEMA = "https://json-schema.org/draft/2020-12/schema"
DURATION_PATTERN = r"^\s*\d[\d_]*(\.\d[\d_]*)?(ms|s|m|h)\s*$"
_PRIMS: dict[str, dict[str, Any]] = {
    "bool": {"type": "boolean"},
    "int": {"type": "integer"},
    "float": {"type": "number"},
    "str": {"type": "string"},
    "duration": {"anyOf": [{"type": "number"}, {"type": "string", "pattern": DURATION_PATTERN}],
                 "description": 'seconds, or a string such as "250ms" or "2s"'},
    "any": {},
    "none": {"type": "null"},
}


def type_schema(rtype: RType) -> dict[str, Any]:
    """The JSON Schema of values of ``rtype``."""
    if isinstance(rtype, Prim):
        return dict(_PRIMS[rtype.name])
    if isinstance(rtype, Optional):
        return {"anyOf": [type_schema(rtype.inner), {"type": "null"}]}
    if isinstance(rtype, ListOf):
        return {"type": "array", "items": type_schema(rtype.item)}
    if isinstance(rtype, MapOf):
        return {"type": "object", "additionalProperties": type_schema(rtype.item)}
    if isinstance(rtype, Enum):
        return {"title": rtype.name, "enum": list(rtype.members)}
    if isinstance(rtype, Record):
        return {
            "type": "object",
            "properties": {name: type_schema(t) for name, t in rtype.fields},
            "required": [name for name, t in rtype.fields if not isinstance(t, Optional)],
        }
    raise TypeError(f"no JSON Schema for {rtype!r}")  # pragma: no cover - every descriptor is handled


def payload_schema(payload: RType | None) -> dict[str, Any]:
    """The schema of a signal's ``data``: its payload type, or nothing (``null`` or ``{}``)."""
    if payload is None:
        return {"anyOf": [{"type": "null"}, {"type": "object", "maxProperties": 0}]}
    return type_schema(payload)


def external_signals(catalog: SignalCatalog) -> list[str]:
    """The declared signal types that may come in from outside (not the robots' own)."""
    return [t for t in catalog.types() if not is_robot_bound(t)]


def signal_schemas(catalog: SignalCatalog) -> dict[str, dict[str, Any]]:
    """Signal type -> the JSON Schema of its data (every signal an outsider may send)."""
    return {t: {"$schema": JSON_SCHEMA, "title": t, **payload_schema(catalog.payload(t))}
            for t in external_signals(catalog)}


def cloudevent_schema(signal_type: str, data: dict[str, Any]) -> dict[str, Any]:
    """A structured-mode CloudEvent of ``signal_type`` carrying ``data``."""
    return {
        "type": "object",
        "required": ["type"],
        "properties": {
            "specversion": {"const": "1.0"},
            "type": {"const": signal_type},
            "id": {"type": "string"},
            "source": {"type": "string"},
            "time": {"type": "string", "format": "date-time"},
            "subject": {"type": "string"},
            "datacontenttype": {"const": "application/json"},
            "traceparent": {"type": "string"},
            "data": data,
        },
    }


def asyncapi(catalog: SignalCatalog, *, title: str, address: str) -> dict[str, Any]:
    """An AsyncAPI 3.0 document: a channel per signal type, its message a CloudEvent.

    The cell *receives* every signal (``POST /signals``) and *sends* them on
    ``GET /events`` (as ``signal.in``/``signal.emit`` events).
    """
    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    messages: dict[str, Any] = {}
    for signal_type in external_signals(catalog):
        key = channel_key(signal_type)
        messages[key] = {
            "name": signal_type,
            "title": signal_type,
            "contentType": "application/cloudevents+json",
            "payload": cloudevent_schema(signal_type, payload_schema(catalog.payload(signal_type))),
        }
        channels[key] = {
            "address": signal_type,
            "messages": {key: {"$ref": f"#/components/messages/{key}"}},
        }
        operations[f"receive_{key}"] = {
            "action": "receive",
            "channel": {"$ref": f"#/channels/{key}"},
            "summary": f"The cell takes {signal_type} at POST /signals",
        }
    return {
        "asyncapi": "3.0.0",
        "info": {"title": title, "version": "1.0.0",
                 "description": "The signals of a bbflow cell, as CloudEvents 1.0 over its control plane"},
        "defaultContentType": "application/cloudevents+json",
        "servers": {"control-plane": {"host": address, "protocol": "http", "pathname": "/signals"}},
        "channels": channels,
        "operations": operations,
        "components": {"messages": messages},
    }


def channel_key(signal_type: str) -> str:
    """AsyncAPI keys allow letters, digits, ``_`` and ``-`` only: ``pick.requested`` -> ``pick-requested``."""
    return re.sub(r"[^A-Za-z0-9_-]", "-", signal_type)
