"""Where the time of a 7B QLoRA step goes on a GPU, and what moves it: one process, one loaded model, cumulative variants.

    python bench/gpu_profile.py                        # on a GPU node (see bench/gpu_check.sh for the device call)
    python bench/gpu_profile.py --layers 1 --seq 256 --steps 1 --warmup 1    # the same path on a CPU

Same model, data and training path as `bench/bench_gpu.py` (random Mistral-7B shape, 4-bit NF4, LoRA r=16 on all
projections, packed batches of about `--seq` tokens, gradient checkpointing). First `torch.profiler` records two steps
of the baseline (`sdpa`) and prints the kernels that take the most device time, and how busy the device was. Then each
variant is timed after the one before it, keeping its change:
  base     sdpa, as MiraStral trains today
  tf32     TF32 allowed for float32 matmuls (any fp32 matmul left, e.g. in LoRA or the output layer)
  bf16     the frozen weights that peft's `prepare_model_for_kbit_training` upcast to float32 (norms, embeddings,
           output layer) cast back to bf16, so the residual stream stays in bf16
  packed   `packed_sdpa` on top of that
  nockpt   gradient checkpointing off (more memory, no recompute)
Figures, not tests.
"""
from __future__ import annotations
import argparse, json, sys, tempfile, time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
import bench_gpu as bg  # noqa: E402


def profile_steps(trainer, first:int, n:int, cuda:bool, out:Path|None)->str:
    "Profile optimizer steps (first, first + n] of `trainer.train()`; returns the table of the costliest kernels."
    import torch
    from torch.profiler import ProfilerActivity, profile
    from transformers import TrainerCallback
    acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
    prof = profile(activities=acts, record_shapes=False)
    state = {}

    class _Prof(TrainerCallback):
        def on_step_end(self, args, st, control, **kw):
            if st.global_step == first:
                if cuda: torch.cuda.synchronize()
                prof.start()
                state['t0'] = time.perf_counter()
            elif st.global_step == first + n:
                if cuda: torch.cuda.synchronize()
                state['wall'] = time.perf_counter() - state['t0']
                prof.stop()
    trainer.add_callback(_Prof())
    trainer.train()
    ev = prof.key_averages()
    key = 'self_device_time_total' if cuda else 'self_cpu_time_total'
    busy = sum(getattr(e, key) for e in ev) / 1e6
    top = sorted(ev, key=lambda e: getattr(e, key), reverse=True)[:30]
    lines = [f"profiled {n} steps: wall {state['wall']:.3f} s, {'device' if cuda else 'CPU'} busy (self time) "
             f"{busy:.3f} s = {busy / state['wall']:.0%} of wall",
             f"{'self ms':>10} {'share':>6} {'calls':>7}  name"]
    for e in top:
        t = getattr(e, key) / 1e3
        lines.append(f"{t:>10.1f} {t / 1e3 / busy:>6.1%} {e.count:>7}  {e.key[:110]}")
    if out: prof.export_chrome_trace(str(out))
    return '\n'.join(lines)


