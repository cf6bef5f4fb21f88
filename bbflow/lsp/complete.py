"""Completion: keywords the grammar takes here, names in scope, commands, fields and signals.

Which keywords fit is asked of the parser itself: the text from the start of
the declaration around the cursor up to the word being typed is fed to lark's
LALR parser, whose ``accepts()`` is the exact set of tokens that may come next
(so after ``step x = move_to(...)`` it offers ``after``, ``undo``, ``retry``...,
and in a reactor header ``on`` and ``->``). When that text does not parse (an
earlier mistake in the same declaration), every keyword is offered.
The parser goes on from its state at the start of the cursor's line, kept
from the request before when the text above is unchanged (``_Parses``): a
keystroke costs its line, not its declaration. The first request in a
declaration does not parse all of it either: whole statements the last
compiled program saw, unchanged since, are left out (``_left_out``), but
for the last one before the cursor.

Names come from the last compiled program (which may be a little older than
the text being typed): the enclosing reactor's inputs and named statements or
the agent's state and route binding (and ``result`` in a run's ``then``,
``error`` in its ``else``; ``args`` and ``result`` in a command's default
undo), the robot's commands in a reactor `on` it, the module's declarations
and imports, the prelude and the builtins; where the grammar takes one kind
of name only, those (``_only``: a robot after a header's ``on``, steps after
``after``...), and where a type goes, the types. In a call's parentheses its
parameters not named yet come first.
After ``NAME.`` the fields of NAME's record type (or an enum's members, or an
imported module's declarations) are offered, and after any other expression's
dot (``xs[0].``) the fields of its type, if the last check saw it there; after
``emit``, ``schedule`` and a route's ``on``, the declared signals; in ``emit S
{``, the fields of S's payload not given yet; in a wait's parentheses, the
robot's states or events (or the signals); in an import, the program's modules
or the declarations of the module named. Inside a comment, a string or a
number (``1.``), and in a new name (``step pla``, where Enter would take an
old name offered), nothing is offered.
"""

from __future__ import annotations

import bisect
import functools
import re
from collections import deque
from collections.abc import Collection
from copy import copy
from pathlib import Path
from typing import Any

import attrs
from lark.exceptions import LarkError
from lark.lexer import PatternStr

from bbflow.compiler import BUILTIN_COMMANDS, BUILTIN_FUNCTIONS, WAITS, Facts, ast, flow_parser
from bbflow.compiler import types as T
from bbflow.lsp.analysis import declaration_signature
from bbflow.lsp.locate import PRELUDE, Pos, Range, contains, global_decl, path_at
from bbflow.lsp.program import Program
from bbflow.lsp.robot_events import robot_event_signals

TOP_LEVEL = re.compile(r"^(from|import|type|enum|signal|robot|action|reactor|agent)\b", re.MULTILINE)
#: ``a.b.`` being typed: a dotted name (not the end of a number, ``1e5.``) and a dot, then a word, at the cursor
MEMBER = re.compile(r"(?<![\w.])([A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*)\.(\w*)$")
#: a number being typed at the cursor (``1.``, ``2.5``, ``1e-3``, ``3s``): where no name or keyword goes
NUMBER = re.compile(r"(?<![\w.])[0-9](?:[\w.]|(?<=[eE])[+-])*$")
#: a dot after an expression that is no dotted name (``xs[0].``, ``f(x).``, ``"a".``), then a word, at the cursor
AFTER_EXPRESSION = re.compile(r"[^\w\s.]\.(\w*)$")
#: the module of ``from``/``import`` being typed (group 1: its dotted part typed, ``cell.``)
IMPORT_MODULE = re.compile(r"^(?:from|import)\s+((?:\w+\.)*)\w*$")
#: the names of ``from M import a, b`` being typed (group 1: M)
IMPORT_NAMES = re.compile(r"^from\s+([\w.]+)\s+import\s+(?:\w+(?:\s+as\s+\w+)?\s*,\s*)*\w*$")
#: the name a declaration or statement brings in, being typed (``step pla``): a new name, none of those in scope
DECLARING = re.compile(r"(?<![\w.])(?:step|let|as|reactor|agent|type|enum|robot|action|command|event|states|map|"
                       r"switch|limit|signal)\s+\w*$")
