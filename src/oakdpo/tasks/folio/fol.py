"""FOLIO's first-order logic text -> a small formula tree -> z3.

Grammar (FOLIO v0.0 annotation syntax):
    formula  := iff
    iff      := imp ('↔' imp)*                 lowest precedence, left-associative
    imp      := xor ('→' imp)?                 right-associative: a → b → c = a → (b → c)
    xor      := or ('⊕' or)*                   left-associative (a chain is parity, as z3's Xor)
    or       := and ('∨' and)*
    and      := unary ('∧' unary)*
    unary    := '¬' unary | ('∀'|'∃') NAME body | '(' formula ')' | atom
    atom     := NAME '(' term (',' term)* ')' | NAME | term '=' term | term '≠' term
    term     := NAME | NAME '(' term, ... ')'  (a function term)
So ¬ > ∧ > ∨ > ⊕ > → > ↔. ↔ binds loosest so that `A ∧ B ↔ C ∨ D` reads (A ∧ B) ↔ (C ∨ D), which is how
FOLIO writes definitions (`∀x (TomRent(x) ↔ (... ∧ ...))`).

Names: a name is a variable only inside the scope of a quantifier that binds it; every other name in term
position is a constant (so a stray `y` with no `∀y` is the constant y). One uninterpreted sort `Object`.
Predicates get their arity from use; the same name used with two arities gives two distinct symbols
(`P/1`, `P/2`), as do a predicate and a constant that share a name. 0-ary names in formula position are
propositional atoms.

Quantifier scope: `∀x (body)` scopes over the parenthesised group, the FOLIO convention; without a group
(`∀x P(x) → Q(x)`) the scope runs as far right as possible. Repair: if the bound variable occurs again after
the group at the same nesting level (`∀x ∃y (A(x, y) ∨ B(x, y)) → C(x, y)`) and no enclosing quantifier binds
the same name, the scope is widened to run as far right as possible: the annotator meant it to cover that use.

Repairs for annotation noise (each applied one is named in ParseResult.repairs; docs/folio.md lists them):
    empty           an empty string (premises only, `allow_empty=True`) reads as `true`
    trailing_period a final '.' after the formula is dropped
    ascii_ops       ⟷ ⇔ <-> -> => ⇒ ~ ∼ ! & ^ | and the words forall/exists are read as ↔ → ¬ ∧ ∨ ∀ ∃
    unmatched_close a ')' with no matching '(' is dropped
    missing_close   missing ')' are added at the end
    comma_and       a ',' between two formulas (not inside an argument list) reads as ∧
    juxtaposition   two formulas written side by side with no connective read as ∧
    spaced_name     a constant written as several words (`captain america`) reads as one name joined by '_'
    wide_scope      see quantifier scope above
Identifiers may contain letters of any script, digits (also leading: `2000`), '_', '-', '+', "'", '’' and
'.' followed by a letter/digit (`c++`, `gpt-3`, `mr.smith`, `y42.3billion`, `Companies’Stocks`,
`LostToIgaŚwiątek`); a space between a name and its '(' is allowed (`Music (x, y)`). These are plain
syntax, not repairs.

Text never raises: parse_fol() returns a ParseResult whose `error` says what failed. Parsing is linear in
the text (∧ / ∨ chains are collected, not re-flattened pairwise); a formula nested more than MAX_DEPTH
levels (operators, parentheses, quantifiers, function terms) is the error TOO_DEEP, so nothing downstream
(Z3 conversion, matching, printing) can reach Python's recursion limit.
"""

from __future__ import annotations

import bisect
import re
from dataclasses import dataclass, field

import z3

# --------------------------------------------------------------------------------------------- the tree


@dataclass(frozen=True)
class Term:
    """A name (variable or constant, decided by scope when converting) or a function application."""
    name: str
    args: tuple["Term", ...] | None = None

    def __str__(self) -> str:
        if self.args is None:
            return self.name
        return f"{self.name}({', '.join(str(a) for a in self.args)})"


