"""Training throughput, side by side: the naive seed-style baseline, TRL's SFTTrainer, and MiraStral.

    python bench/bench_train.py                       # both datasets, every arm (about 30 min on 2 CPU cores)
    python bench/bench_train.py --steps 10 --datasets demo --arms naive,mirastral   # a quick look

Same data, same tiny model and LoRA setup (`TrainConfig` defaults: r=16 on all projections + full embeddings and
output layer), same optimizer, schedule and number of optimizer steps, about the same tokens per step; one arm after
the other, each in its own process (so its peak RSS is its own). Two datasets:
  demo   the demo corpus (reformatted here), its serving-parity examples;
  long   the same conversations joined 2-5 at a time into long sessions (max_seq_len 4096), so lengths vary a lot.
Arms:
  naive             `DataCollatorForLanguageModeling`: right padding to the longest in the batch, loss on every token,
                    random order, logits at every position (what a seed-style script does);
  trl_packing       TRL `SFTTrainer`, `packing=True` (BFD bins of max_seq_len, padding-free), completion-only loss;
  trl_padding_free  TRL `SFTTrainer`, `padding_free=True` without packing (each batch flattened into one row);
  trl_padded        TRL `SFTTrainer`, padded batches, completion-only loss;
  mirastral_padded  MiraStral, `batching='padded'`: length-grouped left-padded batches, output layer on targets only;
  mirastral_sdpa    MiraStral's packed rows on plain `sdpa` (transformers' block-diagonal mask over the whole row);
  mirastral         MiraStral's default: packed rows with `packed_sdpa` attention, output layer on targets only.
TRL's padding-free and packed batches run on `sdpa` here (no FlashAttention on a CPU); transformers then builds a
block-diagonal mask over the whole packed row.
Per arm: real (non-pad) tokens/s, loss-bearing tokens/s, padding share, tokens per step, peak RSS, wall time and the
validation loss on assistant tokens (the same measure for every arm, so speed is never bought with a broken
objective). Also: reformat and tokenisation throughput (cold, then from the cache) and the serving-parity expansion.
Prints a table, writes JSON and a PNG bar chart. Figures, not tests: nothing here asserts a speed.
"""
import argparse, json, os, platform, random, resource, shutil, subprocess, sys, tempfile, time
from pathlib import Path

ARMS = ['naive', 'trl_packing', 'trl_padding_free', 'trl_padded', 'mirastral_padded', 'mirastral_sdpa', 'mirastral']
DATASETS = {'demo': 2048, 'long': 4096}  # dataset -> max_seq_len

# ---------------------------------------------------------------------------------------------------------------- data
def make_long(src:Path, dst:Path, seed:int=0):
    "Join 2-5 consecutive conversations of `src` into one long session (first system prompt, union of tools)."
    from mirastral.data import read_jsonl
    rng = random.Random(seed)
    dst.mkdir(parents=True, exist_ok=True)
    for split in ('train', 'val'):
        recs, out, i = read_jsonl(src/f'{split}.jsonl'), [], 0
        while i < len(recs):
            group = recs[i:i + rng.randint(2, 5)]
            i += len(group)
            msgs, tools = [], {}
            for r in group:
                msgs += [m for m in r['messages'] if not (msgs and m['role'] == 'system')]
                for t in r.get('tools') or []: tools[t['function']['name']] = t
            out.append({'messages': msgs, 'tools': list(tools.values()), 'meta': {'source': 'long', 'tokens': None}})
        (dst/f'{split}.jsonl').write_text(''.join(json.dumps(r) + '\n' for r in out))

def prepare_data(work:Path, n:int)->dict:
    "Demo corpus -> reformat (timed) -> long variant. Returns the reformat figures."
    from mirastral.demo import write_demo_corpus
    from mirastral.data import reformat
    if not (work/'demo'/'train.jsonl').exists():
        shutil.rmtree(work/'raw', ignore_errors=True)
        write_demo_corpus(work/'raw', n=n)
        t0 = time.perf_counter()
        rep = reformat(work/'raw', work/'demo', progress=False)
        dt = time.perf_counter() - t0
        (work/'reformat.json').write_text(json.dumps({'conversations': rep['totals']['read'], 'seconds': round(dt, 2)}))
    make_long(work/'demo', work/'long')
    r = json.loads((work/'reformat.json').read_text())
    return {**r, 'conversations_per_s': round(r['conversations'] / r['seconds'])}

