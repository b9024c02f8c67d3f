"Shared fixtures: one demo corpus and its reformat output per test session (small, real, seconds)."
import subprocess, sys, json
from pathlib import Path
import pytest

BIN = Path(sys.executable).parent

def run_cli(*args, check=True):
    "Run the installed `mirastral` console script; returns the CompletedProcess."
    r = subprocess.run([str(BIN/'mirastral'), *map(str, args)], capture_output=True, text=True)
    if check and r.returncode:
        raise AssertionError(f"mirastral {' '.join(map(str, args))} failed ({r.returncode}):\n{r.stdout}\n{r.stderr}")
    return r

@pytest.fixture(scope='session')
def demo(tmp_path_factory):
    "A 400-session demo corpus, reformatted through the CLI: (raw_dir, out_dir, report)."
    w = tmp_path_factory.mktemp('demo')
    run_cli('demo-data', w/'raw', '--n', 400)
    run_cli('reformat', w/'raw', w/'out', '--no-progress')
    return w/'raw', w/'out', json.loads((w/'out'/'report.json').read_text())

@pytest.fixture(scope='session')
def tiny_run(demo, tmp_path_factory):
    "A finished 8-step LoRA run of the embedded model on the demo data (OUTPUT_DIR): shared, so never modify it."
    out = tmp_path_factory.mktemp('tiny_run')/'run'
    run_cli('train', '-p', 'data_dir', demo[1], '-p', 'output_dir', out, '-p', 'max_train_samples', 40,
            '-p', 'max_eval_samples', 6, '-p', 'max_steps', 8, '-p', 'per_device_train_batch_size', 4,
            '-p', 'report_to', 'none', '--no-progress')
    return out