#: the arguments of a wait being typed: its name, and the (dotted) part of the word typed
WAIT_ARGS = re.compile(r"(?<![\w.])(wait_state|wait_event|wait_signal)\(\s*(?:[\w.]+\s*,\s*)*((?:\w+\.)*)\w*$")
#: a field name of the payload of ``emit S {...}`` or ``schedule S {...}`` being typed (group 1: S; 2: fields given)
PAYLOAD_FIELD = re.compile(r"(?<![\w.])(?:emit|schedule)\s+([\w.]+)\s*\{((?:\s*\w+\s*:[^,{}]*,)*)\s*\w*$")
#: an argument of a call being typed, where its name may go (group 1: the callee; 2: the arguments before)
CALL_ARGUMENT = re.compile(r"(?<![\w.])([A-Za-z_]\w*(?:\.\w+)*)\(((?:[^()]*,)?)\s*\w*$")
SIGNAL_CONTEXT = re.compile(r"(?:\bemit|\bschedule|^\s*on)\s+((?:[\w*]+\.)*)[\w*]*$")
WORD = re.compile(r"\w*$")
#: a line up to the cursor that is code there: outside a comment and a string (strings end on their line)
IN_CODE = re.compile(r'(?:[^"#]|"(?:[^"\\\n]|\\.)*")*\Z')


#: where only a name goes, the word before that says of what: a robot after a header's ``on``, a step (or a let,
#: switch or map) after ``after``, a reactor after ``cancel`` or ``run``, what a step or an ``undo`` calls, an
#: agent's state field after ``set``
HEADER_ON = re.compile(r"(?<![\w.])on\s+\w*$")
STEP_CALL = re.compile(r"(?<![\w.])(?:step\s+\w+\s*=|undo)\s*\w*$")
RUN = re.compile(r"(?<![\w.])run\s+\w*$")
AFTER = re.compile(r"(?<![\w.])after\s+(?:\w+\s*,\s*)*\w*$")
SET = re.compile(r"(?<![\w.])set\s+\w*$")
CANCEL = re.compile(r"(?<![\w.])cancel\s+\w*$")
ORDERABLE = ("step", "let", "switch", "map")
#: what the parser takes where a type is written (``p: ``, ``-> ``, ``type X = ``): a name, ``{``, ``map``
TYPE_POSITION = {"NAME", "_LBRACE", "_MAP"}


@attrs.frozen(slots=True)
class Completion:
    label: str
    kind: str  # "keyword" "variable" "function" "field" "type" "enum member" "module" "signal" ...
    detail: str = ""


@functools.cache
def keyword_terminals() -> dict[str, str]:
    """Terminal name -> keyword, for every keyword of the grammar."""
    return {t.name: t.pattern.value for t in flow_parser().terminals
            if isinstance(t.pattern, PatternStr) and t.pattern.value.isalpha()}


def complete(program: Program | None, path: Path, text: str, pos: Pos,
             analysed: Pos | None = None) -> list[Completion]:
    """What may be typed at ``pos`` of ``text`` (the file's current buffer); ``analysed``: the cursor in the
    text ``program`` analysed (``Shift.near_old``), where its scope is looked up (default: ``pos``)."""
    scope = analysed if analysed is not None else pos
    lines = text.split("\n")
    line = lines[pos.line] if 0 <= pos.line < len(lines) else ""
    before = line[: pos.character]
    if not IN_CODE.match(before) or NUMBER.search(before) or DECLARING.search(before):
        return []  # in a comment, a string, a number or a new name: nothing to offer
    if IMPORT_MODULE.match(before) or IMPORT_NAMES.match(before):
        return _imports(program, path, before)
    signal = SIGNAL_CONTEXT.search(before)
    if signal is not None:
        offset = sum(len(ln) + 1 for ln in lines[: pos.line]) + pos.character
        facts = program.facts(path) if program is not None else None
        module = program.module(path) if program is not None else None
        events = robot_event_signals(facts, module.name if module is not None else None, text[:offset])
        return _signals(facts, signal.group(1), events)
    payload = PAYLOAD_FIELD.search(before)
    if payload is not None:
        given = {f.split(":")[0].strip() for f in payload.group(2).split(",")}
        return _payload_fields(program.facts(path) if program is not None else None, payload.group(1), given)
    wait = WAIT_ARGS.search(before)
    if wait is not None:
        return _wait_args(program, path, scope, wait.group(1), wait.group(2))
    member = MEMBER.search(before)
    if member is not None:
        return _members(program, path, scope, member.group(1).split("."))
    after = AFTER_EXPRESSION.search(before)
    if after is not None:
        return _expression_fields(program, path, scope, before[: after.start(1) - 1])
    word = WORD.search(before)  # matches the empty word too
    offset = sum(len(ln) + 1 for ln in lines[: pos.line]) + pos.character - (len(word.group()) if word else 0)
    accepts = accepted(text[:offset], program, path, scope)
    keywords = keyword_terminals()
    words = [Completion(kw, "keyword") for name, kw in sorted(keywords.items(), key=lambda kv: kv[1])
             if accepts is None or name in accepts]
    if accepts is not None and "NAME" not in accepts:
        return words
    if accepts == {"NAME"}:
        only = _only(program, path, scope, before)
        if only is not None:
            return only
    if accepts == TYPE_POSITION:  # a type: no value's name goes there
        return [*(Completion(n, "type", "builtin type") for n in (*T.PRIMITIVES, "list")),
                *(c for c in _names(program, path, scope) if c.kind in ("type", "enum", "module")), *words]
    call = CALL_ARGUMENT.search(before)
    named = _parameters(program, path, scope, call.group(1), set(re.findall(r"(\w+)\s*:", call.group(2)))) \
        if call is not None else []
    return named + _names(program, path, scope) + words