def tokenize_figures(data:Path, max_seq_len:int, n_train:int)->dict:
    "Tokenisation throughput cold (fresh cache) and warm (from the cache), and the serving-parity expansion."
    from mirastral.train import TrainConfig, load_datasets
    was, cache = os.environ.get('MIRASTRAL_CACHE'), tempfile.mkdtemp(prefix='mira-bench-cache-')
    os.environ['MIRASTRAL_CACHE'] = cache  # a fresh cache: the first load is cold
    try:
        cfg = TrainConfig(data_dir=str(data), max_seq_len=max_seq_len, max_train_samples=n_train, max_eval_samples=60)
        _, _, cold = load_datasets(cfg, progress=False)
        _, _, warm = load_datasets(cfg, progress=False)
    finally:
        shutil.rmtree(cache, ignore_errors=True)
        if was is None: os.environ.pop('MIRASTRAL_CACHE')
        else: os.environ['MIRASTRAL_CACHE'] = was
    convs = cold['train']['conversations'] + cold['eval']['conversations']
    return {'conversations': convs, 'examples': cold['train']['examples'], 'tokens': cold['train']['tokens'],
            'target_tokens': cold['train']['target_tokens'], 'expansion': cold['train']['expansion'],
            'tokenize_cold_s': cold['seconds'], 'tokenize_cached_s': warm['seconds'],
            'tokenize_conversations_per_s': round(convs / cold['seconds'], 1), 'cache': warm['cache'].split()[0]}

# ---------------------------------------------------------------------------------------------------------------- arms
def counted(collate, counts):
    "Wrap a collator to count positions, real tokens and loss-bearing tokens of every training batch."
    def f(feats):
        b = collate(feats)
        n = b['input_ids'].numel()
        counts['positions'] += n
        counts['batches'] += 1
        counts['real'] += int(b['attention_mask'].sum()) if 'attention_mask' in b else n
        counts['loss'] += int((b['labels'][:, 1:] != -100).sum())
        return b
    return f

def run_arm(arm:str, data:Path, steps:int, batch:int, n_train:int, max_seq_len:int, out:Path)->dict:
    import torch
    from datasets import Dataset
    from transformers import DataCollatorForLanguageModeling, Trainer
    from mirastral.data import read_jsonl
    from mirastral.evaluate import lm_loss, reference_turns
    from mirastral.model import hf_tokenizer
    from mirastral.train import TrainConfig, model_for, build_trainer, training_arguments, load_datasets
    torch.manual_seed(0)
    mira = arm.startswith('mirastral')
    cfg = TrainConfig(data_dir=str(data), output_dir=str(out), max_steps=steps, per_device_train_batch_size=batch,
                      max_seq_len=max_seq_len, max_train_samples=n_train, eval_steps=10**9, save_steps=10**9,
                      report_to='none',
                      lora_dropout=0.0, batching='padded' if arm == 'mirastral_padded' else 'packed',
                      attn_implementation='packed_sdpa' if mira and arm != 'mirastral_sdpa' else 'sdpa')
    train_ds, eval_ds, _ = load_datasets(cfg, progress=False)
    tok, counts = hf_tokenizer(), {'positions': 0, 'real': 0, 'loss': 0, 'batches': 0}
    model = model_for(cfg)
    if mira:
        trainer = build_trainer(cfg, model, train_ds, eval_ds.select(range(4)), tok, out, progress=False)
    elif arm == 'naive':
        args = training_arguments(cfg, out, progress=False)
        args.train_sampling_strategy, args.eval_strategy = 'random', 'no'
        trainer = Trainer(model=model, args=args, train_dataset=train_ds.select_columns(['input_ids']),
                          eval_dataset=None,
                          data_collator=DataCollatorForLanguageModeling(tok, mlm=False))
    else:
        from trl import SFTConfig, SFTTrainer
        mean_len = sum(train_ds['length']) / len(train_ds)
        kw = {'trl_packing': dict(packing=True, packing_strategy='bfd', max_length=max_seq_len,
                                  per_device_train_batch_size=max(1, round(batch * mean_len / max_seq_len))),
              'trl_padding_free': dict(padding_free=True, max_length=None, per_device_train_batch_size=batch),
              'trl_padded': dict(max_length=max_seq_len, per_device_train_batch_size=batch)}[arm]
        ds = Dataset.from_dict({'input_ids': train_ds['input_ids'],
                                'completion_mask': [[int(l != -100) for l in ls] for ls in train_ds['labels']]})
        args = SFTConfig(output_dir=str(out), max_steps=steps, learning_rate=cfg.learning_rate,
                         lr_scheduler_type=cfg.lr_scheduler_type,
                         warmup_steps=cfg.warmup_steps, weight_decay=cfg.weight_decay, max_grad_norm=cfg.max_grad_norm,
                         seed=cfg.seed, data_seed=cfg.seed, logging_steps=10, save_strategy='no', eval_strategy='no',
                         report_to=[], use_cpu=True, disable_tqdm=True, completion_only_loss=True,
                         dataset_num_proc=None, **kw)
        tok.pad_token = tok.eos_token  # TRL refuses a pad token outside the vocabulary; padded positions carry no loss
        trainer = SFTTrainer(model=model, args=args, train_dataset=ds, processing_class=tok)
    trainer.data_collator = counted(trainer.data_collator, counts)
    t0 = time.perf_counter()
    res = trainer.train()
    wall = time.perf_counter() - t0
    rt = res.metrics['train_runtime']
    val = lm_loss(trainer.model.eval(), reference_turns(read_jsonl(data/'val.jsonl')[:40]))
    return {'arm': arm, 'steps': steps, 'train_runtime_s': round(rt, 1), 'wall_s': round(wall, 1),
            'real_tokens_per_s': round(counts['real'] / rt), 'loss_tokens_per_s': round(counts['loss'] / rt),
            'padding_share': round(1 - counts['real'] / counts['positions'], 4),
            'tokens_per_step': round(counts['real'] / counts['batches']),
            'peak_rss_mb': round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
            'peak_cuda_mb': round(torch.cuda.max_memory_allocated() / 2**20) if torch.cuda.is_available() else None,
            'val_loss': val['loss']}

