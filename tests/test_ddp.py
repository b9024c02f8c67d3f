"""Data-parallel training on CPU: two processes (gloo) train like one process on the same global batch, and only rank 0
writes. The two processes are started the way a GPU node starts them: `hpc/run_finetune.sh` with NPROC_PER_NODE=2,
which runs torchrun."""
import json, os, subprocess, sys
from pathlib import Path
import pytest, torch
from safetensors.torch import load_file
from mirastral.data import read_jsonl
from conftest import run_cli

ROOT = Path(__file__).resolve().parents[1]
SETTINGS = dict(max_train_samples=40, max_eval_samples=6, max_steps=6, save_steps=3, eval_steps=100, logging_steps=1,
                report_to='none', lora_dropout=0.0)

def steps(out, key):
    return {r['step']: r[key] for r in read_jsonl(Path(out)/'results'/'log.jsonl') if key in r}

@pytest.fixture(scope='module')
def runs(demo, tmp_path_factory):
    "The same 6 steps twice: one process x batch 8, and two processes x batch 4 through the job script."
    w, data = tmp_path_factory.mktemp('ddp'), demo[1]
    run_cli('train', *[x for k, v in {**SETTINGS, 'data_dir': data, 'output_dir': w/'one', 'per_device_train_batch_size': 8}.items()
                       for x in ('-p', k, str(v))], '--no-progress')
    (w/'audit').mkdir()
    env = {**os.environ, 'NPROC_PER_NODE': '2', 'OUTPUT_DIR': str(w/'two'), 'DATA_DIR': str(data),
           'MIRASTRAL_VENV': str(Path(sys.executable).parents[1]), 'MASTER_PORT': '29517',
           'MIRASTRAL_PARAMS': ' '.join(x for k, v in {**SETTINGS, 'per_device_train_batch_size': 4}.items() for x in ('-p', k, str(v))),
           'PYTHONPATH': os.pathsep.join([str(ROOT/'tests'/'audit'), os.environ.get('PYTHONPATH', '')]),
           'MIRASTRAL_AUDIT_ROOT': str(w/'two'), 'MIRASTRAL_AUDIT_DIR': str(w/'audit')}
    r = subprocess.run(['bash', str(ROOT/'hpc'/'run_finetune.sh')], capture_output=True, text=True, env=env, cwd=ROOT, timeout=600)
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-4000:]
    return w, r.stdout + r.stderr

def test_two_processes_reach_the_loss_of_one_on_the_same_global_batch(runs):
    w, log = runs
    assert 'torchrun' in log and '--nproc_per_node 2' in log, log[-2000:]   # the job script chose the launcher
    s = json.loads((w/'two'/'final_model'/'training_summary.json').read_text())
    assert s['processes'] == 2 and s['steps'] == 6, s
    one, two = steps(w/'one', 'loss'), steps(w/'two', 'loss')
    assert sorted(one) == sorted(two) == list(range(1, 7))
    for k in one: assert two[k] == pytest.approx(one[k], rel=1e-3), (k, one, two)
    g1, g2 = steps(w/'one', 'grad_norm'), steps(w/'two', 'grad_norm')   # the gradients were shared, not rank-local
    for k in g1: assert g2[k] == pytest.approx(g1[k], rel=1e-3), (k, g1, g2)
    a, b = (load_file(str(w/d/'final_model'/'adapter_model.safetensors')) for d in ('one', 'two'))
    assert a.keys() == b.keys()
    for k in a: torch.testing.assert_close(b[k], a[k], rtol=1e-3, atol=1e-4)

def test_only_rank_zero_writes(runs):
    "Model, optimizer, logs, summaries and the final model come from rank 0. Rank 1 adds only its own RNG state to each"
    "checkpoint (`rng_state_1.pth`, which Trainer needs to resume every rank exactly), so it creates just those folders."
    w, _ = runs
    rank0, rank1 = ((w/'audit'/f'rank{r}.log').read_text().splitlines() for r in (0, 1))
    assert any('checkpoint-3' in l for l in rank0) and any('final_model' in l for l in rank0), rank0[:20]  # the audit sees writes
    assert any('log.jsonl' in l for l in rank0) and any('training_summary.json' in l for l in rank0), rank0[:20]
    ckpts = sorted(p.name for p in (w/'two'/'results').glob('checkpoint-*'))
    assert ckpts == ['checkpoint-3', 'checkpoint-6']
    assert sorted(rank1) == [f"os.mkdir {w/'two'/'results'/c}" for c in ckpts], rank1[:20]
    for c in ckpts: assert sorted(p.name for p in (w/'two'/'results'/c).glob('rng_state_*')) == ['rng_state_0.pth', 'rng_state_1.pth']
