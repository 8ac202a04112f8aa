"""Parameter elaboration (extractor front end): a deck with `.param`, `{expressions}` and
parameterised subcircuits rewritten into a plain deck that the independent parser reads.

ngspice substitutes parameters itself when it runs a board; the extractor cannot, so this
module does what ngspice's numparam does for the subset the boards use:

- `.param name=value …` (top level; later lines may use earlier names);
- `.subckt NAME ports… params: k=v …` with defaults; instances `x… nodes… NAME k={expr} …`;
- `{expr}` anywhere in an element line: + − * / ** (ngspice `^` too), parentheses, numbers
  and parameter names, evaluated in float64.

Each instance of a parameterised subcircuit becomes its own plain subcircuit (`NAME__inst`)
with the values substituted. `drop_poles=True` removes elements named `cpole` inside
subcircuits (the parts' bandwidth lags), as the OU model of a board needs.
"""

from __future__ import annotations

import ast
import math
import operator
import re

from ..errors import InputError
from .lexer import lex

_BRACED = re.compile(r"\{([^{}]*)\}")
_OPS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul,
        ast.Div: operator.truediv, ast.Pow: operator.pow}


def evaluate(expr: str, env: dict[str, float], where: str = "") -> float:
    """Value of an arithmetic expression over numbers and names in `env` (InputError else)."""
    try:
        tree = ast.parse(expr.replace("^", "**").strip(), mode="eval")
    except SyntaxError:
        raise InputError(f"{where}cannot read the expression {{{expr}}}") from None

    def ev(node) -> float:
        if isinstance(node, ast.Expression):
            return ev(node.body)
        if isinstance(node, ast.Constant) and isinstance(node.value, int | float):
            return float(node.value)
        if isinstance(node, ast.Name):
            if node.id.lower() not in env:
                raise InputError(f"{where}parameter {node.id!r} is not defined")
            return env[node.id.lower()]
        if isinstance(node, ast.BinOp) and type(node.op) in _OPS:
            return _OPS[type(node.op)](ev(node.left), ev(node.right))
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub | ast.UAdd):
            v = ev(node.operand)
            return -v if isinstance(node.op, ast.USub) else v
        raise InputError(f"{where}unsupported expression {{{expr}}}")

    try:
        val = ev(tree)
    except ZeroDivisionError:
        raise InputError(f"{where}division by zero in {{{expr}}}") from None
    if not math.isfinite(val):
        raise InputError(f"{where}{{{expr}}} is not finite")
    return val


def _number(tok: str, env: dict[str, float], where: str) -> float:
    m = _BRACED.fullmatch(tok)
    if m:
        return evaluate(m.group(1), env, where)
    try:
        return float(tok)
    except ValueError:
        return evaluate(tok, env, where)


def _assignments(text: str, env: dict[str, float], where: str) -> dict[str, float]:
    """'a=1 b={a*2}' → {'a': 1.0, 'b': 2.0} (each may use the ones before it)."""
    out: dict[str, float] = {}
    text = re.sub(r"\s*=\s*", "=", text.strip())
    for item in text.split():
        if "=" not in item:
            raise InputError(f"{where}expected name=value, got {item!r}")
        k, v = item.split("=", 1)
        out[k.lower()] = _number(v, {**env, **out}, where)
    return out


def _subst(line: str, env: dict[str, float], where: str) -> str:
    return _BRACED.sub(lambda m: repr(evaluate(m.group(1), env, where)), line)


def elaborate(text: str, params: dict[str, float] | None = None, *,
              drop_poles: bool = False) -> str:
    """The deck with every parameter substituted (see the module docstring).

    params: extra `.param` values, applied after the deck's own `.param` lines.
    """
    lexed = lex(text)        # the cards as ngspice reads them (continuations, comments)
    lines: list[tuple[int, str]] = [(1, lexed.title)] + [(c.line, c.text)
                                                           for c in lexed.cards]
    if lexed.ended:
        lines.append((0, ".end"))
    env: dict[str, float] = {}
    for no, ln in lines[1:]:
        if ln.strip().lower().startswith(".param"):
            env.update(_assignments(ln.strip()[6:], env, f"line {no}: .param: "))
    env.update({k.lower(): float(v) for k, v in (params or {}).items()})
    # parameterised subcircuits: name → (header ports, defaults, body lines)
    subckts: dict[str, tuple[list[str], dict[str, float], list[str]]] = {}
    out: list[str] = [lines[0][1]]
    extra: list[str] = []
    i = 1
    while i < len(lines):
        no, ln = lines[i]
        low = ln.strip().lower()
        where = f"line {no}: "
        if low.startswith(".param"):
            i += 1
            continue
        if low.startswith(".subckt") and "params:" in low:
            head, _, defaults = ln.strip().partition("params:")
            toks = head.split()
            body: list[str] = []
            i += 1
            while i < len(lines) and not lines[i][1].strip().lower().startswith(".ends"):
                body.append(lines[i][1])
                i += 1
            subckts[toks[1].lower()] = (toks[2:], _assignments(defaults, env, where), body)
            i += 1
            continue
        first = low.split()[0] if low else ""
        if first.startswith("x") and "=" in ln:
            toks = re.sub(r"\s*=\s*", "=", ln.strip()).split()
            pos = [t for t in toks if "=" not in t]
            sub = pos[-1].lower()
            if sub not in subckts:
                raise InputError(f"{where}{toks[0]!r}: parameters given to subcircuit "
                                 f"{sub!r}, which has no params: header")
            ports, defaults, body = subckts[sub]
            given = _assignments(" ".join(t for t in toks if "=" in t), env, where)
            unknown = sorted(set(given) - set(defaults))
            if unknown:
                raise InputError(f"{where}{toks[0]!r}: subcircuit {sub!r} has no parameter "
                                 f"{unknown[0]!r}")
            local = {**env, **defaults, **given}
            spec_name = f"{sub}__{toks[0].lower()}"
            extra.append(f".subckt {spec_name} {' '.join(ports)}")
            for bl in body:
                name = (bl.split() or [""])[0].lower()
                if drop_poles and name == "cpole":
                    continue
                extra.append(_subst(bl, local, f"{where}{toks[0]!r}: "))
            extra.append(f".ends {spec_name}")
            out.append(" ".join([*pos[:-1], spec_name]))
            i += 1
            continue
        out.append(_subst(ln, env, where) if "{" in ln else ln)
        i += 1
    # plain subcircuit definitions go before the first element line (order is free in SPICE)
    return "\n".join([out[0], *extra, *out[1:]]) + "\n"
