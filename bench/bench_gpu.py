"""QLoRA throughput on a Mistral-7B-shaped model: real tokens/s, peak VRAM and model-FLOPs utilisation (for a GPU node).

    python bench/bench_gpu.py                            # 7B shape, 4-bit NF4 + LoRA r=16 on all projections, seq 2048
    python bench/bench_gpu.py --attn packed_sdpa,sdpa,flash_attention_2    # one model, several attention kernels
    python bench/bench_gpu.py --layers 1 --seq 768 --steps 1 --warmup 1   # the 7B width on a CPU (what the tests run)

The model has the real Mistral-7B-v0.3 shape (hidden 4096, 32 layers, 32 heads / 8 KV heads, head_dim 128,
intermediate 14336, vocabulary 32768; `--layers` keeps fewer layers) with random weights, made once in bf16 (on the
GPU when there is one), saved as safetensors and loaded back through MiraStral's own path: `model_for` (`load_model(...,
load_in_4bit=True)`, `add_lora`, gradient checkpointing) and `build_trainer` (packed batches, output layer on the
target tokens only, the optimizer of the real job). Nothing is downloaded. Each attention implementation is timed on the
same loaded model (`set_attn_implementation`), one after the other; `flash_attention_2` is skipped when `flash_attn` is
not importable; `packed_sdpa*4` packs four times the examples a step (about 4 x `--seq` tokens, as the real job's
`per_device_train_batch_size` does).

What is counted: the timed window runs from the end of optimizer step `--warmup` to the end of step
`--warmup + --steps` (both after a CUDA synchronize); its tokens are those of the batches handed to the training step in
that window (evaluation and prefetched batches are not counted). Real tokens = tokens that are not padding.

MFU = model FLOPs per second / the card's dense bf16 peak. Model FLOPs per step: 6 x (matmul parameters of the
transformer blocks) x real tokens + 6 x (output-layer parameters) x target tokens (the output layer runs only where
there is a loss); attention-score FLOPs are left out, so the figure is conservative. 6 per parameter and token is the
usual full fine-tuning count: LoRA skips the weight gradients (about 2) but gradient checkpointing recomputes the
forward (about 2). The peak comes from the device name (H100 SXM 989, H100 NVL 835, H100 PCIe 756, H200 989, A100 312
TFLOP/s) or `--peak-tflops`.

Temporary files: the model and the demo data go to fresh `tempfile.mkdtemp()` folders, removed at the end, unless
`--model-dir` / `--data` name folders to reuse; a reused model folder must hold a model of exactly the requested shape
(its `bench_model.json`, written last, is checked), else the script stops. Figures, not tests: record them with the GPU
and date in bench/RESULTS.md.
"""
from __future__ import annotations
import argparse, gc, importlib.util, json, resource, shutil, sys, tempfile, time, traceback
from pathlib import Path

SHAPES = {'7b': dict(hidden_size=4096, intermediate_size=14336, num_hidden_layers=32, num_attention_heads=32,
                     num_key_value_heads=8, head_dim=128),
          'tiny': dict(hidden_size=128, intermediate_size=384, num_hidden_layers=2, num_attention_heads=4,
                       num_key_value_heads=2, head_dim=32)}
COMMON = dict(vocab_size=32768, max_position_embeddings=32768, rope_theta=1_000_000.0, tie_word_embeddings=False,
              bos_token_id=1, eos_token_id=2, pad_token_id=11, sliding_window=None)
PEAK_TFLOPS = [('H100 NVL', 835.0), ('H100 PCIE', 756.0), ('H100', 989.0), ('GH200', 989.0), ('H200', 989.0),
               ('A100', 312.0), ('L40S', 362.0), ('B200', 2250.0)]  # dense bf16, from the vendors' data sheets


ATTENTION = ('packed_sdpa', 'sdpa', 'eager', 'flash_attention_2', 'flash_attention_3', 'flex_attention')


