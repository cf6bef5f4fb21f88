"""The runtime stands alone: a robot needs only ``bbflow.runtime`` and generated modules.

Every module of the runtime package is imported in a fresh interpreter, and
none of them may pull in the compiler or its dependencies.
"""

import json
import subprocess
import sys

FORBIDDEN = ("lark", "networkx", "bbflow.compiler", "click")

PROBE = """
import importlib, json, pkgutil, sys
import bbflow.runtime as runtime
names = sorted(m.name for m in pkgutil.walk_packages(runtime.__path__, "bbflow.runtime."))
for name in names:
    importlib.import_module(name)
print(json.dumps({"modules": names, "loaded": sorted(sys.modules)}))
"""


def test_runtime_imports_neither_compiler_nor_lark_nor_networkx():
    out = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, check=True)
    report = json.loads(out.stdout)
    assert "bbflow.runtime.executor" in report["modules"]  # the walk really found the runtime
    leaked = [m for m in report["loaded"] if any(m == f or m.startswith(f + ".") for f in FORBIDDEN)]
    assert leaked == []
