"""Faults of `mirastral train` (and `warmup`): bad settings, bad data, a model that cannot be trained here, another run
in output_dir, a run already going, a kill mid-checkpoint. Each is a clear one-line error (status 2) with nothing left
behind and the old run intact, or the right result (status 0)."""
import json, shutil
from pathlib import Path
from . import Case

def data(c, name='data'):
    "A copy of the demo data in the case's own folder, to damage."
    d = c.tmp/name
    if not d.exists(): shutil.copytree(c.demo[1], d)
    return d

def small(c, *more, data_dir=None):
    "A small training run of the embedded model into c.tmp/out."
    return ['train', '-p', 'data_dir', data_dir or c.demo[1], '-p', 'output_dir', c.tmp/'out',
            '-p', 'max_train_samples', '8', '-p', 'max_eval_samples', '2', '-p', 'max_steps', '2',
            '-p', 'per_device_train_batch_size', '2', '-p', 'report_to', 'none', '--no-progress', *more]

def P(*pairs):
    "Arguments of a small run with more `-p NAME VALUE` pairs."
    return lambda c: small(c, *[x for i in range(0, len(pairs), 2) for x in ('-p', pairs[i], pairs[i + 1])])

def DAMAGED(c): return small(c, data_dir=data(c))                 # a small run on the damaged copy of the data
def CONFIG(c): return small(c, '--config', c.tmp/'c.yaml')        # a small run with the case's config file

def again(c, *more):
    "The settings of the finished tiny run (its results/config.yaml), into its copy in c.tmp/run."
    run = c.run()
    return ['train', '--config', run/'results'/'config.yaml', '-p', 'output_dir', run, '--no-progress', *more]

def nothing_written(c, r):
    assert not (c.tmp/'out').exists(), sorted(str(p) for p in (c.tmp/'out').rglob('*'))

def run_intact(c, r):
    "The copied tiny run is as it was: its final adapter and checkpoint are the fixture's, byte for byte."
    run, orig = c.tmp/'run', c._run
    for f in ('final_model/adapter_model.safetensors', 'results/checkpoint-8/adapter_model.safetensors',
              'run_identity.json'):
        assert (run/f).read_bytes() == (orig/f).read_bytes(), f

def line(c, split, n, text):
    "Replace line `n` (1-based) of the copied data's SPLIT.jsonl with `text`."
    f = data(c)/f'{split}.jsonl'
    lines = f.read_text().splitlines()
    lines[n - 1] = text
    f.write_text('\n'.join(lines) + '\n')

def edit_record(c, split, n, edit):
    f = data(c)/f'{split}.jsonl'
    rec = json.loads(f.read_text().splitlines()[n - 1])
    edit(rec)
    line(c, split, n, json.dumps(rec))

def write(path, text):
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(text)

def seven_b(c):
    from transformers import MistralConfig
    MistralConfig(vocab_size=32768, hidden_size=4096, intermediate_size=14336, num_hidden_layers=32,
                  num_attention_heads=32, num_key_value_heads=8, head_dim=128).save_pretrained(c.tmp/'m7')

_held = []  # locks held by a case's setup while the command runs in its own process

def hold_lock(c):
    from filelock import FileLock
    lock = FileLock(str(c.run()/'.train.lock'))
    lock.acquire()
    _held.append(lock)

def release_and_check(c, r):
    _held.pop().release()
    run_intact(c, r)

def no_final(c):
    shutil.rmtree(c.run()/'final_model')

def half_written_checkpoint(c):
    "A kill while checkpoint-9 was written: weights and a truncated trainer_state.json; and no final model yet."
    no_final(c)
    ck = c.run()/'results'/'checkpoint-9'
    shutil.copytree(c.run()/'results'/'checkpoint-8', ck)
    (ck/'trainer_state.json').write_text('{"best_global_step": null, "glo')

def resumed_from_the_complete_one(c, r):
    s = json.loads((c.tmp/'run'/'final_model'/'training_summary.json').read_text())
    assert (s['steps'], s['max_steps'], s['steps_this_session']) == (8, 8, 0), s
    assert s['resumed_from'].endswith('checkpoint-8')
    assert list((c.tmp/'run'/'results'/'incomplete').glob('checkpoint-9-*'))   # kept, not deleted
    assert not (c.tmp/'run'/'results'/'checkpoint-9').exists()