def fail(msg:str):
    "A user's mistake: one line `bench_gpu.py: error: ...` on stderr, exit status 2 (as `mirastral` does)."
    print(f"bench_gpu.py: error: {' '.join(str(msg).split())}", file=sys.stderr)
    raise SystemExit(2)


def model_config(shape:str, layers:int|None=None)->dict:
    "MistralConfig fields of `shape`, with `layers` transformer blocks when given."
    return {**COMMON, **SHAPES[shape], **({'num_hidden_layers': layers} if layers else {})}


def peak_tflops(device_name:str)->float|None:
    "Dense bf16 peak TFLOP/s of a card from its name (None when unknown)."
    name = device_name.upper()
    return next((v for k, v in PEAK_TFLOPS if k in name), None)


def _marker(fields:dict)->str: return json.dumps({'bench_model': fields}, sort_keys=True)


def make_model(fields:dict, path:Path)->Path:
    """A random-init Mistral with config `fields`, saved as bf16 safetensors in `path` (written in a temporary folder
    beside it, then renamed). An existing `path` is reused only when its `bench_model.json` says it holds this model."""
    import torch
    from transformers import MistralConfig, MistralForCausalLM
    if path.exists():
        check_model_dir(path, fields)
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix='.tmp-', dir=path.parent))
    dev = 'cuda' if torch.cuda.is_available() else 'cpu'
    torch.manual_seed(0)
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.bfloat16)
    try:
        with torch.device(dev):
            model = MistralForCausalLM(MistralConfig(**fields))
    finally:
        torch.set_default_dtype(old)
    model.save_pretrained(tmp, safe_serialization=True)
    (tmp/'bench_model.json').write_text(_marker(fields))
    del model
    if dev == 'cuda': torch.cuda.empty_cache()
    tmp.rename(path)
    return path


def matmul_params(fields:dict)->tuple[int, int]:
    "(parameters in the transformer blocks' matmuls, parameters of the output layer); embeddings excluded."
    h, i, L = fields['hidden_size'], fields['intermediate_size'], fields['num_hidden_layers']
    q, kv = fields['num_attention_heads'] * fields['head_dim'], fields['num_key_value_heads'] * fields['head_dim']
    return L * (h * q + 2 * h * kv + q * h + 3 * h * i), h * fields['vocab_size']


class StepTimer:
    "Times optimizer steps (warmup, warmup + steps] and counts the tokens of the batches trained inside that window."
    def __init__(self, warmup:int, steps:int, cuda:bool):
        self.warmup, self.steps, self.cuda = warmup, steps, cuda
        self.t0 = self.t1 = None
        self.real = self.target = self.micro_batches = 0

    def _sync(self):
        if self.cuda:
            import torch
            torch.cuda.synchronize()

    def on_step_end(self, step:int):
        if step == self.warmup:
            self._sync()
            if self.cuda:
                import torch
                torch.cuda.reset_peak_memory_stats()
            self.t0 = time.perf_counter()
        elif step == self.warmup + self.steps:
            self._sync()
            self.t1 = time.perf_counter()

    def count(self, inputs:dict):
        "Called with each micro-batch the training step receives."
        if self.t0 is None or self.t1 is not None: return
        import torch
        ids = inputs['input_ids']
        mask = inputs.get('attention_mask')
        self.real += int(mask.sum()) if mask is not None else ids.numel()
        keep = inputs.get('logits_to_keep')
        self.target += int(keep.sum()) if keep is not None and keep.dtype == torch.bool else 0
        self.micro_batches += 1

    @property
    def seconds(self)->float: return self.t1 - self.t0


def timed_trainer(trainer, timer:StepTimer):
    "Hook `timer` into `trainer`: step ends from a callback, tokens from the batches `training_step` receives."
    from transformers import TrainerCallback

    class _Steps(TrainerCallback):
        def on_step_end(self, args, state, control, **kw): timer.on_step_end(state.global_step)
    trainer.add_callback(_Steps())
    train_step = trainer.training_step

    def counted(model, inputs, *args, **kw):
        timer.count(inputs)
        return train_step(model, inputs, *args, **kw)
    trainer.training_step = counted
    return trainer


