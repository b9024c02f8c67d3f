"""The benchmark scripts run end to end on tiny settings (so the commands README documents keep working). They print
figures; nothing here asserts a speed — only that every arm ran and measured what it claims to."""
import importlib.util, json, math, os, subprocess, sys
from pathlib import Path
import pytest

ROOT = Path(__file__).resolve().parents[1]

def test_training_benchmark_runs_every_kind_of_arm(tmp_path):
    out = tmp_path/'r.json'
    (tmp_path/'tmp').mkdir()
    r = subprocess.run([sys.executable, str(ROOT/'bench'/'bench_train.py'), '--steps', '2', '--batch', '4',
                        '--datasets', 'demo', '--arms', 'naive,trl_padded,mirastral_padded,mirastral',
                        '--train-conversations', '12', '--corpus', '80', '--work', str(tmp_path/'work'),
                        '--out', str(out)],
                       capture_output=True, text=True, cwd=ROOT, timeout=900,
                       env={**os.environ, 'TMPDIR': str(tmp_path/'tmp')})
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert not [p for p in (tmp_path/'tmp').iterdir() if p.name.startswith('mira')]  # private temporaries, removed
    res = json.loads(out.read_text())
    rows = {a['arm']: a for a in res['datasets']['demo']['arms']}
    assert sorted(rows) == ['mirastral', 'mirastral_padded', 'naive', 'trl_padded'], rows
    assert not any('error' in a for a in rows.values()), rows
    for a in rows.values():
        assert a['real_tokens_per_s'] > 0 and a['loss_tokens_per_s'] > 0 and math.isfinite(a['val_loss']), a
    assert rows['mirastral']['padding_share'] == 0 and rows['naive']['padding_share'] > 0  # packed rows: no padding
    assert rows['naive']['loss_tokens_per_s'] > rows['mirastral']['loss_tokens_per_s']     # naive trains on every token
    tk = res['datasets']['demo']['tokenisation']
    assert tk['cache'] == 'hit' and tk['expansion'] > 1 and res['reformat']['conversations'] > 0
    assert out.with_suffix('.png').stat().st_size > 10_000
    assert 'mirastral / naive: real tokens/s x' in r.stdout

sys.path.insert(0, str(ROOT/'bench'))
import bench_gpu  # noqa: E402

def test_gpu_benchmark_counts_only_the_batches_trained_in_the_timed_window(demo, tmp_path):
    "Evaluation every step and the data loader's prefetching must not add tokens: the count equals the input tokens of"
    "the forward passes of optimizer steps warmup+1 .. warmup+steps, seen from inside the model."
    from mirastral.model import create_tiny_model, hf_tokenizer
    from mirastral.train import TrainConfig, load_datasets, model_for, build_trainer
    cfg = TrainConfig(model_name_or_path=str(create_tiny_model()), data_dir=str(demo[1]),
                      output_dir=str(tmp_path/'run'), load_in_4bit=True, max_train_samples=12, max_eval_samples=2,
                      max_steps=5, eval_steps=1, logging_steps=1, save_steps=10**6, per_device_train_batch_size=3,
                      report_to='none', final_adapter='last')  # evaluations between checkpoints: no best to pick
    train_ds, eval_ds, _ = load_datasets(cfg, progress=False)
    model = model_for(cfg)
    trainer = build_trainer(cfg, model, train_ds, eval_ds, hf_tokenizer(), tmp_path/'run', progress=False)
    seen = []  # (training?, optimizer steps done, tokens) of every forward pass the model runs
    model.register_forward_pre_hook(lambda m, args, kw: seen.append((m.training, trainer.state.global_step,
                                                                     kw['input_ids'].numel())), with_kwargs=True)
    timer = bench_gpu.StepTimer(warmup=2, steps=2, cuda=False)
    bench_gpu.timed_trainer(trainer, timer).train()
    window = [n for training, step, n in seen if training and 2 <= step < 4]
    assert len(window) == 2 and timer.micro_batches == 2 and timer.real == sum(window), (seen, timer.real)
    assert any(not training for training, _, _ in seen)      # evaluation ran in the window, and was not counted
    assert 0 < timer.target < timer.real and timer.seconds > 0

def test_gpu_benchmark_peak_from_the_card_name():
    assert bench_gpu.peak_tflops('NVIDIA H100 80GB HBM3') == 989 and bench_gpu.peak_tflops('NVIDIA H100 PCIe') == 756
    assert bench_gpu.peak_tflops('NVIDIA H100 NVL') == 835 and bench_gpu.peak_tflops('NVIDIA H200') == 989
    assert bench_gpu.peak_tflops('NVIDIA A100-SXM4-80GB') == 312 and bench_gpu.peak_tflops('Tesla T4') is None

