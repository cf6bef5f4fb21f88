"""Actions: Python callables bound by ``action name(...) = "module:function"``.

``resolve_action`` imports the target once and caches it (an ``ActionResolver``);
``invoke`` calls it with keyword arguments: coroutine functions are awaited on
the loop, plain functions run in a thread of their own so that a slow
perception or planning call never blocks the robot's event loop. A thread
cannot be interrupted: when the awaiting step is cancelled (or times out), the
function runs to its end in its thread and its result is dropped. The thread
is a daemon: shutting down never waits for it, so a plain function that blocks
(``time.sleep(3600)``) cannot keep ``bbflow run`` from exiting. A coroutine
runs in a task of its own: cancelled, it has ``ACTION_GRACE`` seconds to end,
and one that swallows its cancellation is then left running as a thread would
be, so that it cannot hold up a timeout, a rollback or the end of ``bbflow run``.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import functools
import importlib
import inspect
import threading
from collections.abc import Callable, Mapping
from typing import Any

from bbflow.runtime.clock import abandon
from bbflow.runtime.ports import Completed, RuntimeFailure

#: seconds a cancelled ``async def`` action has to end before it is left running on its own
ACTION_GRACE = 2.0


class _DaemonThreads(concurrent.futures.Executor):
    """Runs each call in a new daemon thread: neither the loop's shutdown nor the interpreter's exit
    waits for it (``asyncio.to_thread``'s pool threads are joined at exit)."""

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> concurrent.futures.Future[Any]:
        future: concurrent.futures.Future[Any] = concurrent.futures.Future()

        def work() -> None:
            if not future.set_running_or_notify_cancel():
                return
            try:
                result = fn(*args, **kwargs)
            except BaseException as exc:  # handed to the awaiting step
                future.set_exception(exc)
            else:
                future.set_result(result)

        threading.Thread(target=work, name="bbflow-action", daemon=True).start()
        return future


_DAEMONS = _DaemonThreads()


@functools.cache
def resolve_action(target: str) -> Callable[..., Any]:
    """The callable named by ``"package.module:function"`` (dotted attributes allowed after ``:``).

    Raises ``RuntimeFailure`` with code ``action`` when the target cannot be
    imported or is not callable; the message says which part is wrong.
    """
    module_name, sep, attr_path = target.partition(":")
    if not sep or not module_name or not attr_path:
        raise RuntimeFailure(f"action target {target!r} is not of the form 'module:function'", "action")
    try:
        obj: Any = importlib.import_module(module_name)
    except Exception as exc:  # an import may fail in any way: report it, never crash the run
        raise RuntimeFailure(f"action target {target!r}: cannot import {module_name!r}: {exc}", "action") from exc
    for part in attr_path.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError as exc:
            raise RuntimeFailure(f"action target {target!r}: {module_name} has no {attr_path!r}", "action") from exc
    if not callable(obj):
        raise RuntimeFailure(f"action target {target!r} is not callable", "action")
    return obj


@functools.lru_cache(maxsize=1024)
def _is_async(fn: Callable[..., Any]) -> bool:
    # an object whose __call__ is async (not a test of callability)
    return inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(getattr(fn, "__call__", None))  # noqa: B004


async def invoke(fn: Callable[..., Any], kwargs: Mapping[str, Any]) -> Any:
    """Call an action: await a coroutine function, run a plain one in a thread."""
    try:
        is_async = _is_async(fn)
    except TypeError:  # unhashable callable: decide without the cache
        is_async = inspect.iscoroutinefunction(fn)
    if is_async:
        return await _awaited(fn(**kwargs))
    call = functools.partial(contextvars.copy_context().run, functools.partial(fn, **kwargs))
    result = await asyncio.get_running_loop().run_in_executor(_DAEMONS, call)
    if inspect.isawaitable(result):  # a plain function that returned a coroutine (a wrapper)
        result = await _awaited(result)
    return result


async def _awaited(work: Any) -> Any:
    """``await work`` in a task of its own that, when the caller is cancelled, is cancelled in turn and has
    ``ACTION_GRACE`` seconds to end; the caller's cancellation goes on either way, carrying the value
    (``Completed``) if the action finished after all."""
    task = asyncio.ensure_future(_contained(work))
    try:
        return await asyncio.shield(task)
    except _Exited as exc:
        raise exc.args[0] from None  # here, where the step that called the action sees it
    except asyncio.CancelledError:
        task.cancel()
        try:
            await asyncio.wait({task}, timeout=ACTION_GRACE)
        finally:
            if not task.done():
                abandon(task)  # it will not stop: left running, its outcome dropped
        if task.done() and not task.cancelled() and task.exception() is None:  # (an error it ended with: dropped)
            raise asyncio.CancelledError(Completed(task.result())) from None
        raise


class _Exited(Exception):
    """Carries out of an action's task the ``SystemExit`` or ``KeyboardInterrupt`` it raised."""


async def _contained(work: Any) -> Any:
    try:
        return await work
    except (SystemExit, KeyboardInterrupt) as exc:  # raised out of a task, it would stop the event loop
        raise _Exited(exc) from None
