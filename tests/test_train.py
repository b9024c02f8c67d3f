"Training end to end: resume after a kill, papermill, and the job script run without a scheduler."
import json, os, signal, subprocess, sys, time
from pathlib import Path
import pytest
from mirastral.data import read_jsonl
from conftest import BIN, run_cli

ROOT = Path(__file__).resolve().parents[1]
SMALL = dict(max_train_samples=40, max_eval_samples=6, max_steps=16, save_steps=4, eval_steps=8, logging_steps=1,
             report_to='none', per_device_train_batch_size=4, lora_dropout=0.0)

def params(out, data, **kw):
    return [x for k, v in {**SMALL, 'data_dir': data, 'output_dir': out, **kw}.items() for x in ('-p', k, str(v))]

def train_losses(out):
    return {r['step']: r['loss'] for r in read_jsonl(Path(out)/'results'/'log.jsonl') if 'loss' in r}

@pytest.fixture(scope='module')
def data(demo):
    return demo[1]

@pytest.fixture(scope='module')
def uninterrupted(data, tmp_path_factory):
    out = tmp_path_factory.mktemp('full')/'run'
    run_cli('train', *params(out, data), '--no-progress')
    return out

def test_kill_then_resume_matches_an_uninterrupted_run(data, uninterrupted, tmp_path):
    out = tmp_path/'run'
    p = subprocess.Popen([str(BIN/'mirastral'), 'train', *params(out, data), '--no-progress'],
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.time() + 300
    while not (out/'results'/'checkpoint-4').exists():  # killed mid-run, after the first regular checkpoint
        assert p.poll() is None and time.time() < deadline, p.stdout.read() if p.poll() is not None else 'timeout'
        time.sleep(0.2)
    p.send_signal(signal.SIGTERM)
    log = p.communicate(timeout=300)[0]
    assert p.returncode == 99, log                       # 'checkpoint saved, re-run me'
    stopped = json.loads((out/'results'/'training_summary.json').read_text())
    assert stopped['status'].startswith('interrupted by SIGTERM') and 4 <= stopped['steps'] < 16, stopped
    assert (out/'results'/f"checkpoint-{stopped['steps']}").exists()
    assert not (out/'final_model').exists()
    r = run_cli('train', *params(out, data), '--no-progress')  # the same command resumes
    assert f"resuming from {out/'results'/'checkpoint-'}" in r.stdout
    done = json.loads((out/'final_model'/'training_summary.json').read_text())
    assert done['status'] == 'finished' and done['steps'] == 16 and done['resumed_from']
    a, b = train_losses(uninterrupted), train_losses(out)
    assert sorted(a) == sorted(b) == list(range(1, 17))   # one continuous curve, no gap, no repeated steps
    for step in a: assert b[step] == pytest.approx(a[step], rel=2e-3), (step, a[step], b[step])
    r = run_cli('train', *params(out, data), '--no-progress')  # and once more: a finished run trains nothing
    assert 'already finished with this config' in r.stdout and train_losses(out) == b

def test_papermill_runs_the_training_notebook(data, tmp_path):
    out = tmp_path/'run'
    cmd = [str(BIN/'papermill'), str(ROOT/'nbs'/'03_train.ipynb'), str(tmp_path/'executed.ipynb'), '-k', 'mirastral',
           '--log-output', '--cwd', str(ROOT), *params(out, data, max_steps=4)]
    r = subprocess.run(cmd, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-3000:]
    s = json.loads((out/'final_model'/'training_summary.json').read_text())
    assert s['steps'] == 4 and s['eval_loss_last'] < s['eval_loss_first']
    assert 'validation loss' in r.stderr + r.stdout        # --log-output puts cell output in the job log

def test_papermill_failure_is_a_nonzero_exit_naming_the_cell(tmp_path):
    cmd = [str(BIN/'papermill'), str(ROOT/'nbs'/'03_train.ipynb'), str(tmp_path/'executed.ipynb'), '-k', 'mirastral',
           '--cwd', str(ROOT), '-p', 'data_dir', str(tmp_path/'missing'), '-p', 'output_dir', str(tmp_path/'o')]
    r = subprocess.run(cmd, capture_output=True, text=True)
    assert r.returncode != 0 and 'FileNotFoundError' in r.stderr and 'mirastral reformat' in r.stderr

def test_job_script_runs_locally_without_a_scheduler(data, tmp_path):
    env = {**os.environ, 'OUTPUT_DIR': str(tmp_path/'run'), 'DATA_DIR': str(data), 'MIRASTRAL_VENV': str(Path(sys.executable).parents[1]),
           'MIRASTRAL_PARAMS': ' '.join(x for k, v in {**SMALL, 'max_steps': 4}.items() for x in ('-p', k, str(v)))}
    r = subprocess.run(['bash', str(ROOT/'hpc'/'run_finetune.sh')], capture_output=True, text=True, env=env, cwd=ROOT)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert (tmp_path/'run'/'final_model'/'adapter_model.safetensors').exists()
    assert list((tmp_path/'run'/'results').glob('03_train.*.ipynb'))   # the executed notebook sits with the checkpoints
    assert '[mirastral] finished' in r.stdout