@dataclass(frozen=True)
class Formula:
    """op: atom (name, terms), eq (terms), true, not / and / or / xor / implies / iff (kids),
    forall / exists (name = the bound variable, kids = (body,))."""
    op: str
    kids: tuple["Formula", ...] = ()
    name: str | None = None
    terms: tuple[Term, ...] = ()

    def __str__(self) -> str:
        return to_text(self)


_PREC = {"iff": 1, "implies": 2, "xor": 3, "or": 4, "and": 5}
_SYM = {"iff": "↔", "implies": "→", "xor": "⊕", "or": "∨", "and": "∧"}


def to_text(f: Formula, parent_prec: int = 0) -> str:
    """Canonical FOLIO-style text of a formula (re-parses to an equal tree)."""
    op = f.op
    if op == "true":
        return "⊤"
    if op == "atom":
        return f.name if not f.terms else f"{f.name}({', '.join(str(t) for t in f.terms)})"
    if op == "eq":
        return f"{f.terms[0]} = {f.terms[1]}"
    if op == "not":
        k = f.kids[0]
        inner = to_text(k, 9)
        return f"¬{inner}"
    if op in ("forall", "exists"):
        q = "∀" if op == "forall" else "∃"
        body = f.kids[0]
        text = f"{q}{f.name} {to_text(body)}" if body.op in ("forall", "exists") else f"{q}{f.name} ({to_text(body)})"
        return f"({text})" if parent_prec else text  # as an operand: keep later names out of its scope
    prec = _PREC[op]
    if op in ("and", "or"):
        text = f" {_SYM[op]} ".join(to_text(k, prec + 1) for k in f.kids)
    elif op == "implies":
        text = f"{to_text(f.kids[0], prec + 1)} → {to_text(f.kids[1], prec)}"
    else:  # xor, iff: left-associative
        text = f"{to_text(f.kids[0], prec)} {_SYM[op]} {to_text(f.kids[1], prec + 1)}"
    return f"({text})" if prec < parent_prec else text


def atoms(f: Formula, bound: frozenset = frozenset()) -> tuple[set[tuple[str, int]], set[str]]:
    """(predicate symbols as (name, arity), constant names) used in a formula."""
    preds: set[tuple[str, int]] = set()
    consts: set[str] = set()

    def term(t: Term, b):
        if t.args is None:
            if t.name not in b:
                consts.add(t.name)
        else:
            preds.add((t.name, -len(t.args)))  # function symbols: negative arity keeps them apart
            for a in t.args:
                term(a, b)

    def walk(g: Formula, b):
        if g.op == "atom":
            preds.add((g.name, len(g.terms)))
            for t in g.terms:
                term(t, b)
        elif g.op == "eq":
            for t in g.terms:
                term(t, b)
        elif g.op in ("forall", "exists"):
            walk(g.kids[0], b | {g.name})
        else:
            for k in g.kids:
                walk(k, b)

    walk(f, bound)
    return preds, consts


def free_names(f: Formula) -> set[str]:
    """Names in term position not bound by a quantifier (= the constants)."""
    return atoms(f)[1]


def substitute(f: Formula, var: str, const: str) -> Formula:
    """Replace the free occurrences of name `var` by the name `const`."""
    def term(t: Term) -> Term:
        if t.args is None:
            return Term(const) if t.name == var else t
        return Term(t.name, tuple(term(a) for a in t.args))

    if f.op in ("atom", "eq"):
        return Formula(f.op, name=f.name, terms=tuple(term(t) for t in f.terms))
    if f.op in ("forall", "exists"):
        if f.name == var:
            return f
        return Formula(f.op, (substitute(f.kids[0], var, const),), name=f.name)
    return Formula(f.op, tuple(substitute(k, var, const) for k in f.kids))


# ------------------------------------------------------------------------------------------- the parser


class FolParseError(Exception):
    """Raised inside the parser only; parse_fol() catches it and reports it in ParseResult.error."""


