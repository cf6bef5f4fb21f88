"""The bbflow runtime: executes generated modules against robot drivers.

It never imports the compiler, lark or networkx: a robot needs only this
package and the generated modules.
"""

from bbflow.runtime.door import MAX_DEPTH, MAX_LINE_BYTES, Door, LineTooLong, Refusal, loads_strict

__all__ = ["MAX_DEPTH", "MAX_LINE_BYTES", "Door", "LineTooLong", "Refusal", "loads_strict"]
