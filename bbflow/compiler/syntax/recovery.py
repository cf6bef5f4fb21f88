"""Driving lark's LALR parser token by token, with helpful errors and recovery.

On a syntax error the driver reports what was expected in words (from lark's
``accepts``, the exact set of terminals the parser can take next), then repairs
the input as a person would read it, trying in turn:

1. a misspelt keyword (``stpe`` -> ``step``),
2. one missing token (``step a beep()`` -> ``step a = beep()``),
3. one extra token, dropped,
4. panic mode: skip to the next statement or declaration keyword (or a
   balancing ``}``) and pop the parser's stack to a state that takes it.

A repair is only taken if the parser then accepts the next few tokens. After an
error, further errors are reported only once a few tokens have parsed cleanly,
so one mistake never cascades into several messages.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from copy import copy

from lark import Lark, Token, Tree
from lark.exceptions import UnexpectedCharacters, UnexpectedInput, UnexpectedToken
from lark.lexer import PatternStr

from bbflow.compiler.diagnostics import codes
from bbflow.compiler.diagnostics.core import Diagnostics
from bbflow.compiler.diagnostics.suggest import closest
from bbflow.compiler.source import SourceFile, Span
from bbflow.compiler.syntax.messages import describe_error

LOOKAHEAD = 3  # tokens that must parse after a repair for it to be taken
QUIET_AFTER_ERROR = 3  # tokens that must parse after an error before another is reported
END = "$END"

# Keywords at which a statement or declaration starts: where panic mode resumes.
SYNC_WORDS = frozenset("""
    from import type enum signal robot action reactor agent
    states limit command event
    step let switch map return fail case default
    state on set emit schedule run if