@dataclass
class ParseResult:
    text: str
    formula: Formula | None
    error: str | None = None
    repairs: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.formula is not None


_ASCII = [("⟷", "↔"), ("⇔", "↔"), ("<->", "↔"), ("<=>", "↔"), ("->", "→"), ("=>", "→"), ("⇒", "→"),
          ("!=", "≠"), ("∼", "¬"), ("~", "¬"), ("!", "¬"), ("&", "∧"), ("^", "∧"), ("|", "∨")]
_WORD_Q = re.compile(r"\b(forall|exists)\s+(?=\w)")
_IDENT = re.compile(r"[\w](?:[\w\-+'’]|\.(?=\w))*")
_OPS = {"¬": "not", "∧": "and", "∨": "or", "⊕": "xor", "→": "implies", "↔": "iff", "∀": "forall", "∃": "exists",
        "(": "(", ")": ")", ",": ",", "=": "=", "≠": "!=", "⊤": "true"}


def _tokenize(text: str, repairs: list[str], budget=None) -> list[tuple[str, str]]:
    """[(kind, value)]; kind is 'name' or an operator name. Unknown characters raise FolParseError."""
    toks: list[tuple[str, str]] = []
    i, n = 0, len(text)
    while i < n:
        if budget is not None and not len(toks) & 4095:
            budget.check()
        c = text[i]
        if c.isspace():
            i += 1
            continue
        if c in _OPS:
            toks.append((_OPS[c], c))
            i += 1
            continue
        m = _IDENT.match(text, i)
        if m:
            toks.append(("name", m.group(0)))
            i = m.end()
            continue
        raise FolParseError(f"unexpected character {c!r} at {i}")
    # Balance parentheses: drop a ')' with no '(' and close what is left open at the end.
    out, depth = [], 0
    for t in toks:
        if t[0] == "(":
            depth += 1
        elif t[0] == ")":
            if depth == 0:
                repairs.append("unmatched_close")
                continue
            depth -= 1
        out.append(t)
    if depth:
        repairs.append("missing_close")
        out += [(")", ")")] * depth
    return out


MAX_DEPTH = 100  # nesting levels of a formula (FOLIO's own formulas have fewer than 15)
TOO_DEEP = f"formula too deep (more than {MAX_DEPTH} levels of nesting)"


