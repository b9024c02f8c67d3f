"""Faults of `mirastral evaluate`: a missing run, adapter or base and bad evaluation data are clear errors (file and
line named) raised before any model loads, and nothing is written to the run's eval/ folder then."""
import json
from . import Case

GOOD = None

def _good_line()->str:
    global GOOD
    if GOOD is None:
        from mirastral.demo import demo_conversation
        from mirastral.schema import canonical_record
        rec = demo_conversation(2)
        GOOD = json.dumps(canonical_record(rec['messages'], rec['tools']))
    return GOOD

def _fresh_run(c):
    "The copied run without the eval/ folder another test may have left in the shared one."
    c.run()
    shutil_rm_eval(c)

def _data(text):
    def setup(c):
        _fresh_run(c)
        (c.tmp/'data.jsonl').write_bytes(text(c) if callable(text) else text)
    return setup

def shutil_rm_eval(c):
    import shutil
    shutil.rmtree(c.tmp/'run'/'eval', ignore_errors=True)

def _no_eval(c, r): assert not (c.tmp/'run'/'eval').exists(), sorted((c.tmp/'run'/'eval').iterdir())

def _ev(*extra): return lambda c: ['evaluate', c.tmp/'run', '--data', c.tmp/'data.jsonl', '--no-progress', *extra]

def _final(c): return c.run()/'final_model'

def _gone_base(c):
    (_final(c)/'config.yaml').write_text('model_name_or_path: /gone/base\n')
    shutil_rm_eval(c)

def _break_adapter(c):
    f = _final(c)/'adapter_model.safetensors'
    f.write_bytes(f.read_bytes()[:1000])
    shutil_rm_eval(c)

def _one_conversation(c, r):
    assert json.loads((c.tmp/'run'/'eval'/'metrics.json').read_text())['meta']['conversations'] == 1

def _user_only()->bytes:
    return (json.dumps({'messages': [{'role': 'user', 'content': 'hello?'}], 'tools': [], 'meta': {}}) + '\n').encode()

CASES = [
    Case('evaluate-run-not-found', lambda c: ['evaluate', c.tmp/'nowhere'], 2, 'nowhere not found'),
    Case('evaluate-run-without-adapter', lambda c: ['evaluate', c.tmp], 2, 'holds no adapter: train first'),
    Case('evaluate-adapter-truncated', lambda c: ['evaluate', c.tmp/'run'], 2, 'truncated or corrupt',
         setup=_break_adapter, check=_no_eval),
    Case('evaluate-base-missing', lambda c: ['evaluate', c.tmp/'run'], 2, 'neither a local folder nor a hub id',
         setup=_gone_base, check=_no_eval),
    Case('evaluate-data-not-found', lambda c: ['evaluate', c.run(), '--data', c.tmp/'none.jsonl'], 2,
         'none.jsonl not found', setup=_fresh_run, check=_no_eval),
    Case('evaluate-empty-data', _ev(), 2, 'holds no conversations', setup=_data(b''), check=_no_eval),
    Case('evaluate-blank-lines-only', _ev(), 2, 'holds no conversations', setup=_data(b'\n  \n\n'), check=_no_eval),
    Case('evaluate-malformed-line', _ev(), 2, 'data.jsonl, line 3: not valid JSON',
         setup=_data(lambda c: (_good_line() + '\n' + _good_line() + '\n{"messages": [\n').encode()), check=_no_eval),
    Case('evaluate-line-not-a-record', _ev(), 2, 'line 2: not a valid conversation',
         setup=_data(lambda c: (_good_line() + '\n[1, 2, 3]\n').encode()), check=_no_eval),
    Case('evaluate-no-assistant-turn', _ev(), 2, 'line 1: not a valid conversation',
         setup=_data(lambda c: _user_only()), check=_no_eval),
    Case('evaluate-not-utf8', _ev(), 2, 'not UTF-8 text', setup=_data(b'\xff\xfe\x00bad\n'), check=_no_eval),
    Case('evaluate-negative-max-conversations', _ev('--max-conversations', '-3'), 2, 'must be >= 0',
         setup=_data(lambda c: (_good_line() + '\n').encode()), check=_no_eval),
    Case('evaluate-zero-new-tokens', _ev('--max-new-tokens', '0'), 2, 'max_new_tokens must be >= 1',
         setup=_data(lambda c: (_good_line() + '\n').encode()), check=_no_eval),
    Case('evaluate-bad-line-after-the-limit-is-not-read', _ev('--max-conversations', '1', '--max-new-tokens', '4'), 0,
         'tool-name accuracy', setup=_data(lambda c: (_good_line() + '\n{broken\n').encode()),
         check=_one_conversation),
]
