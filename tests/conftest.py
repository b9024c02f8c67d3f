"Shared fixtures: one demo corpus and its reformat output per test session (small, real, seconds)."
import subprocess, sys, json
from pathlib import Path
import pytest

BIN = Path(sys.executable).parent

def run_cli(*args, check=True):
    "Run the installed `mirastral` console script; returns the CompletedProcess."
    r = subprocess.run([str(BIN/'mirastral'), *map(str, args)], capture_output=True, text=True)
    if check and r.returncode: raise AssertionError(f"mirastral {' '.join(map(str, args))} failed ({r.returncode}):\n{r.stdout}\n{r.stderr}")
    return r

@pytest.fixture(scope='session')
def demo(tmp_path_factory):
    "A 400-session demo corpus, reformatted through the CLI: (raw_dir, out_dir, report)."
    w = tmp_path_factory.mktemp('demo')
    run_cli('demo-data', w/'raw', '--n', 400)
    run_cli('reformat', w/'raw', w/'out', '--no-progress')
    return w/'raw', w/'out', json.loads((w/'out'/'report.json').read_text())
