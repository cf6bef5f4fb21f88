"""From lark's parse tree to the AST of ``bbflow.compiler.ast``.

Besides the mapping, this is where the checks that a grammar expresses badly
are made, each reported once: keywords used as declaration names, modifiers
given twice, numbers of the wrong kind (``timeout 5`` instead of ``5s``), and
malformed literals (BBF002).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from lark import Token, Transformer, Tree, v_args

from bbflow.compiler import ast
from bbflow.compiler.diagnostics import codes
from bbflow.compiler.diagnostics.core import Diagnostics, Label
from bbflow.compiler.diagnostics.suggest import a_or_an, closest
from bbflow.compiler.source import Span
from bbflow.compiler.syntax.literals import DecodedNumber, decode_number, decode_string

KEYWORDS = frozenset("""
    from import as type enum signal robot states limit category command event readonly allowed timeout undo
    irreversible action pure reactor on step let switch case default map over concurrency fail return after
    when retry backoff max fallback where agent state priority set emit run then else schedule in if and or
    not true false none
""".split())

_STEP_MODIFIER_WORDS: dict[type, str] = {
    ast.AfterMod: "after", ast.WhenMod: "when", ast.TimeoutMod: "timeout", ast.RetryMod: "retry",
    ast.UndoMod: "undo", ast.IrreversibleMod: "irreversible", ast.FallbackMod: "fallback", ast.WhereMod: "where",
}


class _CommandModifier:
    """A command modifier before it is folded into ``CommandDecl``."""

    __slots__ = ("word", "value", "span")

    def __init__(self, word: str, value: object, span: Span) -> None:
        self.word = word
        self.value = value
        self.span = span


@v_args(meta=True)
class AstBuilder(Transformer):
    """Transforms the tree of one module; diagnostics go to ``diags``."""

    def __init__(self, file: str, module_name: str, text: str, diags: Diagnostics) -> None:
        super().__init__()
        self.file = file
        self.module_name = module_name
        self.text = text
        self.diags = diags

    # ---- helpers ----------------------------------------------------------------

    def _span(self, meta: Any) -> Span:
        if getattr(meta, "empty", True):
            return Span.point(self.file, 1, 1)
        return Span(self.file, meta.line, meta.column, meta.end_line, meta.end_column)

    def _tspan(self, tok: Token) -> Span:
        # lark types a token's position as optional; every token of a parse has one
        return Span(self.file, tok.line, tok.column, tok.end_line, tok.end_column)  # type: ignore[arg-type]

    def _ident(self, tok: Token) -> ast.Ident:
        return ast.Ident(str(tok), self._tspan(tok))

    def _decl_name(self, tok: Token, what: str) -> ast.Ident:
        """A declaration's name; a keyword there is reported (the name is still declared, to avoid cascades)."""
        ident = self._ident(tok)
        if ident.name in KEYWORDS:
            self.diags.error(
                codes.BBF001, f"`{ident.name}` is a keyword and cannot name {a_or_an(what)}", ident.span,
                help=f"choose another name, like `{ident.name}_`")
        return ident

    def _number(self, tok: Token, want: str, after: str) -> ast.IntLit | ast.FloatLit | ast.DurationLit:
        """Decode a number literal; ``want`` is "int", "duration" or "any" (an expression)."""
        span = self._tspan(tok)
        dec = decode_number(str(tok))
        if dec.error is not None:
            self.diags.error(codes.BBF002, dec.error, span, help=dec.help)
            return self._placeholder(dec.kind if want == "any" else want, tok, span)
        if want == "int" and dec.kind != "int":
            self.diags.error(codes.BBF001, f"expected a whole number after {after}, found `{tok}`", span)
            return ast.IntLit(int(dec.value) if dec.kind == "float" else 0, span)
        if want == "duration" and dec.kind != "duration":
            self.diags.error(codes.BBF001, f"expected a duration after {after}, found `{tok}`", span,
                             help=f"give the unit: `{tok}s`, `{tok}ms`, `{tok}m` or `{tok}h`")
            return ast.DurationLit(float(dec.value), f"{tok}s", span)
        return self._literal(dec, tok, span)

    @staticmethod
    def _literal(dec: DecodedNumber, tok: Token, span: Span) -> ast.IntLit | ast.FloatLit | ast.DurationLit:
        if dec.kind == "int":
            return ast.IntLit(int(dec.value), span)
        if dec.kind == "float":
            return ast.FloatLit(float(dec.value), span)
        return ast.DurationLit(float(dec.value), str(tok), span)

    @staticmethod
    def _placeholder(kind: str, tok: Token, span: Span) -> ast.IntLit | ast.FloatLit | ast.DurationLit:
        if kind == "duration":
            return ast.DurationLit(0.0, str(tok), span)
        if kind == "float":
            return ast.FloatLit(0.0, span)
        return ast.IntLit(0, span)

    def _string(self, tok: Token) -> ast.StrLit:
        span = self._tspan(tok)
        dec = decode_string(str(tok))
        if dec.error is not None:
            column = span.column + dec.offset
            bad = Span(self.file, span.line, column, span.line, column + dec.length)
            labels = (Label(bad, "here"),) if dec.offset else ()
            self.diags.error(codes.BBF002, dec.error, span, labels=labels, help=dec.help)
        return ast.StrLit(dec.value, span)

    def _check_once(self, items: Sequence[Any], word_of: Callable[[Any], str], owner: str) -> None:
        """Report a modifier given twice (``timeout` is given twice for step `x``)."""
        seen: dict[str, Span] = {}
        for item in items:
            word = word_of(item)
            if word in seen:
                self.diags.error(codes.BBF001, f"`{word}` is given twice for {owner}", item.span,
                                 labels=(Label(seen[word], "first given here"),),
                                 help=f"remove one of the two `{word}` modifiers")
            else:
                seen[word] = item.span

    # ---- module and imports -------------------------------------------------------

    def start(self, meta: Any, children: list[Any]) -> ast.Module:
        imports = tuple(c for c in children if isinstance(c, (ast.FromImport, ast.ModuleImport)))
        decls = tuple(c for c in children if not isinstance(c, (ast.FromImport, ast.ModuleImport)))
        lines = self.text.split("\n")
        end = Span(self.file, 1, 1, len(lines), len(lines[-1]) + 1)
        return ast.Module(self.module_name, self.file, imports, decls, (), end)

    def dotted_name(self, meta: Any, children: list[Token]) -> tuple[ast.Ident, ...]:
        return tuple(self._ident(t) for t in children)

    def from_import(self, meta: Any, children: list[Any]) -> ast.FromImport:
        return ast.FromImport(children[0], tuple(children[1:]), self._span(meta))

    def import_name(self, meta: Any, children: list[Any]) -> ast.ImportName:
        name, alias = children
        return ast.ImportName(self._ident(name), self._ident(alias) if alias is not None else None, self._span(meta))

    def module_import(self, meta: Any, children: list[Any]) -> ast.ModuleImport:
        module, alias = children
        return ast.ModuleImport(module, self._ident(alias) if alias is not None else None, self._span(meta))

    # ---- types ------------------------------------------------------------------------

    def named_type(self, meta: Any, children: list[Token]) -> ast.NamedType:
        return ast.NamedType(tuple(self._ident(t) for t in children), self._span(meta))

    def generic_type(self, meta: Any, children: list[Any]) -> ast.TypeExpr:
        name, item = children
        span = self._span(meta)
        if str(name) != "list":
            near = closest(str(name), ["list", "map"])
            self.diags.error(codes.BBF001, f"`{name}` takes no type argument: only `list[T]` and `map[T]` do",
                             self._tspan(name), help=f"did you mean `{near[0]}`?" if near else None)
        return ast.ListType(item, span)

    def map_type(self, meta: Any, children: list[Any]) -> ast.MapType:
        return ast.MapType(children[0], self._span(meta))

    def optional_type(self, meta: Any, children: list[Any]) -> ast.OptionalType:
        return ast.OptionalType(children[0], self._span(meta))

    def record_type(self, meta: Any, children: list[Any]) -> ast.RecordType:
        return ast.RecordType(tuple(children), self._span(meta))

    def field_type(self, meta: Any, children: list[Any]) -> ast.FieldType:
        return ast.FieldType(self._ident(children[0]), children[1], self._span(meta))

    # ---- declarations -------------------------------------------------------------

    def type_alias(self, meta: Any, children: list[Any]) -> ast.TypeAlias:
        return ast.TypeAlias(self._decl_name(children[0], "type"), children[1], self._span(meta))

    def enum_decl(self, meta: Any, children: list[Token]) -> ast.EnumDecl:
        name = self._decl_name(children[0], "type")
        return ast.EnumDecl(name, tuple(self._ident(t) for t in children[1:]), self._span(meta))

    def signal_decl(self, meta: Any, children: list[Any]) -> ast.SignalDecl:
        sig, payload = children
        return ast.SignalDecl(ast.SignalType(str(sig), self._tspan(sig)), payload, self._span(meta))

    def robot_decl(self, meta: Any, children: list[Any]) -> ast.RobotDecl:
        name, *items = children
        return ast.RobotDecl(
            self._decl_name(name, "robot"),
            tuple(i for i in items if isinstance(i, ast.StatesDecl)),
            tuple(i for i in items if isinstance(i, ast.LimitDecl)),
            tuple(i for i in items if isinstance(i, ast.CommandDecl)),
            tuple(i for i in items if isinstance(i, ast.EventDecl)),
            self._span(meta))

    def states_decl(self, meta: Any, children: list[Token]) -> ast.StatesDecl:
        return ast.StatesDecl(tuple(self._ident(t) for t in children), self._span(meta))

    def limit_decl(self, meta: Any, children: list[Token]) -> ast.LimitDecl:
        category, number = children
        limit = self._number(number, "int", f"`limit {category}`")
        return ast.LimitDecl(self._ident(category), int(limit.value) if not isinstance(limit, ast.DurationLit) else 0,
                             self._span(meta))

    def category_mod(self, meta: Any, children: list[Token]) -> _CommandModifier:
        return _CommandModifier("category", self._ident(children[0]), self._span(meta))

    def readonly_mod(self, meta: Any, children: list[Any]) -> _CommandModifier:
        return _CommandModifier("readonly", True, self._span(meta))

    def allowed_mod(self, meta: Any, children: list[Token]) -> _CommandModifier:
        return _CommandModifier("allowed", tuple(self._ident(t) for t in children), self._span(meta))

    def command_decl(self, meta: Any, children: list[Any]) -> ast.CommandDecl:
        name, params, result, *mods = children
        ident = self._decl_name(name, "command")
        words: list[_CommandModifier] = []
        for m in mods:
            if isinstance(m, ast.TimeoutMod):
                words.append(_CommandModifier("timeout", m.duration, m.span))
            elif isinstance(m, ast.UndoMod):
                words.append(_CommandModifier("undo", m.call, m.span))
            else:
                words.append(m)
        self._check_once(words, lambda m: m.word, f"command `{ident.name}`")
        given: dict[str, Any] = {m.word: m.value for m in reversed(words)}  # the first one wins
        return ast.CommandDecl(
            ident, params, result, given.get("category"), given.get("timeout"), bool(given.get("readonly", False)),
            given.get("allowed", ()), given.get("undo"), self._span(meta))

    def event_decl(self, meta: Any, children: list[Any]) -> ast.EventDecl:
        name, payload = children
        return ast.EventDecl(self._decl_name(name, "event"), payload, self._span(meta))

    def params(self, meta: Any, children: list[ast.Param]) -> tuple[ast.Param, ...]:
        return tuple(children)

    def param(self, meta: Any, children: list[Any]) -> ast.Param:
        name, type_, default = children
        return ast.Param(self._decl_name(name, "parameter"), type_, default, self._span(meta))

    def action_decl(self, meta: Any, children: list[Any]) -> ast.ActionDecl:
        name, params, result, pure, target = children
        return ast.ActionDecl(self._decl_name(name, "action"), params, result, pure is not None,
                              self._string(target), self._span(meta))

    # ---- reactors -------------------------------------------------------------------

    def reactor_decl(self, meta: Any, children: list[Any]) -> ast.ReactorDecl:
        name, params, result, robot, (options, body) = children
        return ast.ReactorDecl(self._decl_name(name, "reactor"), params, result, robot, options, body,
                               self._span(meta))

    def reactor_body(self, meta: Any, children: list[Any]) -> tuple[tuple[ast.ReactorOption, ...], ast.Block]:
        options = tuple(c for c in children if isinstance(c, ast.ReactorOption))
        self._check_once(options, lambda o: o.kind, "the reactor")
        stmts = tuple(c for c in children if c is not None and not isinstance(c, ast.ReactorOption))
        return options, ast.Block(stmts, self._span(meta))

    def reactor_option(self, meta: Any, children: list[Token]) -> ast.ReactorOption:
        word, number = children
        value = self._number(number, "int" if word == "concurrency" else "duration", f"`{word}`")
        return ast.ReactorOption(str(word), value, self._span(meta))  # type: ignore[arg-type]

    def block(self, meta: Any, children: list[Any]) -> ast.Block:
        return ast.Block(tuple(c for c in children if c is not None), self._span(meta))

    def step_stmt(self, meta: Any, children: list[Any]) -> ast.StepStmt:
        name, call, *mods = children
        ident = self._decl_name(name, "step")
        self._check_once(mods, lambda m: _STEP_MODIFIER_WORDS[type(m)], f"step `{ident.name}`")
        return ast.StepStmt(ident, call, tuple(mods), self._span(meta))

    def after_mod(self, meta: Any, children: list[Token]) -> ast.AfterMod:
        return ast.AfterMod(tuple(self._ident(t) for t in children), self._span(meta))

    def when_mod(self, meta: Any, children: list[Any]) -> ast.WhenMod:
        return ast.WhenMod(children[0], self._span(meta))

    def timeout_mod(self, meta: Any, children: list[Token]) -> ast.TimeoutMod:
        duration = self._number(children[1], "duration", "`timeout`")
        return ast.TimeoutMod(duration, self._span(meta))  # type: ignore[arg-type]

    def retry_mod(self, meta: Any, children: list[Any]) -> ast.RetryMod:
        attempts, backoff, max_ = children
        return ast.RetryMod(
            self._number(attempts, "int", "`retry`"),  # type: ignore[arg-type]
            self._number(backoff, "duration", "`backoff`") if backoff is not None else None,  # type: ignore[arg-type]
            self._number(max_, "duration", "`max`") if max_ is not None else None,  # type: ignore[arg-type]
            self._span(meta))

    def undo_mod(self, meta: Any, children: list[Any]) -> ast.UndoMod:
        return ast.UndoMod(children[0], self._span(meta))

    def irreversible_mod(self, meta: Any, children: list[Token]) -> ast.IrreversibleMod:
        return ast.IrreversibleMod(self._string(children[0]), self._span(meta))

    def fallback_mod(self, meta: Any, children: list[Any]) -> ast.FallbackMod:
        return ast.FallbackMod(children[0], self._span(meta))

    def where_mod(self, meta: Any, children: list[Any]) -> ast.WhereMod:
        return ast.WhereMod(children[0], self._span(meta))

    def call(self, meta: Any, children: list[Any]) -> ast.CallExpr:
        parts, args = children
        callee: ast.Expr = ast.Name(parts[0], parts[0].span)
        for part in parts[1:]:
            callee = ast.Attr(callee, part, callee.span.to(part.span))
        return ast.CallExpr(callee, args, self._span(meta))

    def args(self, meta: Any, children: list[ast.Arg]) -> tuple[ast.Arg, ...]:
        return tuple(children)

    def named_arg(self, meta: Any, children: list[Any]) -> ast.Arg:
        return ast.Arg(self._ident(children[0]), children[1], self._span(meta))

    def positional_arg(self, meta: Any, children: list[Any]) -> ast.Arg:
        return ast.Arg(None, children[0], self._span(meta))

    def let_stmt(self, meta: Any, children: list[Any]) -> ast.LetStmt:
        return ast.LetStmt(self._decl_name(children[0], "value"), children[1], self._span(meta))

    def switch_stmt(self, meta: Any, children: list[Any]) -> ast.SwitchStmt:
        name, subject, *cases, default = children
        return ast.SwitchStmt(self._decl_name(name, "switch"), subject, tuple(cases), default, self._span(meta))

    def case_clause(self, meta: Any, children: list[Any]) -> ast.CaseClause:
        *values, body = children
        return ast.CaseClause(tuple(values), body, self._span(meta))

    def default_clause(self, meta: Any, children: list[Any]) -> ast.Block:
        return children[0]

    def map_stmt(self, meta: Any, children: list[Any]) -> ast.MapStmt:
        name, over, item, _word, number, body = children
        concurrency = self._number(number, "int", "`concurrency`") if number is not None else None
        return ast.MapStmt(self._decl_name(name, "map"), over, self._decl_name(item, "map item"),
                           concurrency, body, self._span(meta))  # type: ignore[arg-type]

    def return_stmt(self, meta: Any, children: list[Any]) -> ast.ReturnStmt:
        return ast.ReturnStmt(children[0], self._span(meta))

    def fail_stmt(self, meta: Any, children: list[Token]) -> ast.FailStmt:
        return ast.FailStmt(self._string(children[0]), self._span(meta))

    # ---- agents -------------------------------------------------------------------------

    def agent_decl(self, meta: Any, children: list[Any]) -> ast.AgentDecl:
        name, robot, state, *routes = children
        return ast.AgentDecl(self._decl_name(name, "agent"), robot, state if state is not None else (),
                             tuple(routes), self._span(meta))

    def state_block(self, meta: Any, children: list[ast.StateField]) -> tuple[ast.StateField, ...]:
        return tuple(children)

    def state_field(self, meta: Any, children: list[Any]) -> ast.StateField:
        name, type_, default = children
        return ast.StateField(self._decl_name(name, "state field"), type_, default, self._span(meta))

    def route(self, meta: Any, children: list[Any]) -> ast.RouteDecl:
        pattern, bind, when, priority, body = children
        return ast.RouteDecl(ast.SignalType(str(pattern), self._tspan(pattern)),
                             self._ident(bind) if bind is not None else None, when,
                             priority if priority is not None else 0, body, self._span(meta))

    def priority(self, meta: Any, children: list[Token]) -> int:
        minus, number = children
        value = self._number(number, "int", "`priority`")
        assert isinstance(value, ast.IntLit)  # "int" gives one, even after an error
        return -int(value.value) if minus is not None else int(value.value)

    def agent_block(self, meta: Any, children: list[Any]) -> tuple[Any, ...]:
        return tuple(children)

    def set_stmt(self, meta: Any, children: list[Any]) -> ast.SetStmt:
        name, key, value = children
        return ast.SetStmt(self._ident(name), value, self._span(meta), key)

    def emit_stmt(self, meta: Any, children: list[Any]) -> ast.EmitStmt:
        sig, data, to = children
        return ast.EmitStmt(ast.SignalType(str(sig), self._tspan(sig)), data, self._span(meta), to)

    def schedule_stmt(self, meta: Any, children: list[Any]) -> ast.ScheduleStmt:
        sig, data, _, delay, to = children  # (the `in` keyword is a token: comparisons keep it too)
        return ast.ScheduleStmt(ast.SignalType(str(sig), self._tspan(sig)), data, delay, self._span(meta), to)

    def run_stmt(self, meta: Any, children: list[Any]) -> ast.RunStmt:
        call, preempt, then, else_ = children
        return ast.RunStmt(call, then, else_, self._span(meta), preempt is not None)

    def cancel_stmt(self, meta: Any, children: list[Any]) -> ast.CancelStmt:
        return ast.CancelStmt(children[0], self._span(meta))

    def if_stmt(self, meta: Any, children: list[Any]) -> ast.IfStmt:
        cond, then, *rest = children  # no placeholder for an absent inlined `else` branch
        else_ = rest[0] if rest else None
        if isinstance(else_, ast.IfStmt):
            else_ = (else_,)
        return ast.IfStmt(cond, then, else_, self._span(meta))

    # ---- expressions ---------------------------------------------------------------------

    def _fold_left(self, children: list[Any]) -> ast.Expr:
        result = children[0]
        for i in range(1, len(children), 2):
            right = children[i + 1]
            result = ast.Binary(str(children[i]), result, right, result.span.to(right.span))
        return result

    def or_expr(self, meta: Any, children: list[Any]) -> ast.Expr:
        return self._fold_left(children)

    and_expr = sum = product = or_expr

    def comparison(self, meta: Any, children: list[Any]) -> ast.Expr:
        if len(children) == 4:  # a `not in` b
            left, right = children[0], children[3]
            return ast.Binary("not in", left, right, left.span.to(right.span))
        return self._fold_left(children)

    def coalesce(self, meta: Any, children: list[Any]) -> ast.Expr:
        result = children[-1]
        for i in range(len(children) - 2, 0, -2):
            left = children[i - 1]
            result = ast.Binary("??", left, result, left.span.to(result.span))
        return result

    def not_op(self, meta: Any, children: list[Any]) -> ast.Unary:
        return ast.Unary("not", children[1], self._span(meta))

    def neg(self, meta: Any, children: list[Any]) -> ast.Unary:
        return ast.Unary("-", children[1], self._span(meta))

    def attr(self, meta: Any, children: list[Any]) -> ast.Attr:
        return ast.Attr(children[0], self._ident(children[1]), self._span(meta))

    def index(self, meta: Any, children: list[Any]) -> ast.Index:
        return ast.Index(children[0], children[1], self._span(meta))

    def slice(self, meta: Any, children: list[Any]) -> ast.Slice:
        obj, start, end = children
        return ast.Slice(obj, start, end, self._span(meta))

    def call_expr(self, meta: Any, children: list[Any]) -> ast.Expr:
        callee, args = children
        if not isinstance(callee, (ast.Name, ast.Attr)):
            self.diags.error(codes.BBF001, "only a function, command, action or reactor can be called",
                             callee.span, help="call it by its name, like `max(a, b)`")
        return ast.CallExpr(callee, args, self._span(meta))

    def number(self, meta: Any, children: list[Token]) -> ast.Expr:
        return self._number(children[0], "any", "")

    def string(self, meta: Any, children: list[Token]) -> ast.StrLit:
        return self._string(children[0])

    def true(self, meta: Any, children: list[Token]) -> ast.BoolLit:
        return ast.BoolLit(True, self._tspan(children[0]))

    def false(self, meta: Any, children: list[Token]) -> ast.BoolLit:
        return ast.BoolLit(False, self._tspan(children[0]))

    def none(self, meta: Any, children: list[Token]) -> ast.NoneLit:
        return ast.NoneLit(self._tspan(children[0]))

    def name(self, meta: Any, children: list[Token]) -> ast.Name:
        ident = self._ident(children[0])
        return ast.Name(ident, ident.span)

    def list_expr(self, meta: Any, children: list[Any]) -> ast.ListExpr:
        return ast.ListExpr(tuple(children), self._span(meta))

    def record_expr(self, meta: Any, children: list[Any]) -> ast.RecordExpr:
        return ast.RecordExpr(tuple(children), self._span(meta))

    def field_init(self, meta: Any, children: list[Any]) -> ast.FieldInit:
        return ast.FieldInit(self._ident(children[0]), children[1], self._span(meta))


def build_module(tree: Tree, file: str, module_name: str, text: str, diags: Diagnostics) -> ast.Module:
    """The AST of a parse tree whose root is ``start``."""
    return AstBuilder(file, module_name, text, diags).transform(tree)
