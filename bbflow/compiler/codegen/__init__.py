"""Code generation: one Python module per checked ``.flow`` module, for the runtime to load."""

from bbflow.compiler.codegen.generate import GeneratedModule, flow_path, generate_module, module_path

__all__ = ["GeneratedModule", "flow_path", "generate_module", "module_path"]
