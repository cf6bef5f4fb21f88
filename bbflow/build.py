"""Build orchestration over the one pipeline: generate -> write -> load, and the driver check.

``build_program`` is ``bbflow build``: ``bbflow.compiler.pipeline`` checks
and generates (through the on-disk cache), and nothing is written when the
check reports errors; ``write_package`` then writes one Python module per
``.flow`` module (the standard library's included, under ``std/``) into
packages that mirror the module names, with a manifest for
``bbflow.runtime.loader``. ``compile_project`` is what ``bbflow run`` uses: the
same, into ``PROJECT/.bbflow/cache/build``, then loaded into a
``model.Program``. ``check_drivers`` is ``bbflow check --drivers``.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path

import attrs

from bbflow import __version__
from bbflow.compiler import ast
from bbflow.compiler.cache import Cache
from bbflow.compiler.codegen.generated import GeneratedModule, flow_path, module_path
from bbflow.compiler.diagnostics import codes
from bbflow.compiler.diagnostics.core import Diagnostics
from bbflow.compiler.pipeline import CompileResult, compile_paths
from bbflow.compiler.semantic.modules import STDLIB_FILE
from bbflow.compiler.source import Span
from bbflow.compiler.syntax.parser import parse_module
from bbflow.project import RobotConfig, importable
from bbflow.runtime import model
from bbflow.runtime.driver import DriverError
from bbflow.runtime.driver_check import check_driver
from bbflow.runtime.drivers import load_driver
from bbflow.runtime.loader import MANIFEST, load_program

BUILD_DIR = "build"  # under the cache folder, for `bbflow run`
DRIVER_HELP = ("a driver needs one async method per command, named after it, taking the declared "
               "parameters by keyword (see `bbflow explain BBF601`)")


@attrs.define
class BuildResult:
    """What a build produced: all diagnostics, the generated modules (none if there were errors)."""

    result: CompileResult

    @property
    def diagnostics(self) -> Diagnostics:
        return self.result.diagnostics

    @property
    def modules(self) -> list[GeneratedModule]:
        return self.result.generated

    @property
    def sources(self) -> dict[str, str]:
        """Display path -> text, for rendering diagnostics."""
        return {d: s.text for d, s in self.result.sources.items()}

    @property
    def files(self) -> int:
        return self.result.files

    @property
    def cache(self) -> Cache | None:
        return self.result.cache

    @property
    def ok(self) -> bool:
        return not self.diagnostics.has_errors()


def build_program(paths: Iterable[str | Path], *, use_cache: bool = True) -> BuildResult:
    """Check the program at ``paths`` and generate its modules (raises ``InputError`` for unusable paths)."""
    return BuildResult(compile_paths(paths, use_cache=use_cache, generate=True))


def compile_project(target: str | Path | Sequence[str | Path]) -> tuple[Diagnostics, model.Program | None]:
    """For ``bbflow run``: check and build (through the cache), then load the generated package.

    ``target``: a project folder (or its bbflow.toml), or the paths to
    compile. The package is written to the cache's ``build`` folder (a
    temporary folder when there is no project root to write under) and
    loaded by ``bbflow.runtime.loader``; the Program is None when there were
    errors. Raises ``InputError`` for unusable paths.
    """
    paths = [target] if isinstance(target, (str, Path)) else list(target)
    result = compile_paths(paths, use_cache=True, generate=True)
    if result.diagnostics.has_errors():
        return result.diagnostics, None
    cache = Cache.for_project(result.cache_root)
    out_dir = cache.root / BUILD_DIR
    try:
        if cache.refused is not None:  # another user could change the code between writing and loading it
            raise PermissionError(cache.refused)
        cache.folder(BUILD_DIR)
        _replace_tree(result.generated, out_dir)
    except OSError:
        out_dir = Path(tempfile.mkdtemp(prefix="bbflow-build-"))
        write_package(result.generated, out_dir)
    return result.diagnostics, load_program(out_dir)


# --- bbflow check --drivers ---------------------------------------------------------------


def check_drivers(result: CompileResult) -> None:
    """BBF601 for every configured driver that cannot drive its robot interface.

    ``result``: the pipeline's, with ``generate=True``. The interfaces are
    the runtime's own ``model.Robot`` values, loaded from the generated code
    (the same the robot would run), so nothing is described twice. Robots on
    the simulated driver are skipped: it implements any interface. Nothing is
    checked when the program has errors (there is no model to compare with).
    """
    robots = [(project, instance, config) for project in result.projects
              for instance, config in project.robots.items() if not config.is_sim]
    if not robots or result.diagnostics.has_errors() or not result.generated:
        return
    with tempfile.TemporaryDirectory(prefix="bbflow-drivers-") as scratch:
        write_package(result.generated, scratch)
        try:
            program = load_program(scratch)
        except Exception as e:
            result.diagnostics.error(codes.BBF900, f"internal compiler error loading the generated code: "
                                     f"{type(e).__name__}: {e}",
                                     Span.point(next(iter(result.sources), "<input>"), 1, 1),
                                     help="this is a bug in bbflow, not in your program; please report it")
            return
    for project, instance, config in robots:
        spec = program.robots.get(config.interface)
        if spec is None:
            continue  # an interface the program does not declare is a BBF701 of the project file
        with importable(project.root):  # as `bbflow run` imports it
            problems = _driver_problems(instance, config, spec)
        for problem, advice in problems:
            result.diagnostics.error(codes.BBF601, problem, _robot_span(result, spec),
                                     notes=(f"robot `{instance}` in {_shown(project.file)} uses this interface",),
                                     help=advice)


def _driver_problems(instance: str, config: RobotConfig, spec: model.Robot) -> list[tuple[str, str]]:
    """(message, help) for each problem of the driver that ``config`` names for ``instance``."""
    try:
        cls = load_driver(config.driver)
    except Exception as e:
        reason = str(e) if isinstance(e, DriverError) else f"driver {config.driver!r}: {type(e).__name__}: {e}"
        module = config.driver.partition(":")[0]
        return [(f"the driver of robot `{instance}` cannot be imported: {reason}",
                 f"put `{module}` in the project's folder (beside bbflow.toml) or install its package, "
                 "and check the class name after the colon")]
    return [(f"driver `{config.driver}` of robot `{instance}`: {problem}", DRIVER_HELP)
            for problem in check_driver(cls, spec)]


def _robot_span(result: CompileResult, spec: model.Robot) -> Span:
    """The name in the ``robot NAME`` declaration of ``spec`` (parsed again when replayed from the cache)."""
    module = spec.qualname.rsplit(".", 1)[0]
    unit = next((u for u in result.units if u.module == module), None)
    if unit is None or unit.display not in result.sources:
        return Span.point(STDLIB_FILE + flow_path(module), max(spec.line, 1), 1)
    parsed = next((m for m in result.modules if m.name == module), None)
    if parsed is None:
        parsed = parse_module(result.sources[unit.display], module, Diagnostics())
    for decl in parsed.decls:
        if isinstance(decl, ast.RobotDecl) and decl.name.name == spec.name:
            return decl.name.span
    return Span.point(unit.display, max(spec.line, 1), 1)


def _shown(path: Path) -> str:
    """A path as diagnostics show it: relative to the current folder when below it."""
    try:
        rel = os.path.relpath(path)
    except ValueError:  # another drive on Windows
        return str(path)
    return str(path) if rel.startswith("..") else rel


# --- writing ---------------------------------------------------------------------------------


def write_package(modules: Sequence[GeneratedModule], out_dir: Path | str) -> list[Path]:
    """Write the modules as a package tree under ``out_dir`` with ``__init__.py`` files and the manifest.

    Only what this build owns is replaced: the files it writes, and the
    modules an earlier build wrote there (its manifest names them) that this
    one does not, so a module whose ``.flow`` file is gone does not live on.
    The manifest is written last, so a loader never sees a manifest naming
    missing files.
    """
    out_dir = Path(out_dir)
    earlier = _built_before(out_dir)
    names = frozenset(m.module for m in modules)
    written: list[Path] = []
    manifest: dict[str, object] = {"compiler_version": __version__, "abi": model.ABI, "modules": {}}
    packages: set[Path] = {Path(".")}
    for m in sorted(modules, key=lambda m: m.module):
        rel = Path(module_path(m.module, names))
        _write(out_dir / rel, m.code)
        written.append(out_dir / rel)
        for parent in rel.parents:
            packages.add(parent)
        manifest["modules"][m.module] = {"path": rel.as_posix(), "source": m.flow_file,  # type: ignore[index]
                                         "source_sha256": m.source_sha256}
    for pkg in sorted(packages):
        init = out_dir / pkg / "__init__.py"
        if not init.exists():
            _write(init, '"""Generated by bbflow: a package of generated modules."""\n')
            written.append(init)
    _write(out_dir / MANIFEST, json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    written.append(out_dir / MANIFEST)
    for stale in earlier - set(written):
        stale.unlink(missing_ok=True)
    return written


def _built_before(out_dir: Path) -> set[Path]:
    """The module files the manifest already in ``out_dir`` names (only ``.py`` files inside it)."""
    try:
        modules = json.loads((out_dir / MANIFEST).read_text(encoding="utf-8")).get("modules", {})
        paths = {entry["path"] for entry in modules.values()}
    except (OSError, ValueError, AttributeError, KeyError, TypeError):
        return set()
    inside = out_dir.resolve()
    found = set()
    for rel in paths:
        path = out_dir / str(rel)
        if str(rel).endswith(".py") and inside in path.resolve().parents:
            found.add(path)
    return found


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8", newline="\n")


def _replace_tree(modules: Sequence[GeneratedModule], out_dir: Path) -> None:
    """Write a fresh package at ``out_dir`` and swap it in, so no stale module survives a rebuild."""
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    fresh = Path(tempfile.mkdtemp(prefix=".build-", dir=out_dir.parent))
    write_package(modules, fresh)
    old = out_dir.with_name(f".old-{os.getpid()}-{out_dir.name}")
    if out_dir.exists():
        os.replace(out_dir, old)
    os.replace(fresh, out_dir)
    shutil.rmtree(old, ignore_errors=True)