def accepted(prefix: str, program: Program | None = None, path: Path | None = None,
             scope: Pos | None = None) -> set[str] | None:
    """The terminals the parser takes after ``prefix``, read from the start of its last declaration (with
    the whole statements ``program`` saw in ``path`` left out, when given: ``scope``, the cursor there)."""
    starts = [m.start() for m in TOP_LEVEL.finditer(prefix)]
    start = starts[-1] if starts else 0
    parts, at = [], start
    if program is not None and path is not None and scope is not None:
        for a, b in _left_out(program, path, prefix, start, scope):
            parts.append(prefix[at:a])
            at = b
    parts.append(prefix[at:])
    return _PARSES.accepts("".join(parts))


def _statement_lists(node: Any) -> list[tuple[Any, ...]]:
    """The lists of statements (routes, cases, robot items) right in ``node`` that each start with a keyword."""
    if isinstance(node, ast.Block):
        return [node.stmts]
    if isinstance(node, ast.SwitchStmt):
        return [node.cases]
    if isinstance(node, ast.AgentDecl):
        return [node.routes]
    if isinstance(node, ast.RouteDecl):
        return [node.body]
    if isinstance(node, (ast.RunStmt, ast.IfStmt)):
        return [node.then or (), node.else_ or ()]
    if isinstance(node, ast.RobotDecl):
        items = (*node.states, *node.limits, *node.commands, *node.events)
        return [tuple(sorted(items, key=lambda i: (i.span.line, i.span.column)))]
    return []


def _left_out(program: Program, path: Path, prefix: str, start: int, scope: Pos) -> list[tuple[int, int]]:
    """Regions of ``prefix`` (offsets, in order) that may be left out of the parse of its declaration at
    ``start``: in each list of statements around the cursor, those before the last whole one.

    A list's items each start with a keyword, so the parser's state in the last
    one is the same after any number of whole ones before it (LALR states are
    their kernels: ``step`` shifted after ``{`` or after ten steps is the same
    state, and so is every reduction back to the list). The items are those of
    the last compiled program; only those whose text, from the start of the
    declaration, is still the same in ``prefix`` are left out."""
    module, old = program.module(path), program.texts.get(path)
    if module is None or old is None:
        return []
    nodes = path_at(module, scope)
    if len(nodes) < 2:
        return []
    lines = _line_starts(old)
    decl = lines[nodes[1].span.line - 1] + nodes[1].span.column - 1
    same = _common_prefix(prefix[start:], old[decl:])
    out = []
    for node in nodes[1:]:
        for items in _statement_lists(node):
            whole = [lines[i.span.line - 1] + i.span.column - 1 - decl for i in items
                     if lines[i.span.end_line - 1] + i.span.end_column - 1 - decl <= same]
            if len(whole) > 1:
                out.append((start + whole[0], start + whole[-1]))
    return out


@functools.lru_cache(maxsize=4)
def _line_starts(text: str) -> list[int]:
    """The offset of the start of each line of ``text``."""
    return [0, *(m.end() for m in re.finditer("\n", text))]


