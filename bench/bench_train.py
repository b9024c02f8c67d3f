"""Training throughput: MiraStral's default batching against the naive seed-style baseline, side by side.

    python bench/bench_train.py [--steps 60] [--data runs/demo/data] [--out bench/train_results.json]

Same data (the demo corpus's serving-parity examples), same tiny model and LoRA setup, same optimizer steps and batch,
one arm after the other, each in its own process (so peak RSS is its own):
  naive     `DataCollatorForLanguageModeling`: right padding to the longest in the batch, loss on every token,
            random order, logits at every position (what a seed-style script does);
  mirastral length-grouped left-padded batches, output layer and loss on the assistant-token window only.
Reported per arm: real (non-pad) tokens/s, loss-bearing tokens/s, padding share, peak RSS, wall time, and the
validation loss on assistant tokens (the same objective for both, so speed is not bought with a broken one).
TRL's SFTTrainer arm and packing are issue 5's open work; this script prints figures and never fails on them.
"""
import argparse, json, resource, subprocess, sys, time
from pathlib import Path

def run_arm(arm:str, data:Path, steps:int, batch:int, n_train:int)->dict:
    import torch
    from transformers import DataCollatorForLanguageModeling, Trainer
    from mirastral.data import read_jsonl
    from mirastral.examples import build_examples
    from mirastral.evaluate import lm_loss, reference_turns
    from mirastral.model import hf_tokenizer
    from mirastral.train import TrainConfig, model_for, build_trainer, training_arguments
    from datasets import Dataset
    torch.manual_seed(0)
    cfg = TrainConfig(data_dir=str(data), output_dir=f'/tmp/bench_{arm}', max_steps=steps, per_device_train_batch_size=batch,
                      eval_steps=10**9, save_steps=10**9, report_to='none', lora_dropout=0.0)
    exs, _ = build_examples(read_jsonl(data/'train.jsonl')[:n_train], cfg.max_seq_len, progress=False)
    tok = hf_tokenizer()
    counts = {'positions': 0, 'real': 0, 'loss': 0}
    def counted(collate):
        def f(feats):
            b = collate(feats)
            counts['positions'] += b['input_ids'].numel(); counts['real'] += int(b['attention_mask'].sum())
            counts['loss'] += int((b['labels'][:, 1:] != -100).sum()); return b
        return f
    model = model_for(cfg)
    if arm == 'naive':
        ds = Dataset.from_dict({'input_ids': [e['input_ids'] for e in exs]})
        args = training_arguments(cfg, Path(cfg.output_dir), progress=False)
        args.train_sampling_strategy = 'random'
        trainer = Trainer(model=model, args=args, train_dataset=ds, eval_dataset=ds.select(range(4)),
                          data_collator=counted(DataCollatorForLanguageModeling(tok, mlm=False)))
    else:
        ds = Dataset.from_dict({'input_ids': [e['input_ids'] for e in exs], 'labels': [e['labels'] for e in exs],
                                'length': [len(e['input_ids']) for e in exs]})
        trainer = build_trainer(cfg, model, ds, ds.select(range(4)), tok, Path(cfg.output_dir), progress=False)
        trainer.data_collator = counted(trainer.data_collator)
    t0 = time.perf_counter(); res = trainer.train(); wall = time.perf_counter() - t0
    rt = res.metrics['train_runtime']
    val = lm_loss(trainer.model.eval(), reference_turns(read_jsonl(data/'val.jsonl')[:40]))
    return {'arm': arm, 'steps': steps, 'batch': batch, 'train_runtime_s': round(rt, 1), 'wall_s': round(wall, 1),
            'real_tokens_per_s': round(counts['real'] / rt), 'loss_tokens_per_s': round(counts['loss'] / rt),
            'padding_share': round(1 - counts['real'] / counts['positions'], 4),
            'peak_rss_mb': round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
            'val_loss_assistant_tokens': val['loss']}

def main():
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--steps', type=int, default=60); p.add_argument('--batch', type=int, default=8)
    p.add_argument('--train-conversations', type=int, default=400)
    p.add_argument('--data', type=Path, default=Path('runs/demo/data'))
    p.add_argument('--out', type=Path, default=Path('bench/train_results.json'))
    p.add_argument('--arm', default=None, help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.arm:  # child process: one arm, JSON on the last line
        print(json.dumps(run_arm(a.arm, a.data, a.steps, a.batch, a.train_conversations))); return
    if not (a.data/'train.jsonl').exists():
        sys.exit(f"{a.data}/train.jsonl not found: run `mirastral demo --max-steps 0` first (or pass --data)")
    rows = []
    for arm in ('naive', 'mirastral'):
        print(f"running {arm} ({a.steps} steps x batch {a.batch}) ...", flush=True)
        r = subprocess.run([sys.executable, __file__, '--arm', arm, '--steps', str(a.steps), '--batch', str(a.batch),
                            '--train-conversations', str(a.train_conversations), '--data', str(a.data)], capture_output=True, text=True)
        if r.returncode: sys.exit(f"{arm} failed:\n{r.stderr[-3000:]}")
        rows.append(json.loads(r.stdout.strip().splitlines()[-1]))
    keys = ['real_tokens_per_s', 'loss_tokens_per_s', 'padding_share', 'peak_rss_mb', 'train_runtime_s', 'val_loss_assistant_tokens']
    print(f"{'':28}" + ''.join(f'{r["arm"]:>12}' for r in rows))
    for k in keys: print(f"{k:28}" + ''.join(f'{r[k]:>12}' for r in rows))
    n, m = rows
    print(f"mirastral / naive: real tokens/s x{m['real_tokens_per_s'] / n['real_tokens_per_s']:.2f}, "
          f"wall x{n['train_runtime_s'] / m['train_runtime_s']:.2f} faster")
    a.out.write_text(json.dumps(rows, indent=2) + '\n'); print(f"saved {a.out}")

if __name__ == '__main__': main()
