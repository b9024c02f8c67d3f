"""Fault cases for `tests/test_faults.py`: one table (`CASES`) per area, in `tests/faults/<area>.py`.

A case is what a user does wrong (or what goes wrong around them) and what must happen: the right result (status 0)
or one clear line `mirastral CMD: error: ...` (status 2), with nothing lost. The harness runs each case in a fresh
temporary directory and checks the status, the message and, where given, the outputs."""
from __future__ import annotations
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

@dataclass
class Ctx:
    """What a case can use: `tmp` (its own empty folder), `demo` ((raw_dir, out_dir, report) of a small reformatted demo
    corpus: never modify it) and `run()` (a finished tiny training run, copied into `tmp` on first use: cases may damage
    their copy)."""
    tmp: Path
    demo: tuple
    _run: Path
    def run(self)->Path:
        import shutil
        dst = self.tmp/'run'
        if not dst.exists(): shutil.copytree(self._run, dst, symlinks=True)
        return dst

@dataclass
class Result:
    status: int
    out: str
    err: str

@dataclass
class Case:
    name: str                                     # unique, '<area>-<what>'
    argv: Callable[[Ctx], list]                   # the arguments after `mirastral`
    status: int                                   # expected exit status: 0 right result, 2 clear error
    message: str = ''                             # fragment of the error line (status 2) or of stdout (status 0)
    check: Callable[[Ctx, Result], None]|None = None  # further assertions: outputs intact, nothing lost, ...
    setup: Callable[[Ctx], None]|None = None      # prepare inputs in ctx.tmp before the command runs
    stdin: str|None = None                        # text on standard input
    subprocess: bool = False                      # run the console script in its own process
    def __repr__(self): return self.name
