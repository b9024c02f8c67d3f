"End-to-end: the `mirastral` CLI turns the demo corpus into canonical JSONL and accounts for every raw record."
import json
from collections import Counter
from mirastral.data import read_jsonl, read_items, OUTPUT_FILES
from mirastral.schema import REJECT_REASONS, CALL_ID_RE
from conftest import run_cli

def test_outputs_exist(demo):
    raw, out, rep = demo
    for f in OUTPUT_FILES: assert (out/f).exists(), f
    assert not [p for p in out.iterdir() if p.name.endswith('.tmp')], "temporary files left behind"

def test_every_raw_record_is_accounted_for(demo):
    "For every source file: read = kept + rejected + duplicates, and each count matches the output files."
    raw, out, rep = demo
    kept = Counter(r['meta']['source'] for f in ('train.jsonl', 'val.jsonl') for r in read_jsonl(out/f))
    rej = Counter(r['source'] for r in read_jsonl(out/'rejects.jsonl'))
    dup = Counter(r['source'] for r in read_jsonl(out/'duplicates.jsonl'))
    data_files = [p for p in raw.rglob('*') if p.is_file() and p.suffix in ('.jsonl', '.json', '.csv', '.txt')]
    assert len(data_files) == rep['totals']['files']
    for p in data_files:
        src = p.relative_to(raw).as_posix(); s = rep['files'][src]
        assert s['read'] == s['kept'] + s['rejected'] + s['duplicates'], src
        assert (s['kept'], s['rejected'], s['duplicates']) == (kept[src], rej[src], dup[src]), src
        if src.endswith('.jsonl'):  # independent count of the raw records: non-blank lines
            assert s['read'] == sum(1 for l in p.read_text(encoding='utf-8-sig').splitlines() if l.strip()), src
    t = rep['totals']
    assert t['read'] == t['kept'] + t['rejected'] + t['duplicates'] == 400 + 16
    assert [s['source'] for s in rep['skipped_files']] == ['worker_08_legacy/README.md']

def test_rejects_name_source_position_and_reason(demo):
    raw, out, rep = demo
    rejects = read_jsonl(out/'rejects.jsonl')
    assert {r['reason'] for r in rejects} == {'undecodable', 'malformed_json', 'unrecognised_format', 'unknown_role',
                                              'role_order', 'empty_turn', 'unknown_tool', 'bad_arguments',
                                              'orphan_tool_result', 'missing_tool_result', 'too_long', 'mistral_common'}
    for r in rejects:
        assert r['reason'] in REJECT_REASONS and r['message'] and r['source']
        if r['reason'] != 'undecodable': assert r['raw'] and r['line'] >= 1
    und, = [r for r in rejects if r['reason'] == 'undecodable']
    assert und['source'] == 'worker_08_legacy/notes_cp1252.txt' and 'not UTF-8' in und['message'] and 'offset' in und['message']
    mal, = [r for r in rejects if r['reason'] == 'malformed_json']
    assert mal['line'] == 1 and read_items(raw/mal['source'])[0].raw == mal['raw']

def test_duplicates_name_the_record_they_duplicate(demo):
    raw, out, rep = demo
    dups = read_jsonl(out/'duplicates.jsonl')
    assert {d['kind'] for d in dups} >= {'exact', 'normalised'}
    kept = {(r['meta']['source'], r['meta']['index']) for f in ('train.jsonl', 'val.jsonl') for r in read_jsonl(out/f)}
    for d in dups: assert (d['duplicate_of']['source'], d['duplicate_of']['index']) in kept

def test_kept_records_are_canonical(demo):
    raw, out, rep = demo
    recs = read_jsonl(out/'train.jsonl') + read_jsonl(out/'val.jsonl')
    assert len(recs) == rep['totals']['kept']
    for r in recs:
        assert set(r) == {'messages', 'tools', 'meta'}
        assert {'source', 'index', 'line', 'format', 'worker', 'tokens'} <= set(r['meta'])
        assert r['messages'][-1]['role'] == 'assistant'
        for m in r['messages']:
            for c in m.get('tool_calls', []):
                assert CALL_ID_RE.match(c['id']) and isinstance(json.loads(c['function']['arguments']), dict)

def test_pii_is_scrubbed_before_writing(demo):
    raw, out, rep = demo
    assert 'example.com' in ''.join(p.read_text(errors='ignore') for p in raw.rglob('*.json*'))
    written = ''.join((out/f).read_text() for f in ('train.jsonl', 'val.jsonl'))
    assert 'example.com' not in written and '07700 900' not in written
    assert '[EMAIL]' in written and rep['pii_replaced']['EMAIL'] == written.count('[EMAIL]')
    assert '116 123' in written  # public crisis lines survive

def test_cli_errors_are_readable(tmp_path):
    r = run_cli('reformat', tmp_path/'missing', tmp_path/'out', check=False)
    assert r.returncode == 2 and 'raw data directory not found' in r.stderr and 'Traceback' not in r.stderr
    assert run_cli('--help').stdout.count('reformat') >= 1