def attn_available(attn:str)->str|None:
    "Why `attn` cannot run here (None when it can)."
    if attn == 'flash_attention_2' and importlib.util.find_spec('flash_attn') is None:
        return 'flash_attn is not installed'
    return None


def parse_variant(spec:str)->tuple[str, int]:
    "'packed_sdpa' -> ('packed_sdpa', 1); 'packed_sdpa*4' -> ('packed_sdpa', 4): four times the examples a step."
    attn, _, k = spec.partition('*')
    if attn.strip() not in ATTENTION or not (k or '1').isdigit() or int(k or 1) < 1:
        fail(f"--attn: {spec!r} is not ATTENTION[*K] with ATTENTION one of {', '.join(ATTENTION)} and K >= 1")
    return attn.strip(), int(k) if k else 1


def run_variant(a, cfg, model, train_ds, eval_ds, fields:dict, spec:str, cuda:bool, peak:float|None)->dict:
    "Train `a.warmup + a.steps` steps of variant `spec` on the loaded `model`; the figures of the timed steps."
    import dataclasses, torch
    from mirastral.model import hf_tokenizer
    from mirastral.train import build_trainer
    from transformers.trainer_utils import IntervalStrategy, SaveStrategy
    attn, k = parse_variant(spec)
    cfg = dataclasses.replace(cfg, per_device_train_batch_size=cfg.per_device_train_batch_size * k)
    model.get_base_model().set_attn_implementation(attn)
    assert model.config._attn_implementation == attn, model.config._attn_implementation
    results = Path(tempfile.mkdtemp(prefix='mirastral-bench-run-'))
    try:
        trainer = build_trainer(cfg, model, train_ds, eval_ds, hf_tokenizer(), results, progress=False)
        trainer.args.eval_strategy, trainer.args.save_strategy = IntervalStrategy.NO, SaveStrategy.NO  # timing only
        timer = StepTimer(a.warmup, a.steps, cuda)
        timed_trainer(trainer, timer).train()
    finally:
        shutil.rmtree(results, ignore_errors=True)
    body, head = matmul_params(fields)
    tps = timer.real / timer.seconds
    flops = (6 * body * timer.real + 6 * head * timer.target) / timer.seconds
    r = {'attn': spec, 'examples_per_step': cfg.per_device_train_batch_size, 'timed_steps': a.steps,
         'seconds': round(timer.seconds, 3), 'real_tokens': timer.real,
         'target_tokens': timer.target, 'tokens_per_s': round(tps, 1), 'tokens_per_step': round(timer.real / a.steps),
         's_per_step': round(timer.seconds / a.steps, 4), 'model_tflops_per_s': round(flops / 1e12, 2),
         'mfu': round(flops / (peak * 1e12), 4) if peak else None,
         'peak_vram_allocated_gb': round(torch.cuda.max_memory_allocated() / 1e9, 2) if cuda else None,
         'peak_vram_reserved_gb': round(torch.cuda.max_memory_reserved() / 1e9, 2) if cuda else None,
         'peak_rss_gb': round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2)}
    del trainer
    gc.collect()
    if cuda: torch.cuda.empty_cache()
    return r


def versions()->dict:
    "Versions of the libraries that decide the figures."
    import importlib.metadata as md
    out = {}
    for p in ('torch', 'transformers', 'peft', 'accelerate', 'bitsandbytes', 'flash_attn'):
        try: out[p] = md.version(p)
        except md.PackageNotFoundError: out[p] = None
    import torch
    out['cuda'] = torch.version.cuda
    return out


