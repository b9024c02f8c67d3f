"""The client store loses nothing: two processes writing for the same client at the same time (file lock + atomic
replace), and a folder the store cannot write to."""
import json, multiprocessing, os
import pytest
from mirastral.chat import ClientStore, StoreError, ChatSession

def _writer(root, name, n, ready, go):
    "One writer process: `n` moods for client sam, started together with the other writer."
    ready.release()
    go.wait()
    store = ClientStore(root, 'sam')
    for i in range(n): store.append('moods', {'writer': name, 'i': i, 'score': 5})

def test_two_processes_writing_300_moods_each_keep_all_600(tmp_path):
    ctx = multiprocessing.get_context('fork')      # the children share this process's imports: they start at once
    ready, go = ctx.Semaphore(0), ctx.Event()
    procs = [ctx.Process(target=_writer, args=(tmp_path/'store', name, 300, ready, go)) for name in 'ab']
    for p in procs: p.start()
    for _ in procs: ready.acquire()                # both are running: let them race
    go.set()
    for p in procs: p.join()
    assert [p.exitcode for p in procs] == [0, 0]
    moods = json.loads((tmp_path/'store'/'sam.json').read_text())['moods']
    assert len(moods) == 600
    for w in 'ab': assert [m['i'] for m in moods if m['writer'] == w] == list(range(300))   # each writer's order kept
    assert not list((tmp_path/'store').glob('.sam.json.*.tmp'))                             # no temporary file left

@pytest.mark.skipif(os.geteuid() == 0, reason='root can write to a read-only folder')
def test_a_read_only_store_is_reported_and_the_crisis_reply_still_goes_out(tmp_path):
    root = tmp_path/'store'
    root.mkdir()
    (root/'kim.json').write_text('{"moods": [{"score": 3}]}')
    root.chmod(0o500)
    try:
        store, reports = ClientStore(root, 'kim'), []
        with pytest.raises(StoreError, match='cannot'): store.append('moods', {'score': 4})
        t = ChatSession(lambda prompt: [2], store, country='GB', report=reports.append).send('I want to die')
        assert 'Samaritans' in t['reply'] and reports and any('client store' in e for e in t['errors'])
        assert json.loads((root/'kim.json').read_text()) == {'moods': [{'score': 3}]}          # the old record intact
    finally: root.chmod(0o700)
