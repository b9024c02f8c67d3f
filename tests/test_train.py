"Training end to end: resume after a kill (SIGTERM and kill -9), papermill, and the job script without a scheduler."
import json, os, re, signal, subprocess, sys, time
from pathlib import Path
import pytest
from mirastral.data import read_jsonl
from mirastral.train import TrainConfig, parameters_cell
from conftest import BIN, run_cli

ROOT = Path(__file__).resolve().parents[1]
SMALL = dict(max_train_samples=40, max_eval_samples=6, max_steps=16, save_steps=4, eval_steps=8, logging_steps=1,
             report_to='none', per_device_train_batch_size=4, lora_dropout=0.0)

def params(out, data, **kw):
    return [x for k, v in {**SMALL, 'data_dir': data, 'output_dir': out, **kw}.items() for x in ('-p', k, str(v))]

def params_text(**kw):
    "SMALL (and `kw`) as the job script's MIRASTRAL_PARAMS."
    return ' '.join(f'-p {k} {v}' for k, v in {**SMALL, **kw}.items())

def train_losses(out):
    return {r['step']: r['loss'] for r in read_jsonl(Path(out)/'results'/'log.jsonl') if 'loss' in r}

def killed_at(point, step, out, data):
    "Train into `out`, SIGKILLed at `point` (tests/killpoint.py); returns the finished process."
    return subprocess.run([sys.executable, str(ROOT/'tests'/'killpoint.py'), point, str(step), '--', 'train',
                           *params(out, data), '--no-progress'], capture_output=True, text=True)

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
    deadline = time.time() + 600
    while not (out/'results'/'checkpoint-4'/'trainer_state.json').exists():  # stopped after the first checkpoint
        assert p.poll() is None and time.time() < deadline, p.stdout.read() if p.poll() is not None else 'timeout'
        time.sleep(0.2)
    p.send_signal(signal.SIGTERM)
    log = p.communicate(timeout=600)[0]
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
    assert 'already finished with these settings' in r.stdout and train_losses(out) == b

def test_kill9_while_a_checkpoint_and_then_the_final_model_are_written(data, uninterrupted, tmp_path):
    "kill -9 inside the two save windows: checkpoint-8 half written, then final_model/ about to appear. Each rerun"
    "resumes from the latest complete checkpoint, and the curve is the uninterrupted one."
    out = tmp_path/'run'
    r = killed_at('checkpoint', 8, out, data)
    assert r.returncode == -signal.SIGKILL, r.stdout[-2000:] + r.stderr[-2000:]
    ck8 = out/'results'/'checkpoint-8'
    assert (ck8/'adapter_model.safetensors').exists() and not (ck8/'trainer_state.json').exists()  # inside the window
    assert (out/'results'/'checkpoint-4'/'trainer_state.json').exists()
    r = killed_at('final', 0, out, data)              # resumes from checkpoint-4, trains to 16, killed as it publishes
    assert r.returncode == -signal.SIGKILL, r.stdout[-2000:] + r.stderr[-2000:]
    assert 'checkpoint-8 is incomplete (missing trainer_state.json, optimizer.pt' in r.stdout, r.stdout[-3000:]
    assert f"resuming from {out/'results'/'checkpoint-4'}" in r.stdout, r.stdout[-3000:]
    assert list((out/'results'/'incomplete').glob('checkpoint-8-*'))   # kept for a person to look at, not deleted
    assert not (out/'final_model').exists() and list(out.glob('.final_model.tmp-*'))
    r = run_cli('train', *params(out, data), '--no-progress')  # resumes from checkpoint-16: nothing left to train
    assert f"resuming from {out/'results'/'checkpoint-16'}" in r.stdout, r.stdout[-3000:]
    assert 'finished: 16/16 steps (0 in this session)' in r.stdout, r.stdout[-3000:]
    assert not list(out.glob('.final_model.tmp-*'))
    done = json.loads((out/'final_model'/'training_summary.json').read_text())
    assert (done['status'], done['steps'], done['max_steps']) == ('finished', 16, 16)
    a, b = train_losses(uninterrupted), train_losses(out)
    assert sorted(b) == list(range(1, 17))
    for step in a: assert b[step] == pytest.approx(a[step], rel=2e-3), (step, a[step], b[step])
    best = json.loads((uninterrupted/'final_model'/'training_summary.json').read_text())['final_adapter']['step']
    assert done['final_adapter']['step'] == best             # the same best checkpoint, exported

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
    assert not (tmp_path/'o').exists()                     # checked before anything was written

def test_parameters_cell_is_trainconfig(tmp_path):
    "The papermill parameters cell is generated from TrainConfig, and `papermill --help-notebook` tells its defaults."
    nb = json.loads((ROOT/'nbs'/'03_train.ipynb').read_text())
    cells = [''.join(c['source']) for c in nb['cells'] if 'parameters' in c.get('metadata', {}).get('tags', [])]
    assert cells == [parameters_cell()], 'the parameters cell must be the output of parameters_cell()'
    r = subprocess.run([str(BIN/'papermill'), '--help-notebook', str(ROOT/'nbs'/'03_train.ipynb')], capture_output=True,
                       text=True)
    assert r.returncode == 0, r.stderr
    from dataclasses import fields
    for f in fields(TrainConfig):
        told = rf"^  {f.name}: \w+ \(default None\)\s+default {re.escape(repr(f.default))}:"
        assert re.search(told, r.stdout, re.M), f.name

# ---- the job script, without a scheduler ------------------------------------------------------------------------

