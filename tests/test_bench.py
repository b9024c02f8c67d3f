"""The benchmark scripts run end to end on tiny settings (so the commands README documents keep working). They print
figures; nothing here asserts a speed — only that every arm ran and measured what it claims to."""
import json, math, subprocess, sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

def test_training_benchmark_runs_every_kind_of_arm(tmp_path):
    out = tmp_path/'r.json'
    r = subprocess.run([sys.executable, str(ROOT/'bench'/'bench_train.py'), '--steps', '2', '--batch', '4', '--datasets', 'demo',
                        '--arms', 'naive,trl_padded,mirastral_padded,mirastral', '--train-conversations', '12', '--corpus', '80',
                        '--work', str(tmp_path/'work'), '--out', str(out)], capture_output=True, text=True, cwd=ROOT, timeout=900)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    res = json.loads(out.read_text())
    rows = {a['arm']: a for a in res['datasets']['demo']['arms']}
    assert sorted(rows) == ['mirastral', 'mirastral_padded', 'naive', 'trl_padded'] and not any('error' in a for a in rows.values()), rows
    for a in rows.values():
        assert a['real_tokens_per_s'] > 0 and a['loss_tokens_per_s'] > 0 and math.isfinite(a['val_loss']), a
    assert rows['mirastral']['padding_share'] == 0 and rows['naive']['padding_share'] > 0     # packed rows have no padding
    assert rows['naive']['loss_tokens_per_s'] > rows['mirastral']['loss_tokens_per_s']        # naive trains on every token
    tk = res['datasets']['demo']['tokenisation']
    assert tk['cache'] == 'hit' and tk['expansion'] > 1 and res['reformat']['conversations'] > 0
    assert out.with_suffix('.png').stat().st_size > 10_000
    assert 'mirastral / naive: real tokens/s x' in r.stdout

def test_gpu_benchmark_path_runs_on_the_tiny_shape(tmp_path):
    "The GPU script's own code path (make, save, 4-bit load, LoRA, packed QLoRA steps) on the tiny shape, on this CPU."
    out = tmp_path/'g.json'
    r = subprocess.run([sys.executable, str(ROOT/'bench'/'bench_gpu.py'), '--shape', 'tiny', '--steps', '2', '--warmup', '1',
                        '--seq', '1024', '--model-dir', str(tmp_path/'m'), '--data', str(tmp_path/'work'/'demo'), '--out', str(out)],
                       capture_output=True, text=True, cwd=ROOT, timeout=900)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    g = json.loads(out.read_text())[-1]
    assert g['shape'] == 'tiny' and g['timed_steps'] == 2 and g['tokens_per_s'] > 0 and g['examples_per_step'] >= 1, g
    assert (tmp_path/'m-tiny'/'model.safetensors').exists()
