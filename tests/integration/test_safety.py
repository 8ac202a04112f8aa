"""Hostile decks: nothing runs and nothing outside the deck's folder is read or written.

Every hostile deck goes through `run_untrusted` (what `spu simulate` calls) with BOTH
back-ends. A spy around the back-end proves ngspice was never started, and marker files
prove the shell commands did not run. The positive tests show that the same decks DO act
when `allow_unsafe=True`, so the refusals are not vacuous.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np
import pytest

from spu_circuits.backends import Op, Tran
from spu_circuits.backends.base import Backend
from spu_circuits.errors import UnsafeDeckError
from spu_circuits.safety import check_deck_file, check_deck_safety, run_untrusted

from ..conftest import HAVE_NGSPICE

pytestmark = pytest.mark.skipif(not HAVE_NGSPICE, reason="ngspice is not installed")

BODY = "v1 a 0 1\nr1 a b 1k\nr2 b 0 1k\n"
FS_MODEL = ("amploffset=[0] amplscale=[1] timeoffset=0 timescale=1 timerelative=false "
            "amplstep=false")


class Spy(Backend):
    """Wraps a real back-end and counts the runs it was asked to do."""

    def __init__(self, inner: Backend):
        super().__init__(inner.timeout_s)
        self.inner, self.calls = inner, 0
        self.name = inner.name

    def run(self, deck_text, analysis, *, cwd=None, deck_name=None):
        self.calls += 1
        return self.inner.run(deck_text, analysis, cwd=cwd, deck_name=deck_name)


@pytest.fixture(params=["cli", "shared"])
def spy(request, backends):
    return Spy(backends[request.param])


@pytest.fixture
def site(tmp_path):
    """tmp/deck (the deck's folder) and tmp/outside (a folder it must not touch)."""
    deck, outside = tmp_path / "deck", tmp_path / "outside"
    deck.mkdir()
    outside.mkdir()
    (outside / "outside.cir").write_text("* outside\nr9 b 0 1k\n")
    (outside / "outside.txt").write_text("0 1\n1e-3 1\n")
    return deck, outside


def write_deck(folder: Path, text: str, name: str = "deck.cir") -> Path:
    path = folder / name
    path.write_text(text)
    return path


def assert_refused(spy, path: Path, line: int | None, *fragments: str, analysis=None):
    with pytest.raises(UnsafeDeckError) as ei:
        run_untrusted(path, analysis or Op(), spy)
    msg = str(ei.value)
    assert spy.calls == 0, "the back-end was started for a refused deck"
    assert "\n" not in msg
    if line is not None:
        assert f"line {line}:" in msg, msg
    for frag in fragments:
        assert frag.lower() in msg.lower(), msg
    assert "--allow-unsafe" in msg
    return msg


# ------------------------------------------------------------------------- control blocks


def test_control_shell_touch_refused_and_file_not_created(site, spy):
    deck, outside = site
    marker = outside / "PWNED"
    path = write_deck(deck, f"title\n{BODY}.control\nshell touch {marker}\n.endc\n.end\n")
    assert_refused(spy, path, 5, ".control")
    assert not marker.exists()


def test_allow_unsafe_runs_the_shell_command(site, spy):
    """The flag works: the same deck really creates the file (so refusing it matters)."""
    deck, outside = site
    marker = outside / "PWNED"
    path = write_deck(deck, f"title\n{BODY}.control\nshell touch {marker}\n.endc\n.end\n")
    try:
        run_untrusted(path, Op(), spy, allow_unsafe=True)
    except Exception:  # noqa: BLE001 - the control block replaces the analysis; no results
        pass
    assert spy.calls == 1
    assert marker.exists()


#: hostile decks that run commands: (text, line refused, fragment of the message)
COMMAND_DECKS = [
    ("t\n{B}.CONTROL\nshell touch {M}\n.ENDC\n", 5, ".control"),
    ("t\n{B}   \t.Control\nshell touch {M}\n.endc\n", 5, ".control"),
    ("t\n{B}.controlxyz\nshell touch {M}\n.endc\n", 5, ".control"),  # ngspice: prefix match
    ("t\n.subckt sub p q\nr1 p q 1k\n.control\nshell touch {M}\n.endc\n.ends\n{B}", 4,
     ".control"),
    ("t\n{B}.op\n.end\n.control\nshell touch {M}\n.endc\n", 7, ".control"),  # after .end
    ("t\n{B}*# shell touch {M}\n", 5, "*#"),              # legacy command comment line
    ("*ng_script\nshell touch {M}\n", 1, "ng_script"),    # the whole file is a script
    ("*NG_SCRIPT\nshell touch {M}\n", 1, "ng_script"),
    ("t\n{B}shell touch {M}\n", 5, "shell"),
    ("t\n{B}.endc\n", 5, ".endc"),
]


@pytest.mark.parametrize("text, line, frag", COMMAND_DECKS)
def test_command_constructs_refused(site, spy, text, line, frag):
    deck, outside = site
    marker = outside / "PWNED"
    path = write_deck(deck, text.format(B=BODY, M=marker))
    assert_refused(spy, path, line, frag)
    assert not marker.exists() and not (outside / "pwned").exists()


def test_wrdata_outside_refused_and_nothing_written(site, spy):
    deck, outside = site
    target = outside / "outside_out.txt"
    path = write_deck(deck, f"t\n{BODY}.control\nrun\nwrdata {target} v(a)\n.endc\n")
    assert_refused(spy, path, 5, ".control")
    assert not target.exists()


@pytest.mark.parametrize("cmd", ["wrdata {T} v(a)", "write {T} v(a)", "source {T}",
                                 "codemodel {T}", "load {T}", "cd /", "set sourcepath=( / )",
                                 "hardcopy {T} v(a)", "print v(a) > {T}", "sysinfo",
                                 "pre_osdi {T}"])
def test_control_commands_refused_anywhere(site, spy, cmd):
    deck, outside = site
    target = outside / "cmd_target"
    path = write_deck(deck, f"t\n{BODY}{cmd.format(T=target)}\n")
    word = cmd.split()[0]
    assert_refused(spy, path, 5, word)
    assert not target.exists()


@pytest.mark.parametrize("sep", ["\u2028", "\u2029", "\x85", "\r", "\x0b", "\x1e"])
def test_unicode_line_separator_trick(site, spy, sep):
    """str.splitlines() starts new lines at U+2028 & co., so a `.control` block can hide
    inside what ngspice's own reader sees as one line: refused. (The back-ends used to split
    decks so and ran the hidden block; they now hand ngspice the lines it reads itself.)"""
    deck, outside = site
    marker = outside / "PWNED"
    hidden = sep.join(["r3 a 0 1k", ".control", f"shell touch {marker}", ".endc"])
    path = write_deck(deck, f"t\n{BODY}{hidden}\n")
    if sep == "\r":      # read_text() already turns a lone CR into a line break
        assert_refused(spy, path, 6, ".control")
    else:
        assert_refused(spy, path, 5, f"U+{ord(sep):04X}")
    assert not marker.exists()
    if sep == "\u2028":   # the back-ends no longer split there: even with the flag it stays
        try:              # one element line (the trick ran the command while they did)
            run_untrusted(path, Op(), spy, allow_unsafe=True)
        except Exception:  # noqa: BLE001,S110 - ngspice may reject the odd element line
            pass
        assert not marker.exists()


def test_ng_script_after_blank_line_refused(site, spy):
    """PySpice drops blank lines, so `*ng_script` on line 2 becomes the shared-mode title."""
    deck, outside = site
    marker = outside / "PWNED"
    path = write_deck(deck, f"\n*ng_script\necho {marker}\n")
    assert_refused(spy, path, 2, "ng_script")


def test_crlf_deck_runs(site, spy):
    deck, _ = site
    path = deck / "crlf.cir"
    path.write_bytes(f"t\n{BODY}.op\n.end\n".replace("\n", "\r\n").encode())
    res = run_untrusted(path, Op(), spy)
    assert res.voltages(["b"])[0] == pytest.approx(0.5, rel=1e-9)


def test_long_title_trick_refused(site, spy):
    """ngspice 39 reads the title with a 5000-byte buffer: the rest becomes a new line."""
    deck, outside = site
    marker = outside / "PWNED"
    path = write_deck(deck, "t" * 4999 + f".control\nshell touch {marker}\n.endc\n{BODY}")
    assert_refused(spy, path, 1, "title")
    assert not marker.exists()


def test_control_character_refused(site, spy):
    deck, _ = site
    path = write_deck(deck, f"t\n{BODY}r3 a 0 1k\x0c.control\n")
    assert_refused(spy, path, 5, "U+000C")


def test_print_redirect_refused(site, spy):
    deck, outside = site
    path = write_deck(deck, f"t\n{BODY}.print tran v(a) > {outside / 'p.txt'}\n")
    assert_refused(spy, path, 5, "redirection")


def test_spiceinit_beside_deck_refused(site, spy):
    """ngspice runs ./.spiceinit (or ./spice.rc) on start: the CLI back-end starts there."""
    deck, outside = site
    marker = outside / "PWNED"
    (deck / ".spiceinit").write_text(f"shell touch {marker}\n")
    path = write_deck(deck, f"t\n{BODY}")
    assert_refused(spy, path, None, ".spiceinit")
    assert not marker.exists()


# ------------------------------------------------------------------------- file references


#: hostile decks that read files outside their folder ({O}: that folder)
INCLUDE_DECKS = [
    ("t\n{B}.include /etc/passwd\n", 5, "/etc/passwd"),
    ("t\n{B}.inc {O}/outside.cir\n", 5, "outside the deck's folder"),
    ("t\n{B}.include ../outside/outside.cir\n", 5, "outside the deck's folder"),
    ("t\n{B}.include sub/../../outside/outside.cir\n", 5, "outside the deck's folder"),
    ("t\n{B}  .Include ../outside/outside.cir\n", 5, "outside"),
    ("t\n{B}.INC ../outside/outside.cir\n", 5, "outside"),
    ("t\n{B}.incxyz ../outside/outside.cir\n", 5, "outside"),          # prefix match
    ("t\n{B}.include \"../outside/outside.cir\"\n", 5, "outside"),
    ("t\n{B}.include '../outside/outside.cir'\n", 5, "outside"),
    ("t\n{B}.include ~/outside.cir\n", 5, "outside"),
    ("t\n{B}.lib ../outside/outside.cir tt\n", 5, "outside"),
    ("t\n{B}.lib /etc/passwd\n", 5, "/etc/passwd"),
    ("t\n{B}.include\n* a comment\n\n+ ../outside/outside.cir\n", 5, "outside"),
    ("t\n{B}.include nothere.cir\n", 5, "not in the deck's folder"),
    ("t\n{B}.include {{name}}.cir\n", 5, "not a plain path"),
    ("t\n{B}.include\n", 5, "without a plain file name"),
    (".include ../outside/outside.cir\n{B}", 1, "outside"),  # ngspice includes from line 1
]


@pytest.mark.parametrize("text, line, frag", INCLUDE_DECKS)
def test_outside_includes_refused(site, spy, text, line, frag):
    deck, outside = site
    (deck / "sub").mkdir()
    path = write_deck(deck, text.format(B=BODY, O=outside))
    assert_refused(spy, path, line, frag)


def test_symlink_in_deck_folder_pointing_outside_refused(site, spy):
    deck, outside = site
    (deck / "link.cir").symlink_to(outside / "outside.cir")
    (deck / "linkdir").symlink_to(outside, target_is_directory=True)
    for inc in ("link.cir", "linkdir/outside.cir"):
        path = write_deck(deck, f"t\n{BODY}.include {inc}\n")
        msg = assert_refused(spy, path, 5, "outside the deck's folder")
        assert str(outside.resolve() / "outside.cir") in msg


def test_proc_self_links_refused(site, spy, monkeypatch):
    """/proc/self/cwd is the deck folder for ngspice but our own cwd for the checker: a link
    through it must not be judged from our side (here: a decoy makes it look inside)."""
    deck, outside = site
    (deck / "a").mkdir()
    (deck / "outside").mkdir()
    (deck / "outside" / "outside.cir").write_text("* decoy\n")
    (deck / "here").symlink_to("/proc/self/cwd")
    monkeypatch.chdir(deck / "a")
    for inc in ("here/../outside/outside.cir", "/proc/self/cwd/../outside/outside.cir"):
        path = write_deck(deck, f"t\n{BODY}.include {inc}\n")
        assert_refused(spy, path, 5, "/proc")


def test_resolver_agrees_with_realpath(tmp_path):
    from spu_circuits.safety import _resolve_path

    (tmp_path / "d" / "e").mkdir(parents=True)
    (tmp_path / "f.txt").write_text("x")
    (tmp_path / "d" / "rel").symlink_to("../f.txt")
    (tmp_path / "d" / "up").symlink_to("e/..")
    (tmp_path / "d" / "abs").symlink_to(tmp_path / "d" / "e")
    (tmp_path / "d" / "loop").symlink_to("loop")
    for p in ["d/rel", "d/up/rel", "d/abs/../rel", "d/e/../../f.txt", "d/missing/../x",
              "d/abs/./nothere"]:
        full = str(tmp_path / p)
        assert _resolve_path(full) == Path(os.path.realpath(full)), p
    assert _resolve_path(str(tmp_path / "d" / "loop")) is None
    assert _resolve_path("/proc/self/cwd") is None


def test_nested_include_outside_refused(site, spy):
    """An allowed include may not itself reach out (checked recursively, named by file)."""
    deck, outside = site
    marker = outside / "PWNED"
    (deck / "inner.cir").write_text("* inner\n.include ../outside/outside.cir\n")
    (deck / "evil.cir").write_text(f"* evil\n.control\nshell touch {marker}\n.endc\n")
    path = write_deck(deck, f"t\n{BODY}.include inner.cir\n")
    msg = assert_refused(spy, path, 2, "outside")
    assert "inner.cir (included from line 5), line 2:" in msg
    path = write_deck(deck, f"t\n{BODY}.include evil.cir\n")
    assert_refused(spy, path, 2, ".control")
    assert not marker.exists()


def test_include_cycle_refused(site, spy):
    """A self-including file makes ngspice 39 overflow its stack (SIGSEGV)."""
    deck, _ = site
    (deck / "loop.cir").write_text("* loop\n.include loop.cir\n")
    path = write_deck(deck, f"t\n{BODY}.include loop.cir\n")
    assert_refused(spy, path, 2, "cycle")


def test_filesource_outside_refused(site, spy):
    deck, outside = site
    for fname in ("../outside/outside.txt", str(outside / "outside.txt"), "/etc/passwd"):
        path = write_deck(deck, f"t\n{BODY}a1 %vd([n1 0]) src\nr5 n1 0 1k\n"
                                f".model src filesource(file=\"{fname}\" {FS_MODEL})\n")
        assert_refused(spy, path, 7, "file=", analysis=Tran(1e-5, 1e-4))


#: filesource models whose file= hides behind a continuation
FILESOURCE_TRICKS = [
    # `+` continuation across a comment and a blank line (ngspice joins them)
    f".model src filesource({FS_MODEL}\n* hidden\n\n+ file=\"../outside/outside.txt\")\n",
    # a line ending in two backslashes continues onto the next one
    f".model src filesource({FS_MODEL} \\\\\nfile=\"../outside/outside.txt\")\n",
    # the back-end drops analysis cards: the `+` line then continues the .model line
    f".model src filesource({FS_MODEL}\n.tran 1u 1m\n+ file=\"../outside/outside.txt\")\n",
]


def test_filesource_continuation_tricks_refused(site, spy):
    deck, _ = site
    for trick in FILESOURCE_TRICKS:
        path = write_deck(deck, f"t\n{BODY}a1 %vd([n1 0]) src\nr5 n1 0 1k\n{trick}")
        assert_refused(spy, path, 7, "outside", analysis=Tran(1e-5, 1e-4))


def test_filesource_name_is_lower_cased_like_ngspice(site, spy):
    """XSPICE opens the lower-cased name: a symlink `x.txt` beside a real `X.txt` is caught."""
    deck, outside = site
    (deck / "X.txt").write_text("0 1\n1e-3 1\n")
    (deck / "x.txt").symlink_to(outside / "outside.txt")
    path = write_deck(deck, f"t\n{BODY}a1 %vd([n1 0]) src\nr5 n1 0 1k\n"
                            f".model src filesource(file=\"X.txt\" {FS_MODEL})\n")
    assert_refused(spy, path, 7, "outside", analysis=Tran(1e-5, 1e-4))


def test_filesource_folder_refused(site, spy):
    """ngspice 39 reads a folder given as filesource file silently as 0 V."""
    deck, _ = site
    (deck / "noise.txt").mkdir()
    path = write_deck(deck, f"t\n{BODY}a1 %vd([n1 0]) src\nr5 n1 0 1k\n"
                            f".model src filesource(file=\"noise.txt\" {FS_MODEL})\n")
    assert_refused(spy, path, 7, "not a regular file", analysis=Tran(1e-5, 1e-4))


@pytest.mark.parametrize("model", ["d_process", "d_cosim"])
def test_program_running_models_refused(site, spy, model):
    deck, _ = site
    path = write_deck(deck, f"t\n{BODY}.model p {model}(process_file=\"prog\")\n")
    assert_refused(spy, path, 5, model)


# ------------------------------------------------------------------------------ allowed


def test_include_in_same_folder_runs(site, spy):
    deck, _ = site
    (deck / "part.cir").write_text("* part: loads node b\nr3 b 0 1k\n")
    (deck / "sub").mkdir()
    (deck / "sub" / "more.cir").write_text("* nested, resolved against sub/\n.include m2.cir\n")
    (deck / "sub" / "m2.cir").write_text("r4 b 0 1meg\n")
    (deck / "inside_link.cir").symlink_to(deck / "part.cir")
    path = write_deck(deck, f"t\n{BODY}.include part.cir\n.INCLUDE \"sub/more.cir\"\n"
                            ".options reltol=1e-9\n.save all\n.op\n.end\n")
    text, refs = check_deck_file(path)
    assert refs == [(deck / "part.cir").resolve(), (deck / "sub/more.cir").resolve(),
                    (deck / "sub/m2.cir").resolve()]
    res = run_untrusted(path, Op(), spy)
    assert spy.calls == 1
    g = 1 / 1e3 + 1 / 1e3 + 1 / 1e6        # r2 ∥ r3 ∥ r4 against r1
    want = (1 / g) / (1e3 + 1 / g)
    assert res.voltages(["b"])[0] == pytest.approx(want, rel=1e-6)


def test_outside_include_is_read_only_with_allow_unsafe(site, spy):
    """The outside file really would be read: with the flag its resistor changes V(b)."""
    deck, _ = site
    path = write_deck(deck, f"t\n{BODY}.include ../outside/outside.cir\n")
    with pytest.raises(UnsafeDeckError):
        run_untrusted(path, Op(), spy)
    res = run_untrusted(path, Op(), spy, allow_unsafe=True)
    assert res.voltages(["b"])[0] == pytest.approx(1 / 3, rel=1e-6)   # r2 ∥ r9


def test_filesource_beside_deck_runs(site, spy):
    """The reproducible-noise decks' layout: noise file beside the deck is allowed."""
    deck, _ = site
    (deck / "noise_0.txt").write_text("0 0.5\n1e-3 0.5\n")
    path = write_deck(deck, f"t\n{BODY}a1 %vd([n1 0]) src\nr5 n1 0 1k\n"
                            f".model src filesource(file=\"noise_0.txt\" {FS_MODEL})\n")
    assert check_deck_safety(path.read_text(), deck) == [(deck / "noise_0.txt").resolve()]
    res = run_untrusted(path, Tran(1e-5, 1e-4, uic=True), spy)
    assert np.allclose(res.voltages(["n1"])[1:, 0], 0.5)


def test_compiled_file_noise_deck_passes(tmp_path):
    from spu_circuits.compiler import compile_system
    from spu_circuits.compiler.noise import NoiseSpec
    from spu_circuits.system import LinearSystem

    sysm = LinearSystem.from_arrays(np.array([[2.0, -0.5], [-0.5, 1.0]]), np.array([1.0, 0.0]))
    cc = compile_system(sysm, "dense", noise=NoiseSpec(kind="file", kappa0=0.1,
                                                       duration_tau=2.0))
    path = cc.write(tmp_path / "out", "spu")
    _, refs = check_deck_file(path)
    assert refs and all(r.parent == path.parent.resolve() for r in refs)


def test_allow_unsafe_passes_everything(site):
    deck, outside = site
    text = "*ng_script\n.control\nshell touch x\n.endc\n.include /etc/passwd\n*# echo\n"
    refs = check_deck_safety(text, deck, allow_unsafe=True)
    assert refs == []
    (deck / "part.cir").write_text("r3 b 0 1k\n")
    refs = check_deck_safety(f"t\n.include part.cir\n.include {outside}/outside.cir\n", deck,
                             allow_unsafe=True)
    assert refs == [(deck / "part.cir").resolve()]


def test_out_dir_is_a_second_allowed_folder(site):
    deck, outside = site
    text = f"t\n{BODY}.include {outside}/outside.cir\n"
    with pytest.raises(UnsafeDeckError):
        check_deck_safety(text, deck)
    assert check_deck_safety(text, deck, out_dir=outside) == [(outside / "outside.cir").resolve()]


def test_messages_are_one_line_with_line_numbers(site):
    deck, _ = site
    text = f"title\n{BODY}* ok\n\n.control\nshell rm -rf ~\n.endc\n"
    with pytest.raises(UnsafeDeckError, match=re.escape("line 7: `.control` block")):
        check_deck_safety(text, deck)
    path = write_deck(deck, text)
    with pytest.raises(UnsafeDeckError) as ei:
        check_deck_file(path)
    assert str(ei.value).startswith(f"{path}: line 7:")
    assert os.linesep not in str(ei.value)


@pytest.mark.parametrize("command", [["simulate"], ["validate", "--report", "REPORT"]])
def test_cli_refuses_hostile_deck(tmp_path, command):
    """`spu simulate` and `spu validate` refuse a deck into which a shell command was inserted:
    one line naming it, exit 2, nothing runs, no report written."""
    from click.testing import CliRunner

    from spu_circuits.compiler import compile_system
    from spu_circuits.system import LinearSystem
    from spu_tngd.cli import main

    marker = tmp_path / "pwned"
    deck = compile_system(LinearSystem.from_arrays(np.eye(2)), "ideal").write(tmp_path, "d")
    lines = deck.read_text().splitlines()
    lines[-1:] = [".control", f"shell touch {marker}", ".endc", ".end"]
    deck.write_text("\n".join(lines) + "\n")
    if command[0] == "simulate":  # simulate refuses an edited deck with its sidecar earlier
        deck.with_suffix(".json").unlink()
    n = len(lines) - 3  # line number of .control
    args = [a.replace("REPORT", str(tmp_path / "rep")) for a in command]
    r = CliRunner().invoke(main, [args[0], str(deck), *args[1:]])
    assert r.exit_code == 2, r.output
    assert f"line {n}: `.control` block" in r.output and "--allow-unsafe" in r.output
    assert "Traceback" not in r.output
    assert not marker.exists() and not (tmp_path / "rep").exists()