class _Parser:
    """Precedence climbing over the tokens. Recursion is bounded by MAX_DEPTH (a deeper formula is a
    FolParseError, never a RecursionError); ∧ / ∨ chains are collected in one list (linear, not quadratic);
    `budget` (a trace.Budget or None) is checked every 4096 tokens."""

    def __init__(self, toks: list[tuple[str, str]], repairs: list[str], budget=None):
        self.toks, self.i, self.repairs, self.budget = toks, 0, repairs, budget
        self.bound: list[str] = []  # variables of the enclosing quantifiers
        self.depth = 0
        self._scope_index = None  # built on first use by _used_later

    def peek(self, k: int = 0) -> str | None:
        j = self.i + k
        return self.toks[j][0] if j < len(self.toks) else None

    def take(self, kind: str | None = None) -> tuple[str, str]:
        if self.i >= len(self.toks):
            raise FolParseError("unexpected end of formula")
        t = self.toks[self.i]
        if kind is not None and t[0] != kind:
            raise FolParseError(f"expected {kind!r}, got {t[1]!r}")
        self.i += 1
        if self.budget is not None and not self.i & 4095:
            self.budget.check()
        return t

    def enter(self) -> None:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise FolParseError(TOO_DEEP)

    def starts_unary(self) -> bool:
        return self.peek() in ("not", "forall", "exists", "(", "name", "true")

    # Precedence climbing; juxtaposition and commas between formulas read as ∧ (repairs).
    def expr(self, min_prec: int = 0, left: Formula | None = None) -> Formula:
        if left is None:
            left = self.unary()
        chain_op, chain = None, None  # an open ∧ / ∨ chain: `left` is Formula(chain_op, chain) once closed
        while True:
            kind = self.peek()
            if kind in _PREC:
                op = kind
            elif kind == ",":
                op = "and"
            elif self.starts_unary():
                op = "juxt"
            else:
                break
            prec = _PREC["and" if op == "juxt" else op]
            if prec < min_prec:
                break
            if op == "juxt":
                self.repairs.append("juxtaposition")
                op = "and"
            else:
                if kind == ",":
                    self.repairs.append("comma_and")
                self.take()
            if op == "implies":  # right-associative: recursion, one level per arrow
                self.enter()
                right = self.expr(prec)
                self.depth -= 1
            else:
                right = self.expr(prec + 1)
            if op in ("and", "or"):  # flatten chains (associative): A ∧ (B ∧ C) -> and(A, B, C)
                if chain_op != op:
                    left = _close_chain(chain_op, chain, left)
                    chain_op, chain = op, list(left.kids) if left.op == op else [left]
                chain.extend(right.kids if right.op == op else (right,))
            else:
                left = Formula(op, (_close_chain(chain_op, chain, left), right))
                chain_op, chain = None, None
        return _close_chain(chain_op, chain, left)

    def unary(self) -> Formula:
        kind = self.peek()
        if kind in ("not", "forall", "exists", "("):
            self.enter()
            try:
                return self._nested(kind)
            finally:
                self.depth -= 1
        if kind == "name":
            return self.atom()
        if kind == "true":
            self.take()
            return Formula("true")
        if kind is None:
            raise FolParseError("unexpected end of formula")
        raise FolParseError(f"unexpected {self.toks[self.i][1]!r}")

    def _nested(self, kind: str) -> Formula:
        if kind == "not":
            self.take()
            return Formula("not", (self.unary(),))
        if kind in ("forall", "exists"):
            self.take()
            var = self.take("name")[1]
            outer = var in self.bound  # a later `var` may then belong to the enclosing quantifier
            self.bound.append(var)
            try:
                if self.peek() in ("(", "forall", "exists"):
                    body = self.unary()
                    if not outer and self._used_later(var):  # repair: the scope was meant to reach that use
                        self.repairs.append("wide_scope")
                        body = self.expr(0, left=body)
                else:
                    body = self.expr(0)
            finally:
                self.bound.pop()
            return Formula(kind, (body,), name=var)
        self.take()  # "("
        if self.peek() == ")":
            raise FolParseError("empty parentheses")
        inner = self.expr(0)
        self.take(")")
        return inner

    def _used_later(self, var: str) -> bool:
        """Does `var` occur as a term after the current position, before the enclosing group closes and before
        a quantifier rebinds it? Answered from an index of the token list built once (linear overall)."""
        if self._scope_index is None:
            self._scope_index = _scope_index(self.toks)
        open_at, close_of, uses, binds = self._scope_index
        i = self.i
        end = close_of.get(open_at[i], len(self.toks))
        pu, pb = uses.get(var, ()), binds.get(var, ())
        ku = bisect.bisect_left(pu, i)
        if ku == len(pu) or pu[ku] >= end:
            return False
        kb = bisect.bisect_left(pb, i)
        return kb == len(pb) or pu[ku] < pb[kb]

    def term(self) -> Term:
        name = self.take("name")[1]
        if self.peek() == "(":
            self.enter()
            args = self.arglist()
            self.depth -= 1
            return Term(name, args)
        while self.peek() == "name" and self.peek(1) in (",", ")"):  # repair: `captain america`
            self.repairs.append("spaced_name")
            name += "_" + self.take()[1]
        return Term(name)

    def arglist(self) -> tuple[Term, ...]:
        self.take("(")
        if self.peek() == ")":
            raise FolParseError("empty argument list")
        args = [self.term()]
        while self.peek() == ",":
            self.take()
            args.append(self.term())
        self.take(")")
        return tuple(args)

    def atom(self) -> Formula:
        name = self.take("name")[1]
        if self.peek() == "(":
            args = self.arglist()
            if self.peek() in ("=", "!="):
                left = Term(name, args)
            else:
                return Formula("atom", name=name, terms=args)
        else:
            left = Term(name)
            if self.peek() not in ("=", "!="):
                return Formula("atom", name=name)  # propositional atom
        op = self.take()[0]
        right = self.term()
        eq = Formula("eq", terms=(left, right))
        return eq if op == "=" else Formula("not", (eq,))


