"""Code generation: one Python module per checked ``.flow`` module, for the runtime to load."""

from typing import TYPE_CHECKING

from bbflow.lazy_exports import lazy_exports

if TYPE_CHECKING:
    from bbflow.compiler.codegen.generate import generate_module
    from bbflow.compiler.codegen.generated import GeneratedModule, flow_path, module_path

__getattr__ = lazy_exports(__name__, {"generate": ("generate_module",),
                                      "generated": ("GeneratedModule", "flow_path", "module_path")})

__all__ = ["GeneratedModule", "flow_path", "generate_module", "module_path"]