@attrs.define(slots=True)
class _Parsed:
    """A declaration's text as last parsed, with the parser's states at the starts of some of its lines."""

    text: str
    marks: list[tuple[int, tuple[Any, ...]]]  # (offset of a line start, the parser's state stack there), in order


class _Parses:
    """What the parser takes after a declaration's text, going on from a state it had before.

    Completion is asked at every keystroke, and a 3,000-step reactor parsed from
    its start each time took a second per keystroke. The parser's state at a line
    start depends only on the text before it, so states are kept at the start of
    the cursor's line and every ``SPACING`` characters or so; a request parses
    from the last kept state whose text is unchanged. Only recognised: no tree
    is built (no reduction callbacks)."""

    SPACING = 4096  # characters between two kept states: what a request after a jump parses at most, or so
    KEEP = 4  # declarations whose states are kept (the last completed in)

    def __init__(self) -> None:
        self._kept: deque[_Parsed] = deque(maxlen=self.KEEP)

    def accepts(self, text: str) -> set[str] | None:
        line = text.rfind("\n") + 1
        done, stack, marks, source = 0, None, [], None
        for kept in self._kept:
            same = _common_prefix(text, kept.text)
            usable = kept.marks[: bisect.bisect_right(kept.marks, same, key=lambda m: m[0])]
            if usable and usable[-1][0] > done:
                done, stack, marks, source = usable[-1][0], usable[-1][1], usable, kept
        if source is not None:  # its states are this text's too: the new one holds them
            self._kept.remove(source)
        parsed = _Parsed(text, list(marks))
        try:
            ip = flow_parser().parse_interactive(text[done:])
            state = ip.parser_state
            state.parse_conf = copy(state.parse_conf)
            state.parse_conf.callbacks = {}  # a recognizer: what the reductions would build is not needed
            if stack is not None:
                state.state_stack, state.value_stack = list(stack), [None] * len(stack)
            last = done
            for token in ip.lexer_thread.lex(state):
                at = done + token.start_pos - (token.column - 1)  # the start of the token's line
                if at > last and (at - last >= self.SPACING or at >= line):
                    parsed.marks.append((at, tuple(state.state_stack)))
                    last = at
                ip.feed_token(token)
            if line > last:
                parsed.marks.append((line, tuple(state.state_stack)))
            return set(ip.accepts())
        except LarkError:
            return None
        finally:
            self._kept.append(parsed)


def _common_prefix(a: str, b: str) -> int:
    """The length of the longest common prefix of ``a`` and ``b``."""
    lo, hi = 0, min(len(a), len(b))
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if a.startswith(b[lo:mid], lo):
            lo = mid
        else:
            hi = mid - 1
    return lo


_PARSES = _Parses()


def _signals(facts: Facts | None, typed: str, events: list[str]) -> list[Completion]:
    """Declared signals, and the agent's robot's ``robot.event.NAME``, that continue ``typed`` (``pick.``),
    as the rest of their dotted name."""
    if facts is None:
        return []
    out = [Completion(e[len(typed):], "signal", "an event of the agent's robot") for e in events
           if e.startswith(typed) and e not in facts.signals]
    for name, decl in sorted(facts.signals.items()):
        if name.startswith(typed):
            payload = facts.decl_types.get(decl)
            out.append(Completion(name[len(typed):], "signal", str(payload) if payload not in (None, T.NONE) else ""))
    return out


def _context(program: Program | None, path: Path, pos: Pos) -> tuple[Facts, ast.Module, list[Any], str] | None:
    """The facts, module, nodes down to ``pos`` and text of ``path`` as ``program`` analysed it."""
    module = program.module(path) if program is not None else None
    facts = program.facts(path) if program is not None else None
    if program is None or module is None or facts is None:
        return None
    return facts, module, path_at(module, pos), program.texts.get(path, "")


def _members(program: Program | None, path: Path, pos: Pos, chain: list[str]) -> list[Completion]:
    ctx = _context(program, path, pos)
    if ctx is None:
        return []
    facts, module, node_path, text = ctx
    local = _locals(facts, node_path, pos, text).get(chain[0])
    if local is not None:
        t = local[1]
    else:
        decl = global_decl(facts, module, tuple(chain))
        if isinstance(decl, ast.EnumDecl):
            return [Completion(m.name, "enum member", decl.name.name) for m in decl.members]
        imported = _module_alias(module, chain)
        if imported is not None:
            return [Completion(n, _kind(d), declaration_signature(facts, d))
                    for n, d in _module_decls(facts, imported).items()]
        return []
    for name in chain[1:]:
        t = T.strip_optional(t) if t is not None else None
        t = t.field(name) if isinstance(t, T.RecordT) else None
    return _fields(t)


