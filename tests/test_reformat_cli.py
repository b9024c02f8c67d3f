"End-to-end: the `mirastral` CLI turns the demo corpus into canonical JSONL and accounts for every raw record."

import json
from collections import Counter
from mirastral.data import read_jsonl, read_items, OUTPUT_FILES
from mirastral.schema import REJECT_REASONS, CALL_ID_RE
from conftest import run_cli


def test_outputs_exist(demo):
    raw, out, rep = demo
    for f in OUTPUT_FILES:
        assert (out / f).exists(), f
    assert not [p for p in out.iterdir() if p.name.endswith('.tmp')], "temporary files left behind"


def test_every_raw_record_is_accounted_for(demo):
    "For every source file: read = kept + rejected + duplicates, and each count matches the output files."
    raw, out, rep = demo
    kept = Counter(r['meta']['source'] for f in ('train.jsonl', 'val.jsonl') for r in read_jsonl(out / f))
    rej = Counter(r['source'] for r in read_jsonl(out / 'rejects.jsonl'))
    dup = Counter(r['source'] for r in read_jsonl(out / 'duplicates.jsonl'))
    data_files = [p for p in raw.rglob('*') if p.is_file() and p.suffix in ('.jsonl', '.json', '.csv', '.txt')]
    assert len(data_files) == rep['totals']['files']
    for p in data_files:
        src = p.relative_to(raw).as_posix()
        s = rep['files'][src]
        assert s['read'] == s['kept'] + s['rejected'] + s['duplicates'], src
        assert (s['kept'], s['rejected'], s['duplicates']) == (kept[src], rej[src], dup[src]), src
        if src.endswith('.jsonl'):  # independent count of the raw records: non-blank lines
            assert s['read'] == sum(1 for l in p.read_text(encoding='utf-8-sig').splitlines() if l.strip()), src
    t = rep['totals']
    assert t['read'] == t['kept'] + t['rejected'] + t['duplicates'] == 400 + 16
    assert [s['source'] for s in rep['skipped_files']] == ['worker_08_legacy/README.md']


def test_rejects_name_source_position_and_reason(demo):
    raw, out, rep = demo
    rejects = read_jsonl(out / 'rejects.jsonl')
    assert {r['reason'] for r in rejects} == {
        'undecodable',
        'malformed_json',
        'unrecognised_format',
        'unknown_role',
        'role_order',
        'empty_turn',
        'unknown_tool',
        'bad_arguments',
        'orphan_tool_result',
        'missing_tool_result',
        'too_long',
        'mistral_common',
    }
    for r in rejects:
        assert r['reason'] in REJECT_REASONS and r['message'] and r['source']
        if r['reason'] != 'undecodable':
            assert r['raw'] and r['line'] >= 1
    (und,) = [r for r in rejects if r['reason'] == 'undecodable']
    assert (
        und['source'] == 'worker_08_legacy/notes_cp1252.txt'
        and 'not UTF-8' in und['message']
        and 'offset' in und['message']
    )
    (mal,) = [r for r in rejects if r['reason'] == 'malformed_json']
    assert mal['line'] == 1 and read_items(raw / mal['source'])[0].raw == mal['raw']


def test_duplicates_name_the_record_they_duplicate(demo):
    raw, out, rep = demo
    dups = read_jsonl(out / 'duplicates.jsonl')
    assert {d['kind'] for d in dups} >= {'exact', 'normalised'}
    kept = {
        (r['meta']['source'], r['meta']['index']) for f in ('train.jsonl', 'val.jsonl') for r in read_jsonl(out / f)
    }
    for d in dups:
        assert (d['duplicate_of']['source'], d['duplicate_of']['index']) in kept