def job(env_extra:dict, tmp_path, dry=True):
    "Run hpc/run_finetune.sh with the test's venv and `env_extra` (a dry run unless `dry` is False)."
    env = {k: v for k, v in os.environ.items() if k not in ('DATA_DIR', 'OUTPUT_DIR', 'RUN_NAME', 'MIRASTRAL_CONFIG',
                                                             'MIRASTRAL_PARAMS', 'MIRASTRAL_OVERWRITE')}
    env.update({'MIRASTRAL_VENV': str(Path(sys.executable).parents[1]), **({'MIRASTRAL_DRY_RUN': '1'} if dry else {}),
                **env_extra})
    return subprocess.run(['bash', str(ROOT/'hpc'/'run_finetune.sh')], capture_output=True, text=True, env=env,
                          cwd=tmp_path, timeout=900)

def test_job_script_settings_order(data, tmp_path):
    "defaults < config file < environment < MIRASTRAL_PARAMS; nothing the user did not set overrides the config file."
    cfg = tmp_path/'c.yaml'
    cfg.write_text(f"data_dir: {data}\noutput_dir: {tmp_path/'from_yaml'}\nrun_name: yaml-run\nlearning_rate: 1.0e-4\n")
    base = {'MIRASTRAL_CONFIG': str(cfg)}
    r = job(base, tmp_path)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert f"output_dir: {tmp_path/'from_yaml'}: a new run" in r.stdout                          # the YAML's paths
    assert f"run_name = 'yaml-run'  (config file {cfg})" in r.stdout
    assert 'learning_rate = 0.0001  (config file' in r.stdout
    r = job({**base, 'OUTPUT_DIR': str(tmp_path/'from_env')}, tmp_path)                           # environment > file
    assert f"output_dir: {tmp_path/'from_env'}: a new run" in r.stdout, r.stdout[-3000:]
    assert f"environment OUTPUT_DIR={tmp_path/'from_env'}" in r.stdout
    r = job({**base, 'OUTPUT_DIR': str(tmp_path/'from_env'),                                      # -p > environment
             'MIRASTRAL_PARAMS': f"-p output_dir '{tmp_path/'from params'}' -p run_name *"}, tmp_path)
    assert f"output_dir: {tmp_path/'from params'}: a new run" in r.stdout, r.stdout[-3000:]
    assert "run_name = '*'  (-p)" in r.stdout                                                     # never globbed
    assert not any(tmp_path.glob('from*'))                                                        # a dry run: no writes

def test_job_script_hygiene(data, tmp_path):
    "Raw strings reach TrainConfig (None stays 'None'); the venv path is never handed to make; bad params are refused."
    r = job({'DATA_DIR': str(data), 'OUTPUT_DIR': 'None'}, tmp_path)
    assert r.returncode == 0 and "output_dir: None: a new run" in r.stdout, r.stdout[-3000:] + r.stderr[-3000:]
    r = job({'MIRASTRAL_VENV': f'{tmp_path}/nowhere/$(shell touch {tmp_path}/PWNED)'}, tmp_path)
    assert r.returncode == 2 and 'MIRASTRAL_VENV' in r.stdout and not (tmp_path/'PWNED').exists(), r.stdout + r.stderr
    r = job({'DATA_DIR': str(data), 'MIRASTRAL_PARAMS': '-p max_steps'}, tmp_path)
    assert r.returncode == 2 and "must be '-p NAME VALUE' groups" in r.stderr, r.stdout + r.stderr
    r = job({'DATA_DIR': str(data), 'MIRASTRAL_PARAMS': '-p max_steps 0'}, tmp_path)
    assert r.returncode == 2 and 'max_steps: must be -1' in r.stdout and 'nothing was started' in r.stdout, r.stdout

def test_job_script_stops_a_large_model_without_cuda(data, tmp_path):
    "A 7B-shaped model and a torch without CUDA: the job stops in its settings check, before papermill starts."
    from transformers import MistralConfig
    import torch
    if torch.cuda.is_available(): pytest.skip('this machine has a CUDA device')
    m7 = tmp_path/'m7'
    MistralConfig(vocab_size=32768, hidden_size=4096, intermediate_size=14336, num_hidden_layers=32,
                  num_attention_heads=32, num_key_value_heads=8, head_dim=128).save_pretrained(m7)
    r = job({'DATA_DIR': str(data), 'OUTPUT_DIR': str(tmp_path/'o'), 'MIRASTRAL_PARAMS': f'-p model_name_or_path {m7}'},
            tmp_path, dry=False)
    assert r.returncode == 2 and '7.2 B parameters and torch' in r.stdout, r.stdout + r.stderr
    assert 'papermill' not in r.stdout and not (tmp_path/'o').exists()

def test_job_script_runs_locally_without_a_scheduler(data, tmp_path):
    r = job({'OUTPUT_DIR': str(tmp_path/'run'), 'DATA_DIR': str(data),
             'MIRASTRAL_PARAMS': params_text(max_steps=4, run_name='007')},
            tmp_path, dry=False)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert (tmp_path/'run'/'final_model'/'adapter_model.safetensors').exists()
    assert list((tmp_path/'run'/'results').glob('03_train.*.ipynb'))   # the executed notebook sits with the checkpoints
    assert '[mirastral] finished' in r.stdout and 'settings, later wins' in r.stdout
    import yaml
    assert yaml.safe_load((tmp_path/'run'/'final_model'/'config.yaml').read_text())['run_name'] == '007'  # raw, not 7