def test_gpu_benchmark_switches_attention_on_one_loaded_model(demo, tmp_path):
    out = tmp_path/'g.json'
    rc = bench_gpu.main(['--shape', 'tiny', '--steps', '2', '--warmup', '1', '--seq', '1024', '--conversations', '16',
                         '--attn', 'packed_sdpa,sdpa,flash_attention_2,packed_sdpa*2', '--data', str(demo[1]),
                         '--model-dir', str(tmp_path/'m'), '--out', str(out)])
    g = json.loads(out.read_text())
    rows = {r['attn']: r for r in g['results']}
    assert rc == 0 and list(rows) == ['packed_sdpa', 'sdpa', 'flash_attention_2', 'packed_sdpa*2'], g
    flash = importlib.util.find_spec('flash_attn') is not None
    assert ('skipped' in rows['flash_attention_2']) != flash
    for k in ('packed_sdpa', 'sdpa', 'packed_sdpa*2'):
        r = rows[k]
        assert r['tokens_per_s'] > 0 and r['real_tokens'] > 0 and r['timed_steps'] == 2 and r['mfu'] is None, r
    assert rows['packed_sdpa*2']['examples_per_step'] == 2 * rows['packed_sdpa']['examples_per_step']
    assert json.loads((tmp_path/'m'/'bench_model.json').read_text())['bench_model']['hidden_size'] == 128
    with pytest.raises(SystemExit):  # the same folder, another shape: refused (message: tests/faults/bench.py)
        bench_gpu.main(['--shape', 'tiny', '--layers', '1', '--model-dir', str(tmp_path/'m'), '--out', str(out)])

def test_gpu_benchmark_runs_the_7b_width_in_4bit_on_cpu(demo, tmp_path):
    "The 7B layer shape (hidden 4096, 32/8 heads of 128, intermediate 14336), one layer, 4-bit NF4 through bitsandbytes"
    "on this CPU, as the GPU check runs it; temporary folders come from `tempfile` and are gone afterwards."
    out, tmp = tmp_path/'g.json', tmp_path/'tmp'
    tmp.mkdir()
    r = subprocess.run([sys.executable, str(ROOT/'bench'/'bench_gpu.py'), '--layers', '1', '--seq', '1024',
                        '--steps', '1', '--warmup', '1', '--conversations', '12', '--out', str(out)],
                       capture_output=True, text=True, cwd=ROOT, timeout=900, env={**os.environ, 'TMPDIR': str(tmp)})
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    g = json.loads(out.read_text())
    row = g['results'][0]
    assert g['shape'] == '7b' and g['layers'] == 1 and g['load_in_4bit'] and g['versions']['bitsandbytes'], g
    assert g['matmul_params'] == {'blocks': 4096 * (4096 + 2 * 1024 + 4096 + 3 * 14336), 'output_layer': 4096 * 32768}
    assert row['attn'] == 'packed_sdpa' and row['real_tokens'] == row['tokens_per_step'] and row['tokens_per_s'] > 0
    assert 0 < row['target_tokens'] < row['real_tokens'] <= 1024 * row['examples_per_step'], row
    assert not [p for p in tmp.iterdir() if p.name.startswith('mira')]        # the model and data folders were removed
    assert 'packed_sdpa' in r.stdout.splitlines()[-1]                         # the table is printed last

from faults import Ctx, Result  # noqa: E402
from faults.bench import SCRIPT_CASES  # noqa: E402

@pytest.mark.parametrize('case', SCRIPT_CASES, ids=[c.name for c in SCRIPT_CASES])
def test_bench_fault(case, tmp_path):
    "The fault table of the benchmark scripts (tests/faults/bench.py), with the rules of tests/test_faults.py."
    ctx = Ctx(tmp_path, None, None)
    if case.setup: case.setup(ctx)
    script, *args = [str(a) for a in case.argv(ctx)]
    p = subprocess.run([sys.executable, str(ROOT/'bench'/script), *args], capture_output=True, text=True, cwd=tmp_path,
                       timeout=600, env={**os.environ, 'TMPDIR': str(tmp_path)})
    r = Result(p.returncode, p.stdout, p.stderr)
    assert 'Traceback' not in r.err and r.status == case.status, f'exit {r.status}\n{r.out[-1500:]}\n{r.err[-1500:]}'
    errors = [line for line in r.err.splitlines() if line.startswith(f'{script}: error: ')]
    assert len(errors) == 1 and case.message in errors[0], r.err[-2000:]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith('mirastral-bench')]    # temporaries removed
    if case.check: case.check(ctx, r)
