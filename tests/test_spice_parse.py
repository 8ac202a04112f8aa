"""spu_circuits.spice.parse (with elements, cards, flatten): parse_deck on hand-written decks,
clear errors naming the line, and a fuzz test that only InputError ever escapes."""

from __future__ import annotations

import random

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from spu_circuits.errors import InputError
from spu_circuits.parser import (
    dc_solution,
    extract_system,
    parse_deck,
)


def test_cards_and_sources():
    text = """Title Line Kept As Is
* full-line comment
   * indented comment
.options reltol=1e-9 interp
.ic v(a)=1 v(b)=-2m
.nodeset v(a)=0.5
.global vdd
.model fsrc filesource (file="noise.txt" amploffset=[0 0] amplscale=[2e-6, -3e-6]
+ timescale=1 timerelative=false amplstep=false)
i1 0 a dc 0 trnoise(1n 1u 0 0)
i2 0 b trnoise(2n, 1u)
v1 d b dc 1 ac 1 0 sin(0 1 1k)
v2 c 0 pulse(0.3 1 0 1n 1n 1u 2u)
a1 [%i(a) %vd(b c)] fsrc
r1 a 0 1k
r2 b 0 1k
r3 c 0 1k
r4 d 0 1k
c1 a 0 1n ic=0.1
.control
run
quit 0
.endc
.save v(a)
.END
"""
    p = parse_deck(text)
    assert p.title == "Title Line Kept As Is"
    assert p.options == {"reltol": "1e-9", "interp": ""}
    assert p.ic == {"a": 1.0, "b": -2e-3} and p.nodeset == {"a": 0.5}
    assert p.globals == {"vdd"}
    assert p.control == ["run", "quit 0"]
    assert p.cards == [".save v(a)"]
    m = p.models["fsrc"]
    assert m.vector("amplscale") == [2e-6, -3e-6] and m.params["timerelative"] == "false"
    i1, i2 = p.element("i1"), p.element("i2")
    assert i1.value == 0.0 and i1.noise.na == 1e-9 and i1.noise.nt == 1e-6
    assert i2.noise.intensity == pytest.approx(4e-18 * 1e-6)
    v1, v2 = p.element("v1"), p.element("v2")
    assert v1.value == 1.0 and v1.params["ac"] == 1.0 and v1.waveform[0] == "sin"
    assert v2.value == 0.3                         # no DC value: the waveform at t = 0
    a1 = p.element("a1")
    assert a1.model == "fsrc"
    assert [(q.type, q.nodes) for q in a1.ports] == [("i", ("a",)), ("vd", ("b", "c"))]
    assert p.element("c1").params == {"ic": 0.1}
    ex = extract_system(p, noise_step_s=1e-6)
    kinds = sorted((s.element, s.port) for s in ex.noise_sources)
    assert kinds == [("a1[0]", "current"), ("a1[1]", "voltage"), ("i1", "current"),
                     ("i2", "current")]
    assert any("pulse" in w for w in ex.warnings)


def test_nested_and_local_subcircuits():
    text = """nesting
.subckt outer a b
.subckt inner p q
r9 p q 2k
.ends inner
x2 a mid inner
r1 mid b 1k
.ends outer
x1 in 0 outer
x3 in 0 outer
v1 in 0 1
"""
    p = parse_deck(text)
    names = [el.name for el in p.elements]
    assert names == ["r.x1.x2.r9", "r.x1.r1", "r.x3.x2.r9", "r.x3.r1", "v1"]
    assert p.element("r.x1.x2.r9").nodes == ("in", "x1.mid")
    dc = dc_solution(p)
    assert dc["x1.mid"] == pytest.approx(1 / 3, rel=1e-14)
    assert set(p.subckts) == {"outer"}


T = "title\n"