def apply(name:str, model):
    "Make the change of variant `name` on the loaded model (or globally); returns the attention implementation."
    import torch
    if name == 'tf32':
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    elif name == 'bf16':
        n = 0
        for _, p in model.named_parameters():
            if p.dtype == torch.float32 and not p.requires_grad:
                p.data = p.data.to(torch.bfloat16)
                n += 1
        print(f"bf16: {n} frozen float32 tensors cast to bf16", flush=True)
    elif name == 'nockpt':
        model.get_base_model().gradient_checkpointing_disable()
    return 'packed_sdpa' if name in ('packed', 'nockpt') else 'sdpa'


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--layers', type=int, default=None)
    p.add_argument('--seq', type=int, default=2048)
    p.add_argument('--steps', type=int, default=15, help='timed steps a variant')
    p.add_argument('--warmup', type=int, default=3)
    p.add_argument('--variants', default='base,tf32,bf16,packed,nockpt')
    p.add_argument('--out', type=Path, default=Path('bench/gpu_profile.json'))
    a = p.parse_args(argv)
    import torch
    from mirastral.data import atomic_write_text
    from mirastral.model import hf_tokenizer
    from mirastral.train import TrainConfig, build_trainer, load_datasets, model_for
    from transformers.trainer_utils import IntervalStrategy, SaveStrategy
    cuda = torch.cuda.is_available()
    fields = bg.model_config('7b', a.layers)
    gpu = torch.cuda.get_device_name() if cuda else 'CPU'
    peak = bg.peak_tflops(gpu) if cuda else None
    work = Path(tempfile.mkdtemp(prefix='mirastral-profile-'))
    data = bg.demo_data(work, 140)
    cfg = TrainConfig(model_name_or_path=str(work/'model'), data_dir=str(data), output_dir=str(work/'run'),
                      load_in_4bit=True, gradient_checkpointing='true', modules_to_save='', lora_r=16, lora_alpha=32,
                      lora_dropout=0.0, max_seq_len=a.seq, attn_implementation='sdpa', learning_rate=2e-4,
                      max_steps=10**6, per_device_train_batch_size=1, logging_steps=10**6, eval_steps=10**6,
                      save_steps=10**6, report_to='none', max_train_samples=120, max_eval_samples=2,
                      tokenize_cache=False)
    train_ds, eval_ds, st = load_datasets(cfg, progress=False)
    cfg.per_device_train_batch_size = max(1, round(a.seq / (st['train']['tokens'] / st['train']['examples'])))
    bg.make_model(fields, work/'model')
    model = model_for(cfg)
    body, head = bg.matmul_params(fields)
    rows, report = [], {}

    def trainer_for(attn, max_steps):
        model.get_base_model().set_attn_implementation(attn)
        c = cfg.__class__(**{**cfg.__dict__, 'max_steps': max_steps, 'attn_implementation': attn})
        t = build_trainer(c, model, train_ds, eval_ds, hf_tokenizer(), work/'res', progress=False)
        t.args.eval_strategy, t.args.save_strategy = IntervalStrategy.NO, SaveStrategy.NO
        return t

    trace = Path(a.out).with_suffix('.trace.json') if cuda else None
    report['profile_base'] = profile_steps(trainer_for('sdpa', a.warmup + 2), a.warmup, 2, cuda, trace)
    print(report['profile_base'], flush=True)
    for name in [v.strip() for v in a.variants.split(',') if v.strip()]:
        attn = apply(name, model)
        trainer = trainer_for(attn, a.warmup + a.steps)
        timer = bg.StepTimer(a.warmup, a.steps, cuda)
        bg.timed_trainer(trainer, timer).train()
        tps = timer.real / timer.seconds
        flops = (6 * body * timer.real + 6 * head * timer.target) / timer.seconds
        rows.append({'variant': name, 'attn': attn, 'tokens_per_s': round(tps, 1),
                     's_per_step': round(timer.seconds / a.steps, 4), 'tokens_per_step': round(timer.real / a.steps),
                     'mfu': round(flops / (peak * 1e12), 4) if peak else None,
                     'peak_vram_allocated_gb': round(torch.cuda.max_memory_allocated() / 1e9, 2) if cuda else None,
                     'peak_vram_reserved_gb': round(torch.cuda.max_memory_reserved() / 1e9, 2) if cuda else None})
        print(f"{name:<8} {attn:<12} {tps:>9,.0f} tokens/s  {timer.seconds / a.steps:.3f} s/step  "
              f"peak {rows[-1]['peak_vram_allocated_gb']} GB", flush=True)
        report['variants'] = rows
        atomic_write_text(a.out, json.dumps({'device': gpu, 'date': time.strftime('%Y-%m-%d'),
                                             'versions': bg.versions(), **report}, indent=2) + '\n')
        del trainer
        if cuda: torch.cuda.empty_cache()
    print(f"written {a.out}")


if __name__ == '__main__': main()