def _scope_index(toks: list[tuple[str, str]]):
    """(open_at, close_of, uses, binds) for _Parser._used_later: open_at[i] is the index of the innermost '('
    still open before token i (-1: none), close_of maps a '(' to its ')', uses[name] the positions where the
    name is a term (not a function or predicate: no '(' follows), binds[name] the positions of quantifiers
    that bind it."""
    open_at, close_of, stack = [], {}, []
    uses: dict[str, list[int]] = {}
    binds: dict[str, list[int]] = {}
    n = len(toks)
    for j, (kind, val) in enumerate(toks):
        open_at.append(stack[-1] if stack else -1)
        if kind == "(":
            stack.append(j)
        elif kind == ")":
            if stack:
                close_of[stack.pop()] = j
        elif kind in ("forall", "exists") and j + 1 < n and toks[j + 1][0] == "name":
            binds.setdefault(toks[j + 1][1], []).append(j)
        elif kind == "name" and (j + 1 >= n or toks[j + 1][0] != "("):
            uses.setdefault(val, []).append(j)
    open_at.append(stack[-1] if stack else -1)
    return open_at, close_of, uses, binds


def _close_chain(op: str | None, kids: list | None, left: Formula) -> Formula:
    return left if op is None else Formula(op, tuple(kids))


def depth(f: Formula) -> int:
    """Nesting depth of a formula, its terms included (iterative: any depth)."""
    best, stack = 0, [(f, 1)]
    while stack:
        g, d = stack.pop()
        if isinstance(g, Term):
            best = max(best, d)
            if g.args:
                stack.extend((a, d + 1) for a in g.args)
            continue
        best = max(best, d)
        stack.extend((k, d + 1) for k in g.kids)
        stack.extend((t, d + 1) for t in g.terms)
    return best


def parse_fol(text: str, allow_empty: bool = False, budget=None) -> ParseResult:
    """Parse FOLIO FOL text. Never raises on any text: failures come back as ParseResult(formula=None,
    error=...), a formula nested more than MAX_DEPTH levels as the error TOO_DEEP. Linear in the text's length;
    `budget` (a trace.Budget) is checked as it goes and raises VerifyTimeout when spent."""
    if not isinstance(text, str):
        return ParseResult(str(text), None, f"not a string: {type(text).__name__}")
    repairs: list[str] = []
    s = text.strip()
    if not s:
        if allow_empty:
            return ParseResult(text, Formula("true"), None, ["empty"])
        return ParseResult(text, None, "empty formula")
    if s.endswith("."):  # an identifier never ends with '.', so a final '.' is punctuation
        s = s.rstrip(".").rstrip()
        repairs.append("trailing_period")
    t = _WORD_Q.sub(lambda m: "∀" if m.group(1) == "forall" else "∃", s)
    for a, b in _ASCII:
        t = t.replace(a, b)
    if t.replace(" ", "") != s.replace(" ", ""):
        repairs.append("ascii_ops")
    try:
        toks = _tokenize(t, repairs, budget)
        if not toks:
            raise FolParseError("empty formula")
        p = _Parser(toks, repairs, budget)
        f = p.expr(0)
        if p.i != len(toks):
            raise FolParseError(f"unexpected {toks[p.i][1]!r} after the formula")
        if depth(f) > MAX_DEPTH:  # left-associative ⊕ / ↔ chains nest without recursing in the parser
            raise FolParseError(TOO_DEEP)
    except FolParseError as e:
        return ParseResult(text, None, str(e), repairs)
    except RecursionError:  # not reached within MAX_DEPTH; kept so that text can never raise
        return ParseResult(text, None, TOO_DEEP, repairs)
    return ParseResult(text, f, None, list(dict.fromkeys(repairs)))