def test_kept_records_are_canonical(demo):
    raw, out, rep = demo
    recs = read_jsonl(out / 'train.jsonl') + read_jsonl(out / 'val.jsonl')
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
    written = ''.join((out / f).read_text() for f in ('train.jsonl', 'val.jsonl'))
    assert 'example.com' not in written and '07700 900' not in written
    assert '[EMAIL]' in written and rep['pii_replaced']['EMAIL'] == written.count('[EMAIL]')
    assert '116 123' in written  # public crisis lines survive


def test_cli_errors_are_readable(tmp_path):
    r = run_cli('reformat', tmp_path / 'missing', tmp_path / 'out', check=False)
    assert r.returncode == 2 and 'raw data directory not found' in r.stderr and 'Traceback' not in r.stderr
    assert run_cli('--help').stdout.count('reformat') >= 1


# ---- faults that need a failure injected (root can read any file; a full disk cannot be made on demand) ----
import errno, os, signal, subprocess, sys, time
import pytest
import mirastral.data as data
from mirastral.cli import main
from mirastral.data import check_output_set, reformat


def conv(i):
    return {
        'messages': [{'role': 'user', 'content': f'I feel low ({i}).'}, {'role': 'assistant', 'content': 'I hear you.'}]
    }


@pytest.fixture
def raw(tmp_path):
    (tmp_path / 'raw' / 'worker_01').mkdir(parents=True)
    (tmp_path / 'raw' / 'worker_02').mkdir()
    (tmp_path / 'raw' / 'worker_01' / 'a.jsonl').write_text(''.join(json.dumps(conv(i)) + '\n' for i in range(3)))
    (tmp_path / 'raw' / 'worker_02' / 'b.jsonl').write_text(''.join(json.dumps(conv(i)) + '\n' for i in range(3, 5)))
    return tmp_path / 'raw'


def snapshot(out):
    return {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}


def test_unreadable_folder_is_listed_not_lost(raw, tmp_path, monkeypatch):
    real = os.scandir

    def scandir(p='.'):
        if str(p).endswith('worker_02'):
            raise PermissionError(errno.EACCES, 'Permission denied', str(p))
        return real(p)

    monkeypatch.setattr(os, 'scandir', scandir)
    rep = reformat(raw, tmp_path / 'out', n_proc=1, progress=False)
    assert rep['totals']['kept'] == 3
    assert {'source': 'worker_02/', 'reason': 'unreadable folder: Permission denied'} in rep['skipped_files']


def test_unreadable_file_is_a_reject(raw, tmp_path, monkeypatch):
    real = data._open
    monkeypatch.setattr(
        data,
        '_open',
        lambda p: (
            (_ for _ in ()).throw(PermissionError(errno.EACCES, 'Permission denied'))
            if str(p).endswith('b.jsonl')
            else real(p)
        ),
    )
    rep = reformat(raw, tmp_path / 'out', n_proc=1, progress=False)
    assert rep['reject_reasons'] == {'unreadable': 1} and rep['files']['worker_02/b.jsonl']['rejected'] == 1
    assert 'Permission denied' in read_jsonl(tmp_path / 'out' / 'rejects.jsonl')[0]['message']


def test_a_bug_on_one_record_is_a_reject_not_a_crash(raw, tmp_path, monkeypatch):
    real = data.scrub_record

    def scrub(rec, *a):
        if '(1)' in rec['messages'][0]['content']:
            raise ZeroDivisionError('division by zero')
        return real(rec, *a)

    monkeypatch.setattr(data, 'scrub_record', scrub)
    rep = reformat(raw, tmp_path / 'out', n_proc=1, progress=False)
    (r,) = read_jsonl(tmp_path / 'out' / 'rejects.jsonl')
    assert (r['reason'], r['source'], r['line'], r['message']) == (
        'unexpected_error',
        'worker_01/a.jsonl',
        2,
        'ZeroDivisionError: division by zero',
    )
    assert rep['totals']['kept'] == 4