def table(rows:list[dict])->str:
    "The figures, one line a variant."
    head = (f"{'attention':<20}{'tokens/s':>10}{'tokens/step':>13}{'s/step':>8}{'peak alloc GB':>15}"
            f"{'peak resv GB':>14}{'MFU':>8}")
    lines = [head]
    for r in rows:
        if 'error' in r or 'skipped' in r:
            lines.append(f"{r['attn']:<20}  {'skipped: ' + r['skipped'] if 'skipped' in r else 'error: ' + r['error']}")
            continue
        f = lambda v, fmt: '-' if v is None else format(v, fmt)
        lines.append(f"{r['attn']:<20}{r['tokens_per_s']:>10,.0f}{r['tokens_per_step']:>13,}{r['s_per_step']:>8.3f}"
                     f"{f(r['peak_vram_allocated_gb'], '.2f'):>15}{f(r['peak_vram_reserved_gb'], '.2f'):>14}"
                     f"{f(r['mfu'], '.1%'):>8}")
    return '\n'.join(lines)


def demo_data(path:Path, conversations:int)->Path:
    "A small reformatted demo corpus in `path` (train.jsonl, val.jsonl)."
    from mirastral.demo import write_demo_corpus
    from mirastral.data import reformat
    write_demo_corpus(path/'raw', n=conversations)
    reformat(path/'raw', path/'data', progress=False)
    return path/'data'


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--shape', choices=list(SHAPES), default='7b')
    p.add_argument('--layers', type=int, default=None, help='transformer blocks (default: all of the shape)')
    p.add_argument('--seq', type=int, default=2048, help='max_seq_len, and about the tokens of a packed step')
    p.add_argument('--steps', type=int, default=20, help='timed optimizer steps')
    p.add_argument('--warmup', type=int, default=3, help='optimizer steps before the timed ones (>= 1)')
    p.add_argument('--attn', default='packed_sdpa',
                   help="comma-separated variants: packed_sdpa, sdpa, flash_attention_2, eager; NAME*K packs K times "
                        "the examples a step (K x --seq tokens)")
    p.add_argument('--lora-r', type=int, default=16)
    p.add_argument('--no-4bit', action='store_true', help='bf16 base instead of 4-bit NF4')
    p.add_argument('--peak-tflops', type=float, default=None, help='dense bf16 peak (default: from the card name)')
    p.add_argument('--model-dir', type=Path, default=None, help='keep / reuse the model here (default: temporary)')
    p.add_argument('--data', type=Path, default=None, help='a reformat output (default: a temporary demo corpus)')
    p.add_argument('--conversations', type=int, default=120, help='conversations tokenized (max_train_samples)')
    p.add_argument('--allow-cpu', action='store_true', help='run the full 7B shape without a GPU')
    p.add_argument('--out', type=Path, default=Path('bench/gpu_results.json'), help='JSON of this run (replaced)')
    a = p.parse_args(argv)
    if a.warmup < 1 or a.steps < 1: p.error('--warmup and --steps must be >= 1')
    a.variants = [x.strip() for x in a.attn.split(',') if x.strip()]
    for v in a.variants: parse_variant(v)
    if not a.variants: p.error('--attn: name at least one attention implementation')
    return a


def check_model_dir(path:Path|None, fields:dict):
    "Stop unless `path` is None, new, or holds exactly the benchmark model of `fields` (checked before any work)."
    if path is None or not path.exists(): return
    mark = path/'bench_model.json'
    if not (mark.is_file() and mark.read_text() == _marker(fields)):
        fail(f"--model-dir {path} exists but does not hold this benchmark model ({mark.name} missing or for another "
             "shape): name a new folder, or remove it")


def result(a, cfg, fields:dict, gpu:str, peak:float|None, loaded:float, rows:list)->dict:
    "What the JSON file holds: the settings, the machine and the figures of each variant."
    body, head = matmul_params(fields)
    return {'date': time.strftime('%Y-%m-%d'), 'device': gpu, 'peak_tflops': peak, 'versions': versions(),
            'shape': a.shape, 'layers': fields['num_hidden_layers'], 'seq': a.seq, 'load_in_4bit': cfg.load_in_4bit,
            'lora_r': a.lora_r, 'gradient_checkpointing': True, 'batching': cfg.batching,
            'examples_per_step': cfg.per_device_train_batch_size, 'warmup_steps': a.warmup,
            'matmul_params': {'blocks': body, 'output_layer': head}, 'model_load_s': round(loaded, 1), 'results': rows}


