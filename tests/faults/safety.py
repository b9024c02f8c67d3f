"Faults of `mirastral safety-eval`: bad data, a missing run, an empty split: one clear line, and no report written."
import json
from . import Case

OK = {'text': 'hi', 'label': 'benign', 'category': 'everyday'}

def _data(*lines):
    "A setup that writes `lines` (dicts as JSON, strings as they are) to ctx.tmp/x.jsonl."
    text = ''.join((json.dumps(x) if isinstance(x, dict) else x) + '\n' for x in lines)
    return lambda c: (c.tmp/'x.jsonl').write_text(text, encoding='utf-8')

def _eval(*extra, data='x.jsonl'):
    "`safety-eval EXTRA --data ctx.tmp/DATA --out ctx.tmp/out` ('norun' in EXTRA: a run that does not exist)."
    return lambda c: ['safety-eval', *[c.tmp/e if e == 'norun' else e for e in extra], '--data', c.tmp/data,
                      '--out', c.tmp/'out']

def _recall_is(c, rate):
    assert json.loads((c.tmp/'out'/'report.json').read_text())['detector']['recall']['rate'] == rate

def _no_outputs(c, r):
    assert not (c.tmp/'out').exists(), 'a failed evaluation must not leave a report'

CASES = [
    Case('safety-missing-data', _eval(data='nowhere'), 2, 'nowhere: no such file', check=_no_outputs),
    Case('safety-empty-folder', _eval(data='.'), 2, 'no *.jsonl files', check=_no_outputs),
    Case('safety-bad-json-line', _eval(), 2, 'x.jsonl:2: not valid JSON', setup=_data(OK, '{"text": '),
         check=_no_outputs),
    Case('safety-bad-label', _eval(), 2, "label 'maybe'", setup=_data({**OK, 'label': 'maybe'}), check=_no_outputs),
    Case('safety-missing-field', _eval(), 2, 'x.jsonl:1: missing category',
         setup=_data({'text': 'hi', 'label': 'risk'}), check=_no_outputs),
    Case('safety-empty-split', _eval('--split', 'holdout'), 2, "no messages in split 'holdout'",
         setup=_data({**OK, 'split': 'dev'}), check=_no_outputs),
    Case('safety-missing-run', _eval('norun'), 2, 'norun: no such training run', setup=_data(OK), check=_no_outputs),
    Case('safety-no-test-split', _eval('--split', 'test'), 2, "no messages in split 'test'", setup=_data(OK),
         check=_no_outputs),
    Case('safety-bad-split-name', lambda c: ['safety-eval', '--split', 'eval'], 2, 'invalid choice'),
    Case('safety-no-train-split', _eval('--split', 'train'), 2, "no messages in split 'train'", setup=_data(OK),
         check=_no_outputs),
    Case('safety-bad-risk-model-setting', lambda c: ['safety-eval', '--risk-model', 'maybe'], 2, 'invalid choice'),
    Case('safety-one-message', _eval(), 0, 'recall, all', setup=_data(OK, {'text': 'i want to die', 'label': 'risk',
                                                                          'category': 'direct', 'level': 'high'}),
         check=lambda c, r: _recall_is(c, 1.0)),
]