def _fields(t: T.Type | None, given: Collection[str] = ()) -> list[Completion]:
    """The fields of record type ``t`` (through an optional) but those ``given``; none of another type."""
    t = T.strip_optional(t) if t is not None else None
    return [Completion(n, "field", str(ft)) for n, ft in t.fields if n not in given] if isinstance(t, T.RecordT) else []


def _expression_fields(program: Program | None, path: Path, pos: Pos, expression: str) -> list[Completion]:
    """The fields of the record the expression that ``expression`` (a line up to a dot) ends with evaluates
    to, as the last check typed it there (the same text on the line ``pos`` is on); none when unknown."""
    ctx = _context(program, path, pos)
    if ctx is None or not expression:
        return []
    facts, module, _, text = ctx
    lines = text.split("\n")
    if not 0 <= pos.line < len(lines) or not lines[pos.line].startswith(expression):
        return []
    end = Pos(pos.line, len(expression))
    for node in reversed(path_at(module, Pos(pos.line, len(expression) - 1))):
        t = facts.types.get(node) if Range.of(node.span).end == end else None
        if t is not None:
            return _fields(t)
    return []


def _imports(program: Program | None, path: Path, before: str) -> list[Completion]:
    """In an import being typed: the program's modules after ``from`` or ``import`` (the rest of their dotted
    name), the declarations of module M after ``from M import``."""
    facts = program.facts(path) if program is not None else None
    module = program.module(path) if program is not None else None
    if program is None or facts is None or module is None:
        return []
    names = IMPORT_NAMES.match(before)
    if names is not None:
        return [Completion(n, _kind(d), declaration_signature(facts, d))
                for n, d in _module_decls(facts, names.group(1)).items()]
    typed = IMPORT_MODULE.match(before).group(1)  # type: ignore[union-attr]  # matched, as the caller checked
    modules = {u.module for u in program.result.units} | set(facts.modules)
    return [Completion(m[len(typed):], "module") for m in sorted(modules - {module.name}) if m.startswith(typed)]


def _module_alias(module: ast.Module, chain: list[str]) -> str | None:
    for imp in module.imports:
        if isinstance(imp, ast.ModuleImport) and (imp.alias or imp.module[-1]).name == ".".join(chain):
            return ".".join(i.name for i in imp.module)
    return None


def _module_decls(facts: Facts, dotted: str) -> dict[str, Any]:
    module = facts.modules.get(dotted)
    if module is None:
        return {}
    return {_decl_name(d): d for d in module.decls if _decl_name(d)}


def _decl_name(decl: Any) -> str:
    if isinstance(decl, ast.SignalDecl):
        return ""
    return decl.name.name


_KINDS = {ast.TypeAlias: "type", ast.EnumDecl: "enum", ast.RobotDecl: "robot", ast.ActionDecl: "function",
          ast.ReactorDecl: "reactor", ast.AgentDecl: "agent", ast.CommandDecl: "function"}


def _kind(decl: Any) -> str:
    return _KINDS.get(type(decl), "variable")


def _locals(facts: Facts, node_path: list[Any], pos: Pos, text: str) -> dict[str, tuple[str, Any]]:
    """Value names visible at the cursor: name -> (what it is, its type). ``text``: what ``facts`` analysed."""
    out: dict[str, tuple[str, Any]] = {}
    for node in node_path:
        if isinstance(node, ast.RunStmt):
            branch = _run_branch(node, pos, text)
            if branch == "then":
                out["result"] = ("result", facts.types.get(node.call))
            elif branch == "else":
                out["error"] = ("error", T.ERROR_RECORD)
        elif isinstance(node, ast.CommandDecl) and node.undo is not None and contains(node.undo.span, pos):
            out["args"] = ("args", T.RecordT(tuple((p.name.name, facts.decl_types.get(p) or T.ERROR)
                                                    for p in node.params)))
            out["result"] = ("result", facts.decl_types.get(node))
        if isinstance(node, ast.ReactorDecl):
            for p in node.params:
                out[p.name.name] = ("param", facts.decl_types.get(p))
            for stmt in _named_statements(node.body, pos):
                out[stmt.name.name] = (type(stmt).__name__.removesuffix("Stmt").lower(),
                                       facts.decl_types.get(stmt))
        elif isinstance(node, ast.MapStmt):
            over = facts.types.get(node.over)
            out[node.item.name] = ("item", over.item if isinstance(over, (T.ListT, T.MapT)) else None)
        elif isinstance(node, ast.AgentDecl):
            for f in node.state:
                out[f.name.name] = ("state", facts.decl_types.get(f))
        elif isinstance(node, ast.RouteDecl) and node.bind is not None:
            out[node.bind.name] = ("binding", facts.decl_types.get(node))
    return out