""".split())
# Tokens that may be inserted to repair an error (never values, which would invent meaning).
INSERTABLE = ("_EQ", "_RPAR", "_RSQB", "_RBRACE", "_COMMA", "_COLON", "_LBRACE")


class SyntaxDriver:
    """Parses one source text; ``run`` returns the tree (possibly with parts dropped) or None."""

    def __init__(self, lark: Lark, source: SourceFile, diags: Diagnostics) -> None:
        self.lark = lark
        self.source = source
        self.diags = diags
        self.ip = lark.parse_interactive(source.text, start="start")
        self.parse_conf = self.ip.parser_state.parse_conf
        self.states = self.parse_conf.parse_table.states
        self.terminals = {t.name: t for t in lark.terminals}
        self.keyword_types = {t.pattern.value: t.name for t in lark.terminals
                              if isinstance(t.pattern, PatternStr) and t.pattern.value.isalpha()}
        self.punct_types = {t.pattern.value: t.name for t in lark.terminals
                            if isinstance(t.pattern, PatternStr) and not t.pattern.value.isalpha()}
        self.word_patterns = {name: re.compile(self.terminals[name].pattern.to_regexp())
                              for name in ("NAME", "SIGNAL_TYPE", "PATTERN", "NUMBER", "STRING")}
        self.quiet = QUIET_AFTER_ERROR  # tokens parsed since the last error (reports when >= QUIET_AFTER_ERROR)
        self.last_token: Token | None = None
        # the parser's stacks before the last token was taken, to reread a keyword taken as a name
        self.before_last: tuple[list[int], list[object]] | None = None
        self._gen: Iterator[Token] | None = None

    # ---- the main loop -------------------------------------------------------------

    def run(self) -> Tree | None:
        while True:
            tok = self._next_token()
            if tok is None:
                return self._finish()
            self._take(tok)

    def _next_token(self) -> Token | None:
        """The next token in the parser's current context; None at the end of the text."""
        while True:
            if self._gen is None:
                self._gen = self.ip.lexer_thread.lex(self.ip.parser_state)
            try:
                return next(self._gen)
            except StopIteration:
                self._gen = None
                return None
            except UnexpectedToken as e:  # a token of another context (found by lark's root lexer)
                self._gen = None
                return e.token
            except UnexpectedCharacters as e:
                self._gen = None
                self._bad_character(e)

    def _bad_character(self, e: UnexpectedCharacters) -> None:
        text = self.source.text
        ch = text[e.pos_in_stream]  # type: ignore[index]  # lark types it optional; set for this error
        if self.quiet >= QUIET_AFTER_ERROR:
            span = Span.point(self.source.path, e.line, e.column)
            shown = ch if ch.isprintable() else repr(ch)
            help_ = ("strings are written in double quotes" if ch == "'" else
                     "names are made of ASCII letters, digits and `_` (any character may be in a string)"
                     if ch.isalnum() and not ch.isascii() else None)
            self.diags.error(codes.BBF001, f"unexpected character `{shown}`", span, help=help_)
        self.quiet = 0
        self.ip.lexer_thread.state.line_ctr.feed(ch)  # type: ignore[union-attr]  # lexing has a state

    def _take(self, tok: Token) -> None:
        """Feed one token; on an error, report and recover."""
        tok = self._retype(tok, self.ip.parser_state.position) or tok
        state = self.ip.parser_state
        if tok.type in self.states[state.position]:
            saved = (list(state.state_stack), list(state.value_stack))
            try:
                self.ip.feed_token(tok)
            except UnexpectedToken:
                state.state_stack[:], state.value_stack[:] = saved
            else:
                self.quiet += 1
                self.last_token = tok
                self.before_last = saved
                return
        self._error(tok)

    def _finish(self) -> Tree | None:
        for _ in range(64):
            end = self._end_token()
            state = self.ip.parser_state
            if END in self.states[state.position]:
                saved = (list(state.state_stack), list(state.value_stack))
                try:
                    return self.ip.feed_token(end)
                except UnexpectedToken:
                    state.state_stack[:], state.value_stack[:] = saved
            if self.quiet >= QUIET_AFTER_ERROR or not self.diags.has_errors():
                self._report(end)
            self.quiet = 0
            if not self._close_at_end():
                return None
        return None

    def _end_token(self) -> Token:
        if self.last_token is not None:
            return Token.new_borrow_pos(END, "", self.last_token)
        return Token(END, "", 0, 1, 1, 1, 1, 0)

    # ---- errors ---------------------------------------------------------------------

    def _error(self, tok: Token) -> None:
        pending: list[Token] = []
        prev = self.last_token
        if prev is not None and prev.type == "NAME" and str(prev) in SYNC_WORDS and self.before_last is not None:
            # `d(` then `let q = 1` on the next line: `let` was taken as a name (keywords are names where
            # the grammar expects no keyword), but the mistake is before it. Reread it as the keyword.
            state = self.ip.parser_state
            state.state_stack[:], state.value_stack[:] = self.before_last
            self.before_last = None
            pending = [tok]
            tok = Token.new_borrow_pos(self.keyword_types[str(prev)], str(prev), prev)
        accepts = self.ip.accepts()
        if self.quiet >= QUIET_AFTER_ERROR:
            self._report(tok, accepts)
        self.quiet = 0
        self._recover(tok, accepts, pending)

    def _report(self, tok: Token, accepts: set[str] | None = None) -> None:
        if accepts is None:
            accepts = self.ip.accepts()
        message, help_ = describe_error(tok, accepts, self.ip.parser_state.value_stack, self.terminals)
        if tok.type == END:
            lines = self.source.lines
            line = max(1, len(lines))
            span = Span.point(self.source.path, line, len(lines[-1]) + 1 if lines else 1)
        else:
            span = Span(self.source.path, tok.line, tok.column, tok.end_line, tok.end_column)  # type: ignore[arg-type]
        suggestion = self._keyword_suggestion(tok, accepts)
        if suggestion is not None:
            help_ = f"did you mean `{suggestion}`?"
        self.diags.error(codes.BBF001, message, span, help=help_)

    def _keyword_suggestion(self, tok: Token, accepts: set[str]) -> str | None:
        if tok.type == END or not str(tok).isidentifier():
            return None
        words = [t.pattern.value for name in accepts if (t := self.terminals.get(name)) is not None
                 and isinstance(t.pattern, PatternStr) and t.pattern.value.isalpha()]
        near = closest(str(tok), words, limit=1)
        return near[0] if near else None

    # ---- recovery -------------------------------------------------------------------

    def _recover(self, tok: Token, accepts: set[str], pending: list[Token]) -> None:
        """Repair at ``tok`` (``pending``: tokens already read after it, to take after the repair)."""
        suggestion = self._keyword_suggestion(tok, accepts)
        if suggestion is not None:
            fixed = Token.new_borrow_pos(self.keyword_types[suggestion], suggestion, tok)
            if self._trial([fixed, *pending]):
                self._force(fixed)
                self._take_all(pending)
                return
        for name in INSERTABLE:
            if name in accepts:
                inserted = Token.new_borrow_pos(name, self.terminals[name].pattern.value, tok)
                if self._trial([inserted, tok, *pending]):
                    self._force(inserted)
                    self._take_all([tok, *pending])
                    return
        if tok.type != END and self._trial(pending):
            self._take_all(pending)  # the token is extra: drop it
            return
        self._panic([tok, *pending])

    def _take_all(self, tokens: list[Token]) -> None:
        for tok in tokens:
            self._take(tok)

    def _force(self, tok: Token) -> None:
        tok = self._retype(tok, self.ip.parser_state.position) or tok
        self.ip.feed_token(tok)
        self.last_token = tok

    def _retype(self, tok: Token, position: int) -> Token | None:
        """The token as one of the terminals the state takes, if its text is one (the root lexer may guess wrong)."""
        row = self.states[position]
        if tok.type in row or tok.type == END:
            return tok
        value = str(tok)
        for name in (self.keyword_types.get(value), self.punct_types.get(value)):
            if name is not None and name in row:
                return Token.new_borrow_pos(name, value, tok)
        if value in self.keyword_types or value in self.punct_types:
            return None
        for name, regex in self.word_patterns.items():
            if name in row and regex.fullmatch(value):
                return Token.new_borrow_pos(name, value, tok)
        return None

    def _trial(self, prefix: list[Token], stack_depth: int = 0) -> bool:
        """Whether the parser would take ``prefix`` then the next LOOKAHEAD tokens of the text."""
        cursor = self.ip.copy(deepcopy_values=False)
        conf = copy(self.parse_conf)
        conf.callbacks = {}
        cursor.parser_state.parse_conf = conf
        if stack_depth:
            del cursor.parser_state.state_stack[-stack_depth:]
            del cursor.parser_state.value_stack[-stack_depth:]
        try:
            for tok in prefix:
                typed = self._retype(tok, cursor.parser_state.position)
                if typed is None:
                    return False
                cursor.feed_token(typed)
            tokens = cursor.lexer_thread.lex(cursor.parser_state)
            for _ in range(LOOKAHEAD):
                try:
                    nxt = next(tokens)
                except StopIteration:
                    cursor.feed_token(self._end_token())
                    return True
                cursor.feed_token(nxt)
        except (UnexpectedInput, KeyError):
            return False
        return True

    def _panic(self, queue: list[Token]) -> None:
        """Skip to a statement or declaration keyword (or a balancing `}`) and resume there.

        ``queue`` holds the tokens already read; after them, tokens are read without context.
        """
        depth = 0
        tok: Token | None = queue.pop(0)
        while tok is not None and tok.type != END:
            value = str(tok)
            if depth == 0 and (value in SYNC_WORDS or value == "}") and self._resync(tok):
                self._take_all(queue)
                return
            if value == "{":
                depth += 1
            elif value == "}" and depth > 0:
                depth -= 1
            tok = queue.pop(0) if queue else self._next_raw()
        # At the end of the text: _finish closes what is open.

    def _next_raw(self) -> Token | None:
        """The next token, lexed without context (by the root lexer); None at the end."""
        lexer = self.ip.lexer_thread.lexer
        root = getattr(lexer, "root_lexer", None) or getattr(lexer, "lexer", None).root_lexer  # type: ignore[union-attr]
        state = self.ip.lexer_thread.state
        self._gen = None
        while True:
            try:
                return root.next_token(state, self.ip.parser_state)
            except EOFError:
                return None
            except UnexpectedCharacters as e:
                state.line_ctr.feed(self.source.text[e.pos_in_stream])  # type: ignore[union-attr,index]

    def _resync(self, tok: Token) -> bool:
        keyword = self.keyword_types.get(str(tok))
        if keyword is not None:  # a statement or declaration starts here: never resume taking it as a name
            tok = Token.new_borrow_pos(keyword, str(tok), tok)
        stack = self.ip.parser_state.state_stack
        for depth in range(len(stack) - 1):
            position = stack[-1 - depth]
            typed = self._retype(tok, position)
            if typed is None or typed.type not in self.states[position]:
                continue
            if self._trial([typed], stack_depth=depth) or self._trial_one(typed, depth):
                self._pop(depth)
                self._force(typed)
                return True
        return False

    def _trial_one(self, tok: Token, depth: int) -> bool:
        """Whether the parser, popped by ``depth``, takes ``tok`` at all (when the lookahead fails too)."""
        cursor = self.ip.copy(deepcopy_values=False)
        conf = copy(self.parse_conf)
        conf.callbacks = {}
        cursor.parser_state.parse_conf = conf
        if depth:
            del cursor.parser_state.state_stack[-depth:]
            del cursor.parser_state.value_stack[-depth:]
        try:
            cursor.feed_token(tok)
        except (UnexpectedInput, KeyError):
            return False
        return True

    def _pop(self, depth: int) -> None:
        if depth:
            state = self.ip.parser_state
            del state.state_stack[-depth:]
            del state.value_stack[-depth:]

    def _close_at_end(self) -> bool:
        """At the end of the text with something open: close it with `}`, or drop it. False if stuck."""
        stack = self.ip.parser_state.state_stack
        close = Token.new_borrow_pos("_RBRACE", "}", self._end_token())
        for depth in range(len(stack) - 1):
            position = stack[-1 - depth]
            if "_RBRACE" in self.states[position] and self._trial_one(close, depth):
                self._pop(depth)
                self.ip.feed_token(close)
                return True
            if END in self.states[position] and self._trial_one(self._end_token(), depth):
                self._pop(depth)
                return True
        return False