@pytest.mark.parametrize('failing', ['write', 'replace'])
def test_a_failure_while_writing_leaves_the_previous_outputs(raw, tmp_path, monkeypatch, capsys, failing):
    "Disk full while writing the new set, or a move failing half-way: one clear line, the old set whole, no left-overs."
    out = tmp_path / 'out'
    assert main(['reformat', str(raw), str(out), '--no-progress']) == 0
    before = snapshot(out)
    (raw / 'worker_01' / 'c.jsonl').write_text(json.dumps(conv(9)) + '\n')  # the next run would change every file
    calls = []
    if failing == 'write':
        real = data.write_lines

        def write_lines(path, lines):
            calls.append(path)
            if len(calls) == 3:
                raise OSError(errno.ENOSPC, 'No space left on device')
            return real(path, lines)

        monkeypatch.setattr(data, 'write_lines', write_lines)
    else:
        real = os.replace

        def replace(a, b):
            calls.append(a)
            if len(calls) == 3:
                raise OSError(errno.EIO, 'Input/output error')
            return real(a, b)

        monkeypatch.setattr(os, 'replace', replace)
    capsys.readouterr()
    assert main(['reformat', str(raw), str(out), '--no-progress']) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(out) in err[0] and 'the previous outputs are unchanged' in err[0], err
    assert snapshot(out) == before and check_output_set(out)
    assert not [p for p in out.iterdir() if p.name.startswith('.')]


def test_a_killed_run_leaves_the_previous_outputs(demo, tmp_path):
    "SIGKILL while a run is working: the previous set is whole, and the next run clears what the killed one left."
    raw, out = demo[0], tmp_path / 'out'
    assert main(['reformat', str(raw), str(out), '--no-progress', '--n-proc', '1']) == 0
    before = snapshot(out)
    p = subprocess.Popen(
        [sys.executable, '-m', 'mirastral.cli', 'reformat', str(raw), str(out), '--no-progress', '--n-proc', '1']
    )
    while not list(out.glob('.reformat-*')) and p.poll() is None:
        time.sleep(0.01)  # the run has opened its new set
    p.send_signal(signal.SIGKILL)
    assert p.wait() == -signal.SIGKILL and list(out.glob('.reformat-*'))  # killed mid-run, its new set unfinished
    assert {k: v for k, v in snapshot(out).items() if not k.startswith('.')} == before and check_output_set(out)
    assert main(['reformat', str(raw), str(out), '--no-progress', '--n-proc', '1']) == 0
    assert not list(out.glob('.reformat-*')) and check_output_set(out)


def test_a_50mb_record_is_refused_in_bounded_memory(tmp_path):
    "One 50 MB line: refused as too_large without parsing it (the old reformatter took 2.7 GB and 85 s)."
    (tmp_path / 'raw').mkdir()
    with open(tmp_path / 'raw' / 'big.jsonl', 'w') as f:
        f.write('{"messages": [{"role": "user", "content": "' + 'x' * 50_000_000 + '"}]}\n')
        f.write(json.dumps(conv(0)) + '\n')
    # VmHWM, not ru_maxrss: ru_maxrss survives exec, so the child would report the (large) pytest process it forked from
    code = (
        "import re; from pathlib import Path; from mirastral.data import reformat; "
        f"rep = reformat({str(tmp_path / 'raw')!r}, {str(tmp_path / 'out')!r}, n_proc=1, progress=False); "
        "hwm = re.search(r'VmHWM:\\s+(\\d+) kB', Path('/proc/self/status').read_text()).group(1); "
        "print(rep['reject_reasons'], rep['totals']['kept'], hwm)"
    )
    r = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, check=True)
    reasons, kept, peak_kb = r.stdout.rsplit(' ', 2)
    assert reasons == "{'too_large': 1}" and kept == '1'
    assert int(peak_kb) < 600_000, f"peak memory {int(peak_kb) // 1024} MB"
    (rej,) = read_jsonl(tmp_path / 'out' / 'rejects.jsonl')
    assert rej['line'] == 1 and len(rej['raw']) <= 4000 and '50,000,0' in rej['message']