#: what may hold the word ``else`` without being the keyword, and the keyword
_ELSE = re.compile(r'#[^\n]*|"(?:[^"\\\n]|\\.)*"?|\belse\b')


def _run_branch(run: ast.RunStmt, pos: Pos, text: str) -> str | None:
    """Which block of ``run`` the cursor is in: ``"then"`` (where `result` is bound), ``"else"`` (`error`),
    or None (in its call). Its blocks are statements without a node of their own: between them, the
    ``else`` keyword tells (a new line typed in an empty ``then { }`` is in no statement)."""
    end = Range.of(run.call.span).end
    if pos < end:
        return None
    if any(contains(stmt.span, pos) for stmt in run.then or ()):
        return "then"
    if any(contains(stmt.span, pos) for stmt in run.else_ or ()):
        return "else"
    before = [Range.of(stmt.span).end for stmt in run.then or () if Range.of(stmt.span).end <= pos]
    lines = text.split("\n")
    between = text[_offset(lines, max([end, *before])):_offset(lines, pos)]
    if run.else_ is not None and any(m.group() == "else" for m in _ELSE.finditer(between)):
        return "else"
    return "then" if run.then is not None else None


def _offset(lines: list[str], pos: Pos) -> int:
    return sum(len(line) + 1 for line in lines[: pos.line]) + pos.character


def _named_statements(block: ast.Block, pos: Pos) -> list[Any]:
    """The steps, lets, switches and maps of a reactor body, and of the case or map body the cursor is in."""
    out = []
    for stmt in block.stmts:
        if isinstance(stmt, (ast.StepStmt, ast.LetStmt, ast.SwitchStmt, ast.MapStmt)):
            out.append(stmt)
        inner = [c.body for c in stmt.cases] + ([stmt.default] if stmt.default else []) \
            if isinstance(stmt, ast.SwitchStmt) else [stmt.body] if isinstance(stmt, ast.MapStmt) else []
        for body in inner:
            if contains(body.span, pos):
                out += _named_statements(body, pos)
    return out


def _only(program: Program | None, path: Path, pos: Pos, before: str) -> list[Completion] | None:
    """Where the grammar takes only a name, the names of the kind the word before asks for (None: any)."""
    for pattern, whats in ((AFTER, ORDERABLE), (SET, ("state",))):
        if pattern.search(before):
            ctx = _context(program, path, pos)
            if ctx is None:
                return []
            facts, _, node_path, text = ctx
            return [_local(n, what, t) for n, (what, t) in _locals(facts, node_path, pos, text).items()
                    if what in whats]
    for pattern, kinds in ((HEADER_ON, ("robot", "module")), (CANCEL, ("reactor", "module")),
                           (RUN, ("reactor", "module")), (STEP_CALL, ("function", "reactor", "module"))):
        if pattern.search(before):  # (a step calls no builtin function: `abs`, `len` are for expressions)
            ctx = _context(program, path, pos) if pattern is STEP_CALL else None
            robot = next((n for n in ctx[2] if isinstance(n, ast.RobotDecl)), None) if ctx is not None else None
            if ctx is not None and robot is not None:  # a command's default undo: another command of its robot
                return [Completion(c.name.name, "function", declaration_signature(ctx[0], c)) for c in robot.commands]
            return [c for c in _names(program, path, pos) if c.kind in kinds and c.detail != "builtin"]
    return None


def _payload_fields(facts: Facts | None, signal: str, given: set[str]) -> list[Completion]:
    """The fields of the payload of ``signal`` (a record) but those ``given``."""
    decl = facts.signals.get(signal) if facts is not None else None
    return _fields(facts.decl_types.get(decl) if facts is not None and decl is not None else None, given)