@pytest.mark.parametrize("body,message", [
    ("r1 a 0 1k\nl1 a b 1u\n", r"^line 3: unsupported element 'l1' \(inductor\)"),
    ("d1 a 0 dmod\n", r"^line 2: unsupported element 'd1' \(diode\)"),
    ("q1 c b e npn\n", r"line 2: unsupported element 'q1' \(bipolar transistor\)"),
    ("m1 d g s b nmos\n", r"line 2: unsupported element 'm1' \(MOSFET\)"),
    ("b1 a 0 v=v(b)*2\n", r"line 2: unsupported element 'b1' \(behavioural source\)"),
    (".param r=1k\n", r"^line 2: unsupported card \.param$"),
    (".include other.cir\n", r"^line 2: unsupported card \.include$"),
    (".frobnicate\n", r"^line 2: unknown card \.frobnicate$"),
    ("r1 a b\n", r"^line 2: resistor 'r1': missing value$"),
    ("r1 a\n", r"^line 2: resistor 'r1': missing node 2$"),
    ("r1 a b rmodel\n", r"line 2: resistor 'r1': 'rmodel' is not a value"),
    ("r1 a b 1k 2k\n", r"line 2: resistor 'r1': unexpected '2k'"),
    ("r1 a b 0\n", r"line 2: resistor 'r1': zero resistance"),
    ("c1 a 0 1n foo=2\n", r"line 2: capacitor 'c1': parameter 'foo' is not supported"),
    ("c1 a 0 1q2\n", r"line 2: capacitor 'c1': '1q2' is not a value"),
    ("e1 a 0 b\n", r"^line 2: vcvs 'e1': missing ctrl- node$"),
    ("e1 a 0 b 0\n", r"^line 2: vcvs 'e1': missing gain$"),
    ("e1 a 0 poly(1) b 0 0 1\n", r"line 2: vcvs 'e1': behavioural form 'poly'"),
    ("g1 a 0 value={v(b)}\n", r"line 2: 'g1': expressions in braces"),
    ("g1 a 0 b 0 1m extra\n", r"line 2: vccs 'g1': unexpected 'extra'"),
    ("v1 a 0 dc\n", r"line 2: voltage source 'v1': missing dc value"),
    ("v1 a 0 dc 1 2\n", r"line 2: voltage source 'v1': unexpected number '2'"),
    ("i1 a 0 trnoise(1 2 3 4 5 6 7 8)\n", r"line 2: current source 'i1': trnoise takes"),
    ("i1 a 0 trnoise(1n 1u\n", r"line 2: current source 'i1': missing '\)' closing trnoise"),
    ("i1 a 0 trrandom(1 2)\n", r"line 2: current source 'i1': source function 'trrandom'"),
    ("i1 a 0 dc one\n", r"line 2: current source 'i1': dc value: 'one' is not a number"),
    ("x1 a b nosuch\n", r"line 2: 'x1': unknown subcircuit 'nosuch'"),
    (".subckt s p q\nr1 p q 1k\n.ends\nx1 a s\n",
     r"line 5: 'x1' connects 1 node\(s\) but subcircuit 's' \(line 2\) has 2 port\(s\)"),
    (".subckt s p\nx1 p s\n.ends\nx9 a s\n", r"line 3: 'x1': recursive subcircuit 's'"),
    (".ends\n", r"^line 2: \.ends without \.subckt$"),
    (".subckt s p\nr1 p 0 1k\n", r"^line 2: \.subckt 's' has no \.ends$"),
    (".subckt s p\n.ends t\n", r"line 3: \.ends 't' closes \.subckt 's'"),
    (".subckt s p\n.op\n.ends\n", r"line 3: \.op is not allowed inside \.subckt 's'"),
    (".subckt s p r=1\n.ends\n", r"line 2: \.subckt 's': subcircuit parameters"),
    ("+ 1k\n", r"^line 2: continuation line \('\+'\) with no line to continue$"),
    ('.model m filesource(file="x.txt)\n', r"line 2: \.model: unterminated quoted string"),
    (".model m filesource(file=\n", r"line 2: \.model 'm': missing value of file"),
    (".model m filesource(amplscale=[1 2)\n", r"line 2: \.model 'm': unexpected '\)'"),
    ("r1 a 0 1k\nr1 b 0 1k\n", r"^line 3: duplicate element name 'r1'$"),
    ("f1 a 0 vx 2\n", r"line 2: 'f1': controlling voltage source 'vx' not found"),
    ("f1 a 0 rx 2\n", r"line 2: cccs 'f1': controlling element 'rx' must be a voltage"),
    ("a1 %i(n1) nomodel\n", r"line 2: 'a1': unknown model 'nomodel'"),
    ("a1 [%i(n1) nomodel\n", r"line 2: xspice instance 'a1': missing '\]'"),
    ("a1 %q(n1) m\n", r"line 2: xspice instance 'a1': unknown port type '%q'"),
    (".control\nrun\n", r"^line 2: \.control without \.endc$"),
    (".endc\n", r"^line 2: \.endc without \.control$"),
    (".ic v(a=1\n", r"line 2: \.ic: expected '\)', got '='"),
    ("r1 a 0 1k\n  \n* c\nr2 a 0 1k\n+ 2k\n", r"^line 5: resistor 'r2': unexpected '2k'"),
])
def test_parse_errors(body, message):
    with pytest.raises(InputError, match=message):
        parse_deck(T + body)


