"""Faults of `mirastral chat`: bad input lines, bad options, a broken client store, a model that runs out of time.

Chat never crashes on what a client or the store does: a bad input line is an error entry with its line number and the
session goes on; a broken store is reported on stderr and in the transcript, and a message at risk still gets the reply
with the crisis lines. Bad options are one clear error before any model loads."""
import json
from . import Case

RISK = "I'm going to take all the pills tonight"
FALLBACK = "I'm sorry, I lost my train of thought there."

def chat(*extra, inp='in.jsonl', country='GB'):
    "argv of `mirastral chat` on the case's tiny run, reading `inp`, store `store/`, client kim."
    return lambda c: ['chat', c.run(), '--input', c.tmp/inp if inp != '-' else '-', '--store', c.tmp/'store',
                      '--client', 'kim', '--country', country, '--max-new-tokens', 8, *extra]

def lines(*ls, name='in.jsonl'):
    "setup: write the input file (text lines, or bytes as they are)."
    def setup(c):
        data = [l if isinstance(l, bytes) else l.encode() for l in ls]
        (c.tmp/name).write_bytes(b''.join(d + b'\n' for d in data))
    return setup

def store(text=None, folder=None, file_as_store=False, **input_lines):
    "setup: the input (a risky message by default) and a client store broken on purpose."
    def setup(c):
        lines(*input_lines.get('ls', [RISK]))(c)
        root = c.tmp/'store'
        if file_as_store: root.write_text('I am a file')
        else: root.mkdir()
        if text is not None: (root/'kim.json').write_text(text)
        if folder: (root/folder).mkdir()
    return setup

def transcript(r):
    return [json.loads(l) for l in r.out.splitlines() if l.strip()]

def crisis_reply(must=('Samaritans (call 116 123',), store_error=None):
    "check: each message at risk got the crisis lines and the disclaimer; a store problem is on stderr and in errors."
    def check(c, r):
        at_risk = [t for t in transcript(r) if t.get('risk')]
        assert at_risk, r.out
        for t in at_risk:
            assert all(m in t['reply'] for m in must) and "I'm an AI" in t['reply'], t['reply']
        if store_error:
            assert any(store_error in e for t in at_risk for e in t['errors']), at_risk[0]['errors']
            assert 'mirastral chat: warning: client store' in r.err and store_error in r.err, r.err[-2000:]
    return check

def entries(expected):
    "check: the transcript's entries, in order: 'reply' for a turn, or a fragment of the error entry."
    def check(c, r):
        got = transcript(r)
        assert len(got) == len(expected), got
        for t, e in zip(got, expected):
            if e == 'reply': assert t['reply'].strip() and 'error' not in t, t
            else: assert e in t['error'], (e, t)
    return check

def all_of(*checks):
    "check: every one of `checks`."
    def check(c, r):
        for chk in checks: chk(c, r)
    return check

def said(fragment, where='out'):
    "check: `fragment` is in stdout ('out') or stderr ('err')."
    def check(c, r): assert fragment in getattr(r, where), getattr(r, where)[-2000:]
    return check

def not_in_replies(fragment):
    def check(c, r): assert all(fragment not in t.get('reply', '') for t in transcript(r)), r.out
    return check

def corrupt_kept(c, r):
    "check: the unreadable record was kept aside, and a fresh one holds this session's event."
    kept = list((c.tmp/'store').glob('kim.json.corrupt-*'))
    assert len(kept) == 1, kept
    assert json.loads((c.tmp/'store'/'kim.json').read_text())['events'][0]['risk']

def kept_old_data(c, r):
    d = json.loads((c.tmp/'store'/'kim.json').read_text())
    assert d['moods'] == [{'score': 3}] and len(d['events']) == 1, d

