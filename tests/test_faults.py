"""The fault suite: every case in `tests/faults/*.py` (`CASES`), table-driven.

Each case runs `mirastral ...` in a fresh folder (in this process, or in its own with `subprocess=True`) and must end
with the expected exit status; a status-2 case must print one line `mirastral CMD: error: ...` holding the expected
fragment, and no traceback. `check` then looks at the outputs (old outputs intact, nothing lost, ...)."""
import contextlib, importlib, io, pkgutil, subprocess, sys
import pytest
from conftest import BIN
import faults
from faults import Ctx, Result

CASES = [c for m in pkgutil.iter_modules(faults.__path__) for c in importlib.import_module(f'faults.{m.name}').CASES]

def test_case_names_are_unique():
    names = [c.name for c in CASES]
    assert len(names) == len(set(names)), sorted(n for n in names if names.count(n) > 1)

def _run(case, ctx, monkeypatch):
    argv = [str(a) for a in case.argv(ctx)]
    if case.subprocess:
        r = subprocess.run([str(BIN/'mirastral'), *argv], input=case.stdin or '', capture_output=True, text=True,
                           cwd=ctx.tmp)
        return Result(r.returncode, r.stdout, r.stderr)
    from mirastral.cli import main
    monkeypatch.chdir(ctx.tmp)
    monkeypatch.setattr(sys, 'stdin', io.StringIO(case.stdin or ''))
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try: status = main(argv)
        except SystemExit as e: status = e.code  # argparse's own usage errors
    return Result(status, out.getvalue(), err.getvalue())

@pytest.mark.parametrize('case', CASES, ids=[c.name for c in CASES])
def test_fault(case, demo, tiny_run, tmp_path, monkeypatch):
    ctx = Ctx(tmp_path, demo, tiny_run)
    if case.setup: case.setup(ctx)
    r = _run(case, ctx, monkeypatch)
    assert 'Traceback' not in r.err, r.err[-3000:]
    assert r.status == case.status, \
        f'exit {r.status}, expected {case.status}\nstdout: {r.out[-1500:]}\nstderr: {r.err[-1500:]}'
    if case.status == 2:
        errors = [l for l in r.err.splitlines() if ': error: ' in l and l.startswith('mirastral')]
        assert len(errors) == 1, r.err[-2000:]
        assert case.message in errors[0], f'{case.message!r} not in {errors[0]!r}'
    elif case.message:
        assert case.message in r.out, r.out[-2000:]
    if case.check: case.check(ctx, r)
