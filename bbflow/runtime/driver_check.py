"""Does a driver class implement its robot interface? (``bbflow check --drivers``, BBF601)

Checked without constructing the driver: the constructor (or factory function)
takes ``(handle, options)``; every command has an ``async def`` method of its name
that accepts the declared parameters by keyword and needs no others (a
generic driver with ``run_command`` accepts every command); lifecycle hooks,
when present, are ``async def``.
"""

from __future__ import annotations

import inspect
from typing import Any

from bbflow.runtime import model
from bbflow.runtime.driver import GENERIC_METHOD, HOOKS

_BY_KEYWORD = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)


def check_driver(cls: Any, robot: model.Robot) -> list[str]:
    """The problems that keep ``cls`` from driving ``robot``, one sentence each (empty: fine)."""
    name = getattr(cls, "__name__", repr(cls))
    if not callable(cls):
        return [f"{name} is not a class"]
    problems = []
    try:
        inspect.signature(cls).bind(object(), {})
    except TypeError:
        problems.append(f"{name} cannot be created as {name}(handle, options)")
    except ValueError:  # no signature to inspect (a builtin): give it the benefit of the doubt
        pass
    if not isinstance(cls, type):  # a factory function: what it makes is known when it runs (or by its annotation)
        made = _made(cls)
        if made is None:
            return problems
        cls = made
    if callable(getattr(cls, GENERIC_METHOD, None)):
        problems += _check_generic(cls, name)
    else:
        for command in robot.commands.values():
            problem = _check_command(cls, command)
            if problem:
                problems.append(problem)
    for hook in HOOKS:
        fn = getattr(cls, hook, None)
        if hook not in robot.commands and fn is not None and not inspect.iscoroutinefunction(fn):
            problems.append(f"{name}.{hook}: a lifecycle hook must be declared with async def")
    return problems


def _made(factory: Any) -> type | None:
    """The class a factory function says it returns (``-> MyDriver``), if it says so resolvably."""
    try:
        made = inspect.signature(factory, eval_str=True).return_annotation
    except Exception:  # an annotation that cannot be evaluated, or no signature: unknown
        return None
    return made if isinstance(made, type) and made is not inspect.Signature.empty else None


def _check_generic(cls: Any, name: str) -> list[str]:
    fn = getattr(cls, GENERIC_METHOD)
    if not inspect.iscoroutinefunction(fn):
        return [f"{name}.{GENERIC_METHOD}: must be declared with async def"]
    sig = _method_signature(cls, GENERIC_METHOD)
    if sig is not None:
        try:
            sig.bind("command", {})
        except TypeError:
            return [f"{name}.{GENERIC_METHOD}: must take (name, kwargs)"]
    return []


def _check_command(cls: Any, command: model.Command) -> str | None:
    declared = [p.name for p in command.params]
    wanted = f"{command.name}({', '.join(declared)})"
    fn = getattr(cls, command.name, None)
    if fn is None or not callable(fn):
        return f"missing command {wanted}"
    if not inspect.iscoroutinefunction(fn):
        return f"{command.name}: must be declared with async def"
    sig = _method_signature(cls, command.name)
    if sig is None:
        return None
    params = sig.parameters
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    missing = [n for n in declared if not (n in params and params[n].kind in _BY_KEYWORD) and not takes_any]
    unexpected = [
        p.name
        for p in params.values()
        if p.name not in declared
        and p.default is inspect.Parameter.empty
        and p.kind not in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)
    ]
    if not missing and not unexpected:
        return None
    details = []
    if missing:
        details.append(f"does not accept {', '.join(missing)} by keyword")
    if unexpected:
        details.append(f"requires undeclared {', '.join(unexpected)}")
    return f"{command.name}: parameters differ from {wanted}: the driver's {command.name}{sig} {' and '.join(details)}"


def _method_signature(cls: Any, attr: str) -> inspect.Signature | None:
    """The signature as callers see it (without ``self`` for a plain method of a class)."""
    fn = getattr(cls, attr)
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        return None
    if isinstance(cls, type):
        raw = inspect.getattr_static(cls, attr)
        if not isinstance(raw, (staticmethod, classmethod)):
            params = list(sig.parameters.values())[1:]
            sig = sig.replace(parameters=params)
    return sig
