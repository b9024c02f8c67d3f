"""`mirastral evaluate`, `chat` and `export` through the console script, on a small real training run.

The metrics, the tool loop with scripted model outputs, the guardrail and the export round-trip are tested cell by
cell in nbs/04_evaluate, 05_chat and 06_export; these tests check that the commands a user types wire them together."""
import json, shutil, subprocess, sys
from pathlib import Path
import pytest
from mirastral.data import read_jsonl
from conftest import BIN, run_cli

@pytest.fixture(scope='module')
def run(tiny_run):
    return tiny_run

def test_evaluate_prints_the_table_and_writes_the_report(run, tmp_path):
    run = Path(shutil.copytree(run, tmp_path/'run'))   # the shared run stays as it was
    r = run_cli('evaluate', run, '--max-conversations', 6, '--max-new-tokens', 24, '--no-progress')
    assert 'tool-name accuracy' in r.stdout and 'crisis recall' in r.stdout and 'report: ' in r.stdout
    m = json.loads((run/'eval'/'metrics.json').read_text())
    assert set(m['results']) == {'base', 'fine-tuned', 'reference'}
    assert m['results']['fine-tuned']['loss'] < m['results']['base']['loss']      # 8 steps already move the loss
    preds = read_jsonl(run/'eval'/'predictions.jsonl')
    assert len(preds) == m['meta']['turns'] and all({'base', 'fine-tuned', 'reference'} <= set(p) for p in preds)
    for f in ('report.md', 'comparison.png', 'tool_confusion.png', 'loss_curve.png'):
        assert (run/'eval'/f).stat().st_size > 0

def test_chat_from_a_file_runs_the_guardrail_and_keeps_the_client_store(run, tmp_path):
    inp = tmp_path/'in.jsonl'
    inp.write_text(json.dumps({'user': "I'm a 3 out of 10 today."}) + '\n'
                   + "Honestly, I feel like there's no reason to live any more.\n")
    r = run_cli('chat', run, '--input', inp, '--store', tmp_path/'store', '--client', 'robin', '--country', 'GB',
                '--max-new-tokens', 24)
    turns = [json.loads(l) for l in r.stdout.splitlines()]
    assert len(turns) == 2 and all(t['reply'].strip() for t in turns)
    assert turns[0]['risk'] is None and turns[1]['risk'] == 'high'
    assert 'Samaritans' in turns[1]['reply'] and "I'm an AI" in turns[1]['reply']   # whatever the tiny model said
    events = json.loads((tmp_path/'store'/'robin.json').read_text())['events']
    assert [e['risk'] for e in events] == ['high'] and 'reason to live' not in json.dumps(events)

def test_chat_reads_stdin(run, tmp_path):
    r = subprocess.run([str(BIN/'mirastral'), 'chat', str(run), '--input', '-', '--store', str(tmp_path),
                        '--max-new-tokens', '8'], input='hello\n', capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]
    assert json.loads(r.stdout.splitlines()[0])['user'] == 'hello'

def test_export_merged_round_trip_and_refusals(run, tmp_path):
    r = run_cli('export', run, tmp_path/'merged')
    assert 'reloaded and checked: same' in r.stdout
    info = json.loads((tmp_path/'merged'/'export.json').read_text())
    assert (tmp_path/'merged'/'model.safetensors').exists() and info['check']['same_tokens'] and info['dtype'] == 'float32'
    # the merged export is a plain model directory: chat loads it without peft
    r = subprocess.run([str(BIN/'mirastral'), 'chat', str(tmp_path/'merged'), '--input', '-', '--store', str(tmp_path/'s'),
                        '--max-new-tokens', '8'], input='hi\n', capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]
    (tmp_path/'occupied').mkdir()
    (tmp_path/'occupied'/'precious.txt').write_text('x')
    r = run_cli('export', run, tmp_path/'occupied', '--overwrite', check=False)
    assert r.returncode == 2 and 'not a MiraStral export' in r.stderr and (tmp_path/'occupied'/'precious.txt').exists()
    r = run_cli('export', tmp_path, tmp_path/'x', check=False)
    assert r.returncode == 2 and 'holds no adapter' in r.stderr and not (tmp_path/'x').exists()
    r = run_cli('export', run, tmp_path/'merged', '--adapter-only', check=False)           # an earlier export: kept
    assert r.returncode == 2 and 'pass --overwrite' in r.stderr and (tmp_path/'merged'/'model.safetensors').exists()

def test_exports_load_with_the_snippet_of_their_model_card(run, tmp_path):
    "In a fresh Python: the model card's transformers (and peft) code runs on the export, and AutoTokenizer builds"
    "exactly mistral-common's serving prompt, tools included, on every assistant turn of demo conversations."
    from mirastral.export import usage_snippet
    run_cli('export', run, tmp_path/'merged', '--no-check')
    run_cli('export', run, tmp_path/'adapter', '--adapter-only', '--no-check')
    for d, merged in (('merged', True), ('adapter', False)):
        card = (tmp_path/d/'README.md').read_text()
        code = usage_snippet(str(tmp_path/d), merged)
        assert code.strip() in card                                                   # the card shows this very code
        r = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, timeout=600)
        assert r.returncode == 0 and r.stdout.strip(), r.stderr[-3000:]
        assert '--tokenizer-mode mistral --tool-call-parser mistral --enable-auto-tool-choice' in card
    assert '--enable-lora' in (tmp_path/'adapter'/'README.md').read_text()
    code = f"""
import json
from transformers import AutoTokenizer
from mirastral.demo import demo_conversation
from mirastral.examples import serving_prompt
tok = AutoTokenizer.from_pretrained({str(tmp_path/'merged')!r})
n = 0
for seed in range(4):
    rec = demo_conversation(seed)
    for j, m in enumerate(rec['messages']):
        if m['role'] == 'assistant':
            ids = tok.apply_chat_template(rec['messages'][:j], tools=rec['tools'], tokenize=True)['input_ids']
            assert ids == serving_prompt(rec['messages'][:j], rec['tools']), (seed, j)
            n += 1
print(type(tok).__name__, n)
"""
    r = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    name, n = r.stdout.split()[-2:]
    assert name == 'MistralCommonBackend' and int(n) >= 10, r.stdout