# -------------------------------------------------------------------------------------------------------------- report
KEYS = ['real_tokens_per_s', 'loss_tokens_per_s', 'padding_share', 'tokens_per_step', 'peak_rss_mb', 'train_runtime_s',
        'val_loss']

def table(rows:list[dict])->str:
    lines = [f"{'':18}" + ''.join(f'{k:>19}' for k in KEYS)]
    for r in rows:
        cells = ''.join(f"{('-' if r.get(k) is None else r[k]):>19}" for k in KEYS)
        lines.append(f"{r['arm']:18}" + cells if 'error' not in r else f"{r['arm']:18}  failed: {r['error']}")
    return '\n'.join(lines)

def headline(rows:list[dict])->str:
    ok = {r['arm']: r for r in rows if 'error' not in r}
    m, n = ok.get('mirastral'), ok.get('naive')
    trl = [r for a, r in ok.items() if a.startswith('trl')]
    out = []
    if m and n: out.append(f"mirastral / naive: real tokens/s x{m['real_tokens_per_s'] / n['real_tokens_per_s']:.2f}, "
                           f"val loss {m['val_loss']} vs {n['val_loss']}")
    if m and trl:
        b = max(trl, key=lambda r: r['real_tokens_per_s'])
        ratio = m['real_tokens_per_s'] / b['real_tokens_per_s']
        out.append(f"mirastral / best TRL ({b['arm']}): real tokens/s x{ratio:.2f}, "
                   f"val loss {m['val_loss']} vs {b['val_loss']}")
    if m: out.append(f"mirastral padding share {100 * m['padding_share']:.1f}%")
    return '\n'.join(out)

def plot(results:dict, path:Path):
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    sets = list(results['datasets'])
    fig, axes = plt.subplots(len(sets), 2, figsize=(13, 3.6 * len(sets)), squeeze=False)
    for (ax1, ax2), name in zip(axes, sets):
        rows = [r for r in results['datasets'][name]['arms'] if 'error' not in r]
        arms = [r['arm'] for r in rows]
        colors = ['tab:green' if a == 'mirastral' else 'tab:gray' if a == 'naive' else 'tab:blue' for a in arms]
        ax1.barh(arms, [r['real_tokens_per_s'] for r in rows], color=colors)
        ax1.set_xlabel('real (non-pad) tokens / s')
        ax1.set_title(f'{name}: training throughput')
        ax1.invert_yaxis()
        for i, r in enumerate(rows):
            ax1.text(r['real_tokens_per_s'], i, f" {r['real_tokens_per_s']:,}", va='center', fontsize=8)
        ax2.barh(arms, [r['val_loss'] for r in rows], color=colors)
        ax2.set_xlabel('validation loss on assistant tokens (lower is better)')
        ax2.set_title(f"{name}: after {rows[0]['steps'] if rows else '?'} steps")
        ax2.invert_yaxis()
        for i, r in enumerate(rows): ax2.text(r['val_loss'], i, f" {r['val_loss']:.3f}", va='center', fontsize=8)
    fig.suptitle(f"MiraStral training benchmark ({results['machine']})", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)

