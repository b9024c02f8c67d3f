"""QLoRA throughput on a Mistral-7B-shaped model: tokens/s, peak VRAM and model-FLOPs utilisation (for a GPU node).

    python bench/bench_gpu.py                          # 7B shape, 4-bit NF4 + LoRA r=16 on all projections, seq 2048
    python bench/bench_gpu.py --attn sdpa --steps 30   # compare attention implementations
    python bench/bench_gpu.py --shape tiny --steps 3   # the same code path on the tiny shape (runs on a CPU)

The model has the real Mistral-7B-v0.3 shape (hidden 4096, 32 layers, 32 heads / 8 KV heads, intermediate 14336,
vocabulary 32768) with random weights, made locally in bf16, saved as safetensors and loaded back through
MiraStral's own 4-bit path (`load_model(..., load_in_4bit=True)`, `add_lora`, gradient checkpointing): nothing is
downloaded. Batches are the demo corpus's serving-parity examples, packed (`batching='packed'`) to about
`--seq` tokens per optimizer step, trained by MiraStral's `Trainer` (output layer on target tokens only).

Reported: real tokens/s, peak CUDA memory (allocated and reserved), and MFU = tokens/s x 6 x N / peak, with N the
matmul parameters of the base model (about 7.0e9 for the 7B shape, embeddings excluded) and peak the card's dense
bf16 rate (`--peak-tflops`, default 989 for an H100 SXM). 6·N per token is the usual full fine-tuning count; LoRA
skips the weight gradients (about 2·N) but gradient checkpointing recomputes the forward (about 2·N), so 6·N is
the comparable figure. Liger kernels are tried with `--liger` when `liger-kernel` is installed.
Figures, not tests: record them with the GPU model and date in bench/RESULTS.md.
"""
import argparse, json, os, shutil, sys, tempfile, time
from pathlib import Path

SHAPES = {'7b': dict(hidden_size=4096, intermediate_size=14336, num_hidden_layers=32, num_attention_heads=32, num_key_value_heads=8,
                     head_dim=128),
          'tiny': dict(hidden_size=128, intermediate_size=384, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2, head_dim=32)}

def make_model(shape:str, path:Path)->Path:
    "A random-init Mistral of `shape` saved as bf16 safetensors (reused when present)."
    import torch
    from transformers import MistralConfig, MistralForCausalLM
    if (path/'config.json').exists(): return path
    cfg = MistralConfig(vocab_size=32768, max_position_embeddings=32768, rope_theta=1_000_000.0, tie_word_embeddings=False,
                        bos_token_id=1, eos_token_id=2, pad_token_id=11, sliding_window=None, **SHAPES[shape])
    dev = 'cuda' if torch.cuda.is_available() else 'cpu'
    torch.manual_seed(0); torch.set_default_dtype(torch.bfloat16)
    with torch.device(dev): model = MistralForCausalLM(cfg)
    torch.set_default_dtype(torch.float32)
    model.save_pretrained(path, safe_serialization=True); del model
    if dev == 'cuda': torch.cuda.empty_cache()
    return path

def matmul_params(path:Path)->int:
    "Parameters in the transformer's matmuls (attention + MLP + output layer), embeddings excluded."
    c = json.loads((path/'config.json').read_text())
    h, i, L, kv = c['hidden_size'], c['intermediate_size'], c['num_hidden_layers'], c['num_key_value_heads'] * c['head_dim']
    q = c['num_attention_heads'] * c['head_dim']
    return L * (h * q + 2 * h * kv + q * h + 3 * h * i) + h * c['vocab_size']

