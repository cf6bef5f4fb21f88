"""The bbflow runtime: executes generated modules against robot drivers.

It never imports the compiler, lark or networkx: a robot needs only this
package and the generated modules. The names below are its API for embedding:
running reactors (``run_reactor``), robots and drivers, agents and the bus, events.
They come from modules that import nothing of bbflow outside the runtime (the
project file imports the runtime; ``bbflow.runtime.drivers``, which reads it, is
not re-exported here), each imported when first used.
"""

from typing import TYPE_CHECKING

from bbflow.lazy_exports import lazy_exports

if TYPE_CHECKING:
    from bbflow.runtime import model
    from bbflow.runtime.agent import AgentServer
    from bbflow.runtime.bus import Bus
    from bbflow.runtime.clock import run_virtual
    from bbflow.runtime.crew import Crew, wait_through
    from bbflow.runtime.door import MAX_DEPTH, MAX_LINE_BYTES, Door, LineTooLong, Refusal, loads_strict
    from bbflow.runtime.driver import Driver, DriverError
    from bbflow.runtime.events import RUN_EVENTS, JsonLinesWriter, Recorder, fanout
    from bbflow.runtime.executor import conform_inputs, run_reactor
    from bbflow.runtime.loader import load_program
    from bbflow.runtime.ports import ActionResolver, Observer, RobotPort, RuntimeFailure
    from bbflow.runtime.proxy import RobotProxy
    from bbflow.runtime.run_state import RunResult, UndoFailure
    from bbflow.runtime.sim import SimDriver
    from bbflow.runtime.supervisor import Supervisor

# Imported on first use (the same as the imports above, which are for type checkers): the
# compiler reads ``model.ABI`` without loading the executor, the agents and asyncio.
__getattr__ = lazy_exports(__name__, {
    "": ("model",),
    "agent": ("AgentServer",),
    "bus": ("Bus",),
    "clock": ("run_virtual",),
    "crew": ("Crew", "wait_through"),
    "door": ("MAX_DEPTH", "MAX_LINE_BYTES", "Door", "LineTooLong", "Refusal", "loads_strict"),
    "driver": ("Driver", "DriverError"),
    "events": ("RUN_EVENTS", "JsonLinesWriter", "Recorder", "fanout"),
    "executor": ("conform_inputs", "run_reactor"),
    "loader": ("load_program",),
    "ports": ("ActionResolver", "Observer", "RobotPort", "RuntimeFailure"),
    "proxy": ("RobotProxy",),
    "run_state": ("RunResult", "UndoFailure"),
    "sim": ("SimDriver",),
    "supervisor": ("Supervisor",),
})

__all__ = [
    "MAX_DEPTH", "MAX_LINE_BYTES", "RUN_EVENTS",
    "ActionResolver", "AgentServer", "Bus", "Crew", "Door", "Driver", "DriverError", "JsonLinesWriter",
    "LineTooLong", "Observer", "Recorder", "Refusal", "RobotPort", "RobotProxy", "RunResult", "RuntimeFailure",
    "SimDriver", "Supervisor", "UndoFailure",
    "conform_inputs", "fanout", "load_program", "loads_strict", "model",
    "run_reactor", "run_virtual", "wait_through",
]