def test_empty_and_binary_decks():
    with pytest.raises(InputError, match="empty deck"):
        parse_deck("")
    with pytest.raises(InputError, match="NUL"):
        parse_deck("t\nr1 a 0 1k\x00\n")
    with pytest.raises(InputError, match="must be text"):
        parse_deck(b"t\n")  # type: ignore[arg-type]


_VALID_LINES = [
    "r1 a b 1k", "r2 b 0 2.2k m=2", "c1 a 0 1n", "c2 s o 1p ic=0", "e1 o 0 0 s 1e6",
    "g1 a 0 b 0 1m", "f1 a 0 v1 2", "h1 b 0 v1 1k", "i1 0 a dc 1u trnoise(1n 1u 0 0)",
    "v1 a 0 dc 1", "v2 b 0 pulse(0 1 0 1n 1n 1u 2u)", "i2 a 0 ac 1 sin(0 1 1k)",
    ".subckt s1 p q", ".ends", ".ends s1", "x1 a b s1", "x2 a s1",
    '.model m filesource(file="f.txt" amploffset=[0 0] amplscale=[1 2] timescale=1)',
    "a1 [%i(a) %vd(b c)] m", "a2 %i(a) m", ".options reltol=1e-9 interp", ".ic v(a)=1",
    ".op", ".tran 1n 1u", ".control", "run", ".endc", ".end", "+ 2k", "* comment",
    "r3 a b 1k ; c", "r4 a b 1k $ c", "l1 a b 1u", ".param x=1", ".global g", "c3 a b 0",
    "rr o s 1k", "vb u 0 -1", "rb u s 1k", "x3 o s s1",
]


_JUNK = list("()[]=,;$*+\"{}%~. \t0123456789eEkKmMgGuUnNpPfFtT-_/\\:abcdrxvia") + [
    "\n", "meg", "mil", "trnoise", "dc", "ac", "%vd", "%i", "gnd", "1e999", "nan", "inf",
    "1e-400", "\u00b5", "\u0663", "\r", "\x0b", "\u2028"]


def _random_deck(seed: int) -> str:
    """A near-valid deck: valid lines, mutated lines and junk lines, drawn from `seed` (cheap:
    hypothesis' own generation of nested strategies would dominate the test's run time)."""
    rng = random.Random(seed)
    lines = []
    for _ in range(rng.randrange(15)):
        kind = rng.random()
        if kind < 0.4:
            lines.append(rng.choice(_VALID_LINES))
        elif kind < 0.85:
            line = rng.choice(_VALID_LINES)
            for _ in range(rng.randrange(1, 4)):
                op, pos = rng.randrange(4), rng.randrange(len(line) + 1)
                if op == 0:
                    line = line[:pos] + rng.choice(_JUNK) + line[pos:]
                elif op == 1:
                    line = line[:pos] + line[pos + rng.randrange(1, 5):]
                elif op == 2:
                    line = line[:pos] + rng.choice(_JUNK) + line[pos + 1:]
                else:
                    line = line[:pos]
            lines.append(line)
        else:
            lines.append("".join(rng.choice(_JUNK) for _ in range(rng.randrange(12))))
    return "fuzz title\n" + "\n".join(lines) + "\n"


_deck_text = st.one_of(st.text(max_size=120),
                       st.integers(0, 2 ** 64).map(_random_deck))


@settings(max_examples=2000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_deck_text)
def test_fuzz_only_input_errors(text):
    try:
        parsed = parse_deck(text)
    except InputError:
        return
    for fn in (dc_solution, extract_system):
        try:
            with np.errstate(all="ignore"):
                fn(parsed)
        except InputError:
            pass