# ------------------------------------------------------------------------------------------------ to z3


class Z3Builder:
    """Converts formulas to z3 over one uninterpreted sort, sharing symbols across formulas of a problem.

    `budget` (a trace.Budget or None) is checked every 1024 nodes, so building a huge formula counts against
    the verification's time. copy() gives a builder with the same symbols whose new ones stay its own."""

    def __init__(self, ctx: z3.Context | None = None, budget=None):
        self.ctx = ctx or z3.main_ctx()
        self.sort = z3.DeclareSort("Object", self.ctx)
        self.preds: dict[tuple[str, int], z3.FuncDeclRef] = {}
        self.funcs: dict[tuple[str, int], z3.FuncDeclRef] = {}
        self.consts: dict[str, z3.ExprRef] = {}
        self._fresh = 0
        self._nodes = 0
        self.budget = budget

    def copy(self, budget=None) -> "Z3Builder":
        b = Z3Builder.__new__(Z3Builder)
        b.ctx, b.sort, b._fresh, b._nodes, b.budget = self.ctx, self.sort, self._fresh, 0, budget
        b.preds, b.funcs, b.consts = dict(self.preds), dict(self.funcs), dict(self.consts)
        return b

    def const(self, name: str) -> z3.ExprRef:
        if name not in self.consts:
            self.consts[name] = z3.Const(name, self.sort)
        return self.consts[name]

    def term(self, t: Term, env: dict) -> z3.ExprRef:
        if t.args is None:
            return env[t.name] if t.name in env else self.const(t.name)
        key = (t.name, len(t.args))
        if key not in self.funcs:
            self.funcs[key] = z3.Function(f"{t.name}/fn{len(t.args)}", *([self.sort] * (len(t.args) + 1)))
        return self.funcs[key](*[self.term(a, env) for a in t.args])

    def pred(self, name: str, arity: int):
        key = (name, arity)
        if key not in self.preds:
            if arity == 0:
                self.preds[key] = z3.Bool(f"{name}/0", self.ctx)
            else:
                self.preds[key] = z3.Function(f"{name}/{arity}", *([self.sort] * arity), z3.BoolSort(self.ctx))
        return self.preds[key]

    def build(self, f: Formula, env: dict | None = None) -> z3.BoolRef:
        env = env or {}
        self._nodes += 1
        if self.budget is not None and not self._nodes & 1023:
            self.budget.check()
        op = f.op
        if op == "true":
            return z3.BoolVal(True, self.ctx)
        if op == "atom":
            p = self.pred(f.name, len(f.terms))
            return p if not f.terms else p(*[self.term(t, env) for t in f.terms])
        if op == "eq":
            return self.term(f.terms[0], env) == self.term(f.terms[1], env)
        if op == "not":
            return z3.Not(self.build(f.kids[0], env))
        if op == "and":
            return z3.And(*[self.build(k, env) for k in f.kids])
        if op == "or":
            return z3.Or(*[self.build(k, env) for k in f.kids])
        if op == "xor":
            return z3.Xor(self.build(f.kids[0], env), self.build(f.kids[1], env))
        if op == "implies":
            return z3.Implies(self.build(f.kids[0], env), self.build(f.kids[1], env))
        if op == "iff":
            return self.build(f.kids[0], env) == self.build(f.kids[1], env)
        if op in ("forall", "exists"):
            self._fresh += 1
            v = z3.Const(f"{f.name}!{self._fresh}", self.sort)
            body = self.build(f.kids[0], {**env, f.name: v})
            return z3.ForAll([v], body) if op == "forall" else z3.Exists([v], body)
        raise ValueError(f"unknown op {op}")