CASES = [
    # bad input lines: an error entry with the line number; the session goes on
    Case('chat-input-malformed-json', chat(), 0, setup=lines('{"user": "hi"}', '{"user": "hi"', RISK),
         check=entries(['reply', 'input line 2: not valid JSON', 'reply'])),
    Case('chat-input-user-not-a-string', chat(), 0, setup=lines('{"user": 123}', 'hello'),
         check=entries(['input line 1: "user" must be a string, got 123', 'reply'])),
    Case('chat-input-list', chat(), 0, setup=lines('["hi"]', 'hello'), check=entries(['got a JSON list', 'reply'])),
    Case('chat-input-null', chat(), 0, setup=lines('null', 'hello'), check=entries(['got a JSON null', 'reply'])),
    Case('chat-input-missing-user-key', chat(), 0, setup=lines('{"text": "hi"}', 'hello'),
         check=entries(['no "user" key (the object has: text)', 'reply'])),
    Case('chat-input-not-utf8', chat(), 0, setup=lines(b'\xff\xfe hello', RISK), check=entries(['reply', 'reply'])),
    Case('chat-input-empty-file', chat(), 0, setup=lines(), check=entries([])),
    Case('chat-input-from-stdin', chat(inp='-'), 0, stdin='{"user": "hello"}\nnull\n' + RISK + '\n',
         check=entries(['reply', 'input line 2', 'reply'])),
    Case('chat-message-too-long', chat(), 0, setup=lines(RISK + ' ' + 'x' * 25_000),
         check=all_of(crisis_reply(), said('not sent to the model'))),
    # bad options: one clear error before any model loads
    Case('chat-input-missing', chat(inp='nowhere.jsonl'), 2, 'nowhere.jsonl'),
    Case('chat-input-is-a-folder', chat(inp='.'), 2, 'Is a directory'),
    Case('chat-country-not-iso', chat(country='USA'), 2, "country 'USA' is not an ISO 3166-1 alpha-2 code"),
    Case('chat-country-unknown-code', chat(country='ZZ'), 2, "country 'ZZ' is not an ISO 3166-1 alpha-2 code"),
    Case('chat-country-uk', chat(country='UK'), 2, "country 'UK': the ISO 3166-1 code is GB"),
    Case('chat-language-not-iso', chat('--language', 'french'), 2, "language 'french' is not an ISO 639-1 code"),
    Case('chat-client-name', lambda c: ['chat', c.run(), '--client', '../etc/x', '--input', c.tmp/'in.jsonl'], 2,
         'client name', setup=lines('hi')),
    Case('chat-max-seconds-not-positive', chat('--max-seconds', '0'), 2, '--max-seconds 0.0'),
    Case('chat-model-missing', lambda c: ['chat', c.tmp/'nowhere', '--input', c.tmp/'in.jsonl'], 2, 'nowhere',
         setup=lines('hi')),
    # countries and languages
    Case('chat-country-lower-case', chat(country='gb'), 0, setup=lines(RISK), check=crisis_reply()),
    Case('chat-country-without-lines', chat(country='AQ'), 0, setup=lines(RISK),
         check=all_of(crisis_reply(('findahelpline.com', 'your local emergency number')),
                      said('warning: no crisis lines on file for AQ', 'err'))),
    Case('chat-language-picks-the-lines', chat('--language', 'fr', country='BE'), 0, setup=lines(RISK),
         check=all_of(crisis_reply(('Centre de Prévention du Suicide (call 0800 32 123',)), not_in_replies('1813'))),
    # the model runs out of time: the fallback reply, with the crisis lines at risk
    Case('chat-model-out-of-time', chat('--max-seconds', '0.001'), 0, FALLBACK, setup=lines(RISK),
         check=all_of(crisis_reply(), said('no reply within 0.001 s'))),
    # the client store broken every way: the crisis reply still goes out; the problem on stderr and in errors
    Case('chat-store-is-a-file', chat(), 0, setup=store(file_as_store=True),
         check=crisis_reply(store_error='is a file, not a folder')),
    Case('chat-store-record-cut-short', chat(), 0, setup=store('{"moods": [{"score": 3}'),
         check=all_of(crisis_reply(store_error='was unreadable'), corrupt_kept)),
    Case('chat-store-record-not-json', chat(), 0, setup=store('garbage'),
         check=all_of(crisis_reply(store_error='was unreadable'), corrupt_kept)),
    Case('chat-store-events-null', chat(), 0, setup=store('{"events": null}'),
         check=all_of(crisis_reply(store_error='"events" should be a JSON list'), corrupt_kept)),
    Case('chat-store-record-a-list', chat(), 0, setup=store('[1, 2]'),
         check=all_of(crisis_reply(store_error='expected a JSON object'), corrupt_kept)),
    Case('chat-store-record-is-a-folder', chat(), 0, setup=store(folder='kim.json'),
         check=crisis_reply(store_error='cannot read it')),
    Case('chat-store-lock-is-a-folder', chat(), 0, setup=store(folder='kim.json.lock'),
         check=crisis_reply(store_error='cannot lock it')),
    Case('chat-store-keeps-what-it-had', chat(), 0, setup=store('{"moods": [{"score": 3}]}'),
         check=all_of(crisis_reply(), kept_old_data)),
]