def main():
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--shape', choices=list(SHAPES), default='7b'); p.add_argument('--seq', type=int, default=2048)
    p.add_argument('--steps', type=int, default=20); p.add_argument('--warmup', type=int, default=3, help='steps not timed')
    p.add_argument('--attn', default='packed_sdpa', help="packed_sdpa, sdpa, flash_attention_2 (if installed), eager")
    p.add_argument('--liger', action='store_true', help="TrainingArguments.use_liger_kernel (needs liger-kernel)")
    p.add_argument('--peak-tflops', type=float, default=989.0, help='dense bf16 peak of the card (H100 SXM 989, A100 312)')
    p.add_argument('--model-dir', type=Path, default=Path(tempfile.gettempdir())/'mirastral-bench-7b')
    p.add_argument('--data', type=Path, default=Path('runs/bench/demo'), help='a reformat output (made if missing)')
    p.add_argument('--out', type=Path, default=Path('bench/gpu_results.json'))
    a = p.parse_args()
    import torch
    from transformers import TrainerCallback
    from mirastral.data import read_jsonl
    from mirastral.train import TrainConfig, load_datasets, model_for, build_trainer
    from mirastral.model import hf_tokenizer
    cuda = torch.cuda.is_available()
    if not cuda and a.shape == '7b': sys.exit("no CUDA GPU here: the 7B shape needs one (use --shape tiny to check the path on a CPU)")
    if not (a.data/'train.jsonl').exists():
        from mirastral.demo import write_demo_corpus
        from mirastral.data import reformat
        write_demo_corpus(a.data.parent/'raw', n=600); reformat(a.data.parent/'raw', a.data, progress=False)
    model_dir = a.model_dir if a.shape == '7b' else a.model_dir.with_name(a.model_dir.name + '-tiny')
    t0 = time.perf_counter(); make_model(a.shape, model_dir); made = time.perf_counter() - t0
    n_mm = matmul_params(model_dir)
    gpu = torch.cuda.get_device_name() if cuda else 'CPU'
    print(f"{gpu}; {a.shape} shape ({n_mm / 1e9:.2f} B matmul params), made in {made:.0f} s; attention {a.attn}", flush=True)

    # Examples per step so a packed step holds about --seq tokens.
    cfg = TrainConfig(model_name_or_path=str(model_dir), data_dir=str(a.data), output_dir=str(Path(tempfile.mkdtemp())/'run'),
                      load_in_4bit=True, gradient_checkpointing='true', modules_to_save='', lora_r=16, lora_alpha=32,
                      lora_dropout=0.0, max_seq_len=a.seq, attn_implementation=a.attn, learning_rate=2e-4,
                      max_steps=a.steps + a.warmup, per_device_train_batch_size=1, logging_steps=10**9, eval_steps=10**9,
                      save_steps=10**9, report_to='none', max_train_samples=0, max_eval_samples=4)
    train_ds, eval_ds, st = load_datasets(cfg, progress=False)
    cfg.per_device_train_batch_size = max(1, round(a.seq / (st['train']['tokens'] / st['train']['examples'])))
    model = model_for(cfg)
    trainer = build_trainer(cfg, model, train_ds, eval_ds, hf_tokenizer(), Path(cfg.output_dir), progress=True)
    if a.liger:
        try: import liger_kernel  # noqa: F401
        except ImportError: sys.exit("--liger: liger-kernel is not installed")
        trainer.args.use_liger_kernel = True

    class Timer(TrainerCallback):
        "Times optimizer steps after the warm-up ones and counts their tokens."
        def __init__(self): self.t, self.tokens, self.steps = None, 0, 0
        def on_step_begin(self, args, state, control, **kw):
            if state.global_step == a.warmup:
                if cuda: torch.cuda.synchronize(); torch.cuda.reset_peak_memory_stats()
                self.t = time.perf_counter()
        def on_step_end(self, args, state, control, **kw):
            if self.t is not None: self.steps += 1
    timer = Timer(); trainer.add_callback(timer)
    collate = trainer.data_collator
    def counted(feats):
        b = collate(feats)
        if timer.t is not None: timer.tokens += b['input_ids'].numel()
        return b
    trainer.data_collator = counted
    trainer.train()
    if cuda: torch.cuda.synchronize()
    dt = time.perf_counter() - timer.t
    tps = timer.tokens / dt
    r = {'date': time.strftime('%Y-%m-%d'), 'device': gpu, 'shape': a.shape, 'attn': a.attn, 'liger': a.liger, 'seq': a.seq,
         'examples_per_step': cfg.per_device_train_batch_size, 'timed_steps': timer.steps, 'tokens_per_s': round(tps),
         'tokens_per_step': round(timer.tokens / max(timer.steps, 1)),
         'peak_vram_gb': round(torch.cuda.max_memory_allocated() / 1e9, 2) if cuda else None,
         'peak_vram_reserved_gb': round(torch.cuda.max_memory_reserved() / 1e9, 2) if cuda else None,
         'matmul_params': n_mm, 'mfu': round(tps * 6 * n_mm / (a.peak_tflops * 1e12), 4) if cuda else None}
    print(json.dumps(r, indent=2))
    a.out.parent.mkdir(parents=True, exist_ok=True)
    prev = json.loads(a.out.read_text()) if a.out.exists() else []
    a.out.write_text(json.dumps(prev + [r], indent=2) + '\n'); print(f"appended to {a.out}")
    shutil.rmtree(Path(cfg.output_dir).parent, ignore_errors=True)

if __name__ == '__main__': main()