def moved_aside_and_retrained(c, r):
    old = list((c.tmp/'run').glob('replaced-*'))
    assert len(old) == 1
    assert (old[0]/'final_model'/'adapter_model.safetensors').read_bytes() == \
        (c._run/'final_model'/'adapter_model.safetensors').read_bytes()
    s = json.loads((c.tmp/'run'/'final_model'/'training_summary.json').read_text())
    assert s['steps'] == 2 and s['status'] == 'finished'

CASES = [
    # the data: read and checked before anything is written or any model loaded
    Case('train-missing-data-dir', lambda c: small(c, data_dir=c.tmp/'nowhere'), 2, 'nowhere/train.jsonl not found',
         nothing_written),
    Case('train-data-dir-is-a-file', lambda c: small(c, data_dir=c.tmp/'f.jsonl'), 2, 'is a file, not a `mirastral',
         nothing_written, setup=lambda c: write(c.tmp/'f.jsonl', '{}\n')),
    Case('train-empty-val', DAMAGED, 2, 'val.jsonl has no conversations', nothing_written,
         setup=lambda c: write(data(c)/'val.jsonl', '')),
    Case('train-empty-train', DAMAGED, 2, 'train.jsonl has no conversations', nothing_written,
         setup=lambda c: write(data(c)/'train.jsonl', '\n')),
    Case('train-malformed-json-line', DAMAGED, 2, 'train.jsonl:5: not valid JSON', nothing_written,
         setup=lambda c: line(c, 'train', 5, '{"messages": [{"role": "user", "content": "hi"}')),
    Case('train-malformed-json-line-in-val', DAMAGED, 2, 'val.jsonl:2: not valid JSON', nothing_written,
         setup=lambda c: line(c, 'val', 2, 'not json at all')),
    Case('train-record-field-wrong-type', DAMAGED, 2, "train.jsonl:3: messages[1].content: expected a string, got dict",
         nothing_written, setup=lambda c: edit_record(c, 'train', 3, lambda r: r['messages'][1].update(content={}))),
    Case('train-record-unknown-role', DAMAGED, 2, "train.jsonl:2: unknown_role: message 1 has role 'bot'",
         nothing_written,
         setup=lambda c: edit_record(c, 'train', 2, lambda r: r['messages'][1].update(role='bot'))),
    Case('train-record-not-an-object', DAMAGED, 2, 'train.jsonl:1: expected a JSON object', nothing_written,
         setup=lambda c: line(c, 'train', 1, '[1, 2, 3]')),
    Case('train-record-no-messages', DAMAGED, 2, 'train.jsonl:4: messages: expected a list', nothing_written,
         setup=lambda c: line(c, 'train', 4, '{"conversations": []}')),
    Case('train-data-not-utf8', DAMAGED, 2, 'train.jsonl is not UTF-8', nothing_written,
         setup=lambda c: (data(c)/'train.jsonl').write_bytes(b'{"messages": "caf\xe9"}\n')),
    Case('train-real-model-without-data-dir', lambda c: ['train', '-p', 'model_name_or_path', 'org/real-model',
                                                         '-p', 'output_dir', c.tmp/'out'],
         2, 'never trains on the demo data', nothing_written),
    Case('train-examples-all-too-long', P('max_seq_len', '16'), 2, 'no training examples'),
    # the settings: checked when the config is made
    Case('train-gradient-accumulation-negative', P('gradient_accumulation_steps', '-1'), 2,
         'gradient_accumulation_steps: must be >= 1, got -1', nothing_written),
    Case('train-negative-learning-rate', P('learning_rate', '-0.0001'), 2, 'learning_rate: must be > 0',
         nothing_written),
    Case('train-max-steps-zero', P('max_steps', '0'), 2, 'max_steps: must be -1 (use num_train_epochs) or >= 1'),
    Case('train-overflow-bogus', P('overflow', 'bogus'), 2, "overflow: expected one of trim_history, drop"),
    Case('train-batching-bogus', P('batching', 'rows'), 2, "batching: expected one of packed, padded"),
    Case('train-bool-bogus', P('load_in_4bit', 'maybe'), 2, "load_in_4bit: expected true or false"),
    Case('train-int-given-a-fraction', P('lora_r', '3.5'), 2, "lora_r: expected an integer, got '3.5'"),
    Case('train-unknown-parameter', P('learning_rat', '1e-4'), 2, 'did you mean: learning_rat -> learning_rate?'),
    Case('train-eval-off-the-checkpoints', P('max_steps', '20', 'save_steps', '5', 'eval_steps', '6'), 2,
         'eval_steps (6) must be a multiple of save_steps (5)', nothing_written),
    Case('train-param-without-value', lambda c: ['train', '-p', 'max_steps'], 2, 'expected 2 arguments'),
    Case('train-config-is-a-directory', lambda c: small(c, '--config', c.tmp), 2, 'is a directory: --config takes'),
    Case('train-config-missing', lambda c: small(c, '--config', c.tmp/'nope.yaml'), 2, 'config file not found'),
    Case('train-config-yaml-list', CONFIG, 2, 'c.yaml must hold a mapping', nothing_written,
         setup=lambda c: write(c.tmp/'c.yaml', '- max_steps: 5\n- lora_r: 8\n')),
    Case('train-config-yaml-parse-error', CONFIG, 2, 'c.yaml is not valid YAML at line 2', nothing_written,
         setup=lambda c: write(c.tmp/'c.yaml', 'max_steps: 5\nlora_r: 8: 9\n')),
    Case('train-config-float-for-int', CONFIG, 2, 'lora_r: expected an integer, got 3.5', nothing_written,
         setup=lambda c: write(c.tmp/'c.yaml', 'lora_r: 3.5\n')),
    Case('train-config-unknown-name', CONFIG, 2, "unknown config parameter(s) ['lr'] in config file", nothing_written,
         setup=lambda c: write(c.tmp/'c.yaml', 'lr: 1.0e-4\n')),
    # the model: found, and trainable on this machine, before any weight is read
    Case('train-model-path-missing', lambda c: small(c, '-p', 'model_name_or_path', c.tmp/'no'/'model'), 2,
         'model not found: ', nothing_written),
    Case('train-model-dir-without-config', lambda c: small(c, '-p', 'model_name_or_path', c.tmp/'empty_model'), 2,
         'a directory without config.json', nothing_written, setup=lambda c: (c.tmp/'empty_model').mkdir()),
    Case('train-7b-without-cuda', lambda c: small(c, '-p', 'model_name_or_path', c.tmp/'m7'), 2,
         '7.2 B parameters and torch', nothing_written, setup=seven_b),
    # output_dir: one run, one process at a time; nothing lost
    Case('train-output-dir-is-a-file', lambda c: small(c), 2, 'is a file: choose a directory',
         setup=lambda c: write(c.tmp/'out', 'not a folder')),
    Case('train-different-run-refused', lambda c: again(c, '-p', 'learning_rate', '1e-4'), 2,
         'holds a different run (learning_rate: 0.002 -> 0.0001)', run_intact),
    Case('train-other-data-refused', lambda c: again(c, '-p', 'data_dir', data(c)), 2,
         'holds a different run (data.train.jsonl:', run_intact,
         setup=lambda c: line(c, 'train', 1, (data(c)/'train.jsonl').read_text().splitlines()[1])),
    Case('train-longer-schedule-refused', lambda c: again(c, '-p', 'max_steps', '16'), 2, 'max_steps: 8 -> 16',
         run_intact),
    Case('train-run-without-identity-refused', lambda c: again(c), 2, 'no readable run identity', None,
         setup=lambda c: (c.run()/'run_identity.json').unlink()),
    Case('train-while-another-run-trains', lambda c: again(c), 2, 'another training run is writing into',
         release_and_check, setup=hold_lock, subprocess=True),
    Case('train-finished-run-again', lambda c: again(c), 0, 'already finished with these settings', run_intact),
    Case('train-dry-run-writes-nothing', lambda c: small(c, '--dry-run'), 0, 'output_dir: ', nothing_written),
    Case('train-overwrite-moves-the-old-run-aside', lambda c: again(c, '-p', 'max_steps', '2', '--overwrite'), 0,
         'moved it aside to', moved_aside_and_retrained),
    Case('train-half-written-checkpoint-resumes-the-last-complete', lambda c: again(c), 0,
         'checkpoint-9 is incomplete (unreadable trainer_state.json)', resumed_from_the_complete_one,
         setup=half_written_checkpoint),
    # warmup
    Case('warmup-missing-data', lambda c: ['warmup', c.tmp/'nowhere', c.tmp/'base', '--no-progress'], 2,
         'nowhere/train.jsonl not found'),
]