def _parameters(program: Program | None, path: Path, pos: Pos, callee: str, given: set[str]) -> list[Completion]:
    """The parameters of ``callee`` (a command of the robot, an action, a reactor) not ``given`` by name yet."""
    ctx = _context(program, path, pos)
    if ctx is None:
        return []
    facts, module, node_path, _ = ctx
    owner = next((n for n in reversed(node_path) if isinstance(n, (ast.ReactorDecl, ast.RobotDecl))), None)
    robot = owner if isinstance(owner, ast.RobotDecl) else \
        facts.decls.get(facts.robots_of.get(owner, "")) if owner is not None else None
    commands = robot.commands if isinstance(robot, ast.RobotDecl) else ()
    decl = next((c for c in commands if c.name.name == callee), None) or global_decl(facts, module,
                                                                                    tuple(callee.split(".")))
    return [Completion(p.name.name, "field", f"(parameter) {facts.decl_types.get(p) or '?'}")
            for p in getattr(decl, "params", ()) if p.name.name not in given]


def _wait_args(program: Program | None, path: Path, pos: Pos, wait: str, typed: str) -> list[Completion]:
    """What a wait takes: the states of the reactor's robot (`idle` and the safety states too) in
    ``wait_state(``, its events in ``wait_event(``, the declared signals in ``wait_signal(``."""
    ctx = _context(program, path, pos)
    if ctx is None:
        return []
    facts, _, node_path, _ = ctx
    if wait == "wait_signal":
        return _signals(facts, typed, [])
    owner = next((n for n in reversed(node_path) if isinstance(n, ast.ReactorDecl)), None)
    robot = facts.decls.get(facts.robots_of.get(owner, "")) if owner is not None else None
    if not isinstance(robot, ast.RobotDecl) or typed:
        return []
    if wait == "wait_event":
        return [Completion(e.name.name, "signal", f"an event of {robot.name.name}") for e in robot.events]
    safety = _module_decls(facts, PRELUDE).get("Safety")
    states = ["idle", *(n.name for s in robot.states for n in s.names)]
    return [*(Completion(n, "enum member", robot.name.name) for n in dict.fromkeys(states)),
            *(Completion(m.name, "enum member", "Safety") for m in getattr(safety, "members", ()))]


def _local(name: str, what: str, t: Any) -> Completion:
    return Completion(name, "variable", f"({what}) {t if t is not None else '?'}")


def _names(program: Program | None, path: Path, pos: Pos) -> list[Completion]:
    ctx = _context(program, path, pos)
    if ctx is None:
        return [Completion(f, "function", "builtin") for f in BUILTIN_FUNCTIONS]
    facts, module, node_path, text = ctx
    out: dict[str, Completion] = {}
    for name, (what, t) in _locals(facts, node_path, pos, text).items():
        out[name] = _local(name, what, t)
    owner = next((n for n in reversed(node_path) if isinstance(n, (ast.ReactorDecl, ast.AgentDecl))), None)
    robot = facts.decls.get(facts.robots_of.get(owner, "")) if owner is not None else None
    if isinstance(owner, ast.ReactorDecl) and isinstance(robot, ast.RobotDecl):
        for cmd in robot.commands:
            out.setdefault(cmd.name.name, Completion(cmd.name.name, "function", declaration_signature(facts, cmd)))
        for name in (*BUILTIN_COMMANDS, *WAITS):
            out.setdefault(name, Completion(name, "function", "builtin command" if name in BUILTIN_COMMANDS
                                            else "wait"))
    for name, decl in _module_decls(facts, module.name).items():
        out.setdefault(name, Completion(name, _kind(decl), declaration_signature(facts, decl)))
    for imp in module.imports:
        if isinstance(imp, ast.ModuleImport):
            bound = (imp.alias or imp.module[-1]).name
            out.setdefault(bound, Completion(bound, "module", ".".join(i.name for i in imp.module)))
            continue
        for item in imp.names:
            bound = (item.alias or item.name).name
            decl = global_decl(facts, module, (bound,))
            detail = declaration_signature(facts, decl) if decl is not None else ""
            out.setdefault(bound, Completion(bound, _kind(decl), detail))
    if module.name != PRELUDE:
        for name, decl in _module_decls(facts, PRELUDE).items():
            out.setdefault(name, Completion(name, _kind(decl), declaration_signature(facts, decl)))
    for name in BUILTIN_FUNCTIONS:
        out.setdefault(name, Completion(name, "function", "builtin"))
    return list(out.values())