def main(argv=None):
    a = parse_args(argv)
    import torch
    from mirastral.data import atomic_write_text
    from mirastral.train import TrainConfig, load_datasets, model_for
    cuda = torch.cuda.is_available()
    fields = model_config(a.shape, a.layers)
    if not cuda and a.shape == '7b' and fields['num_hidden_layers'] > 2 and not a.allow_cpu:
        fail("no CUDA GPU here: the full 7B shape needs one (--layers 1 or --shape tiny check the path on a CPU)")
    check_model_dir(a.model_dir, fields)
    gpu = torch.cuda.get_device_name() if cuda else 'CPU'
    peak = a.peak_tflops or (peak_tflops(gpu) if cuda else None)
    work = Path(tempfile.mkdtemp(prefix='mirastral-bench-'))
    try:
        t0 = time.perf_counter()
        data = a.data or demo_data(work, max(40, round(a.conversations / 0.95) + 10))  # >= 2 validation conversations
        model_dir = a.model_dir or work/'model'
        cfg = TrainConfig(model_name_or_path=str(model_dir), data_dir=str(data), output_dir=str(work/'run'),
                          load_in_4bit=not a.no_4bit, gradient_checkpointing='true', modules_to_save='',
                          lora_r=a.lora_r, lora_alpha=2 * a.lora_r, lora_dropout=0.0, max_seq_len=a.seq,
                          attn_implementation='packed_sdpa', learning_rate=2e-4, max_steps=a.warmup + a.steps,
                          per_device_train_batch_size=1, logging_steps=10**6, eval_steps=10**6, save_steps=10**6,
                          report_to='none', max_train_samples=a.conversations, max_eval_samples=2, tokenize_cache=False)
        train_ds, eval_ds, st = load_datasets(cfg, progress=False)  # before CUDA is used: tokenizing forks workers
        avg = st['train']['tokens'] / st['train']['examples']
        cfg.per_device_train_batch_size = max(1, round(a.seq / avg))
        make_model(fields, model_dir)
        body, head = matmul_params(fields)
        print(f"{gpu} (peak {peak or '?'} TFLOP/s bf16); {a.shape} shape, {fields['num_hidden_layers']} layer(s) "
              f"({(body + head) / 1e9:.2f} B matmul parameters); {st['train']['examples']} examples of {avg:.0f} "
              f"tokens on average, {cfg.per_device_train_batch_size} packed a step; data and model made in "
              f"{time.perf_counter() - t0:.0f} s", flush=True)
        t1 = time.perf_counter()
        model = model_for(cfg)
        loaded = time.perf_counter() - t1
        print(f"model loaded ({'4-bit NF4' if cfg.load_in_4bit else 'bf16'}, LoRA r={a.lora_r}) in {loaded:.0f} s",
              flush=True)
        rows = []
        a.out.parent.mkdir(parents=True, exist_ok=True)
        for attn in a.variants:
            why = attn_available(parse_variant(attn)[0])
            if why:
                rows.append({'attn': attn, 'skipped': why})
                print(f"{attn}: skipped ({why})", flush=True)
                continue
            try:
                rows.append(run_variant(a, cfg, model, train_ds, eval_ds, fields, attn, cuda, peak))
                print(f"{attn}: {rows[-1]['tokens_per_s']:,.0f} real tokens/s", flush=True)
            except Exception as e:  # one variant failing (out of memory, a missing kernel) leaves the others measured
                traceback.print_exc()
                rows.append({'attn': attn, 'error': f'{type(e).__name__}: {e}'[:300]})
                gc.collect()
                if cuda: torch.cuda.empty_cache()
            atomic_write_text(a.out, json.dumps(result(a, cfg, fields, gpu, peak, loaded, rows), indent=2) + '\n')
        print(f"written {a.out}\n{table(rows)}")
        return 0 if rows and not any('error' in r for r in rows) else 1
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == '__main__':
    try: sys.exit(main())
    except (ValueError, OSError) as e: fail(e)  # bad data or paths (a variant's own failure is in its row instead)