def cpu_model()->str:
    try: return next(l.split(':', 1)[1].strip() for l in open('/proc/cpuinfo') if l.startswith('model name'))
    except (OSError, StopIteration): return platform.processor() or 'unknown CPU'

def main():
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--steps', type=int, default=30)
    p.add_argument('--batch', type=int, default=8)
    p.add_argument('--train-conversations', type=int, default=400)
    p.add_argument('--corpus', type=int, default=2000, help='demo conversations generated and reformatted')
    p.add_argument('--datasets', default='demo,long')
    p.add_argument('--arms', default=','.join(ARMS))
    p.add_argument('--work', type=Path, default=Path('runs/bench'))
    p.add_argument('--out', type=Path, default=Path('bench/train_results.json'))
    p.add_argument('--arm', default=None, help=argparse.SUPPRESS)
    p.add_argument('--data', type=Path, help=argparse.SUPPRESS)
    p.add_argument('--max-seq-len', type=int, default=2048, help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.arm:  # child process: one arm, JSON on the last line
        out = Path(tempfile.mkdtemp(prefix=f'mira-bench-{a.arm}-'))  # private and fresh: nothing planted there is used
        try: print(json.dumps(run_arm(a.arm, a.data, a.steps, a.batch, a.train_conversations, a.max_seq_len, out)))
        finally: shutil.rmtree(out, ignore_errors=True)
        return
    import torch
    arms, sets = a.arms.split(','), a.datasets.split(',')
    unknown = sorted(set(arms) - set(ARMS)) + sorted(set(sets) - set(DATASETS))
    if unknown: p.error(f"unknown arm(s)/dataset(s) {unknown}; arms: {ARMS}; datasets: {list(DATASETS)}")
    machine = f"{cpu_model()}, {os.cpu_count()} cores, torch {torch.__version__}"
    print(f"{machine}; {a.steps} steps x batch {a.batch}, {a.train_conversations} training conversations", flush=True)
    results = {'date': time.strftime('%Y-%m-%d'), 'machine': machine, 'steps': a.steps, 'batch': a.batch,
               'reformat': prepare_data(a.work, a.corpus), 'datasets': {}}
    print(f"reformat: {results['reformat']['conversations']} conversations in {results['reformat']['seconds']} s "
          f"({results['reformat']['conversations_per_s']}/s)", flush=True)
    for name in sets:
        data, msl = a.work/name, DATASETS[name]
        tk = tokenize_figures(data, msl, a.train_conversations)
        print(f"\n[{name}] max_seq_len {msl}: {tk['examples']} examples, {tk['tokens']:,} tokens "
              f"({tk['target_tokens']:,} with loss); serving-parity expansion x{tk['expansion']}; "
              f"tokenised {tk['tokenize_conversations_per_s']} conversations/s cold, "
              f"{tk['tokenize_cached_s']} s from the cache (vs {tk['tokenize_cold_s']} s)", flush=True)
        rows = []
        for arm in arms:
            print(f"  {arm} ...", end=' ', flush=True)
            r = subprocess.run([sys.executable, __file__, '--arm', arm, '--data', str(data), '--steps', str(a.steps),
                                '--batch', str(a.batch), '--train-conversations', str(a.train_conversations),
                                '--max-seq-len', str(msl)], capture_output=True, text=True)
            if r.returncode:
                err = (r.stderr.strip().splitlines() or ['?'])[-1][:200]
                rows.append({'arm': arm, 'error': err})
                print(f"failed: {err}")
            else:
                rows.append(json.loads(r.stdout.strip().splitlines()[-1]))
                print(f"{rows[-1]['real_tokens_per_s']:,} tokens/s", flush=True)
        results['datasets'][name] = {'max_seq_len': msl, 'tokenisation': tk, 'arms': rows}
        print(table(rows))
        print(headline(rows), flush=True)
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(results, indent=2) + '\n')
    plot(results, a.out.with_suffix('.png'))
    print(f"\nsaved {a.out} and {a.out.with_suffix('.png')}")

if __name__ == '__main__': main()
