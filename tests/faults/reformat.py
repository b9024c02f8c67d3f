"""Faults of `mirastral reformat`: what one file or record can do to a run (it never stops it: it becomes a kept record
or a reject naming its file, line and reason), what the environment can do (a clear one-line error, the previous outputs
unchanged), and bad arguments (one line, exit 2). Cases that need a failure injected in-process (an unreadable folder as
root, a full disk, a kill while writing, memory per record) are in tests/test_reformat_cli.py."""

import json, os
from . import Case

U = {'role': 'user', 'content': 'I feel low today.'}
A = {'role': 'assistant', 'content': "I'm sorry it's a hard day."}
MOOD = {
    'type': 'function',
    'function': {'name': 'log_mood', 'description': 'mood', 'parameters': {'type': 'object', 'properties': {}}},
}


def conv(i=0, **kw):
    "A valid conversation, made distinct by `i`."
    return {'messages': [{'role': 'user', 'content': f'I feel low today ({i}).'}, A], **kw}


def with_call(arguments, **turn):
    "A valid conversation whose assistant calls log_mood with `arguments` (more fields of that turn in `turn`)."
    call = {'role': 'assistant', 'tool_calls': [{'id': 'call_1', 'function': {'name': 'log_mood', 'arguments': arguments}}]}
    return {'messages': [U, {**call, **turn}, {'role': 'tool', 'tool_call_id': 'call_1', 'content': 'ok'}, A], 'tools': [MOOD]}


def jl(*records):
    return ''.join((r if isinstance(r, str) else json.dumps(r)) + '\n' for r in records)


def files(**named):
    "Setup: write files (name -> text or bytes) under tmp/raw; '__' in a name is a '/'."

    def setup(c):
        for name, data in named.items():
            p = c.tmp / 'raw' / name.replace('__', '/')
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_bytes(data if isinstance(data, bytes) else data.encode())

    return setup


def then(*steps):
    def setup(c):
        for s in steps:
            s(c)

    return setup


def run(*extra):
    return lambda c: ['reformat', c.tmp / 'raw', c.tmp / 'out', '--no-progress', '--n-proc', '1', *extra]


def report(c):
    return json.loads((c.tmp / 'out' / 'report.json').read_text())


def rejects(c):
    return [json.loads(l) for l in (c.tmp / 'out' / 'rejects.jsonl').read_text().splitlines()]


def expect(kept=None, rejected=None, duplicates=None, reasons=None, skipped=None, where=None):
    "Check: totals, reject reasons, a skipped entry, and (source, line) of the rejects; every output is strict JSON."

    def check(c, r):
        rep = report(c)
        t = rep['totals']
        for k, v in (('kept', kept), ('rejected', rejected), ('duplicates', duplicates)):
            if v is not None:
                assert t[k] == v, (k, t, rep['reject_reasons'])
        if reasons is not None:
            assert rep['reject_reasons'] == reasons, rep['reject_reasons']
        if skipped:
            assert any(s['source'] == skipped[0] and skipped[1] in s['reason'] for s in rep['skipped_files']), rep[
                'skipped_files'
            ]
        if where:
            assert [(x['source'], x['line']) for x in rejects(c)] == where, rejects(c)
        for x in rejects(c):
            assert x['message'] and x['source'], x
        strict = lambda s: json.loads(s, parse_constant=lambda k: (_ for _ in ()).throw(ValueError(k)))
        for f in ('train.jsonl', 'val.jsonl', 'rejects.jsonl', 'duplicates.jsonl'):
            for line in (c.tmp / 'out' / f).read_text().splitlines():
                strict(line)
        for src, s in rep['files'].items():
            assert s['read'] == s['kept'] + s['rejected'] + s['duplicates'], src

    return check


def nothing_written(c, r):
    assert not (c.tmp / 'out').exists() or not any((c.tmp / 'out').iterdir())


def deep(n):
    return '[' * n + ']' * n


def symlink(src, target, directory=False):
    def setup(c):
        p = c.tmp / 'raw' / src
        p.parent.mkdir(parents=True, exist_ok=True)
        p.symlink_to(target, target_is_directory=directory)

    return setup


def other_folder(c):
    (c.tmp / 'elsewhere').mkdir()
    (c.tmp / 'elsewhere' / 'sessions.jsonl').write_text(jl(conv(1), conv(2)))


def fifo(c):
    (c.tmp / 'raw').mkdir(exist_ok=True)
    os.mkfifo(c.tmp / 'raw' / 'pipe.jsonl')


def non_utf8_name(c):
    (c.tmp / 'raw').mkdir(exist_ok=True)
    with open(os.path.join(os.fsencode(c.tmp / 'raw'), b'caf\xe9.jsonl'), 'w') as f:
        f.write(jl(conv()))


def out_under_a_file(c):
    files(**{'a.jsonl': jl(conv())})(c)
    (c.tmp / 'blocker').write_text('a file, not a folder')


def twice_into_raw(c):
    "OUT_DIR inside RAW_DIR, run once before the case runs it again: the outputs must not be read as input."
    from mirastral.data import reformat

    files(**{'a.jsonl': jl(conv(1), conv(2))})(c)
    reformat(c.tmp / 'raw', c.tmp / 'raw' / 'out', n_proc=1, progress=False)


def parts_kept(c, r):
    rec = json.loads((c.tmp / 'out' / 'train.jsonl').read_text().splitlines()[0])
    assert rec['messages'][0]['content'] == 'hi\nthere'


def kept_texts(c):
    "The message texts of every kept record, in output order (train, then val)."
    recs = [json.loads(l) for f in ('train.jsonl', 'val.jsonl') for l in (c.tmp / 'out' / f).read_text().splitlines()]
    return [[m.get('content') for m in r['messages']] for r in recs]


def both(*checks):
    def check(c, r):
        for k in checks:
            k(c, r)

    return check


def has_texts(*want):
    def check(c, r):
        got = kept_texts(c)
        assert sorted(got) == sorted(list(w) for w in want), got

    return check


SEEKER = [{'from': 'human', 'value': 'I keep replaying the argument.'}]
CALLS = json.dumps([{'name': 'log_mood', 'arguments': {'score': 3}}, {'name': 'log_mood', 'arguments': {'score': 4}}])


CASES = [
    # --- what used to be tracebacks: one file or record stopped the whole run ---
    Case(
        'reformat-json-nested-deep-whole-file',
        run(),
        0,
        check=expect(kept=1, reasons={'too_deep': 1}, where=[('deep.json', 1)]),
        setup=files(**{'deep.json': deep(100_000), 'a.jsonl': jl(conv())}),
    ),
    Case(
        'reformat-json-nested-deep-one-line',
        run(),
        0,
        check=expect(kept=2, reasons={'too_deep': 1}, where=[('a.jsonl', 2)]),
        setup=files(**{'a.jsonl': jl(conv(1), deep(50_000), conv(2))}),
    ),
    Case(
        'reformat-json-nested-deep-in-tool-arguments',
        run(),
        0,
        check=expect(kept=0, reasons={'too_deep': 1}),
        setup=files(
            **{
                'a.jsonl': jl(
                    {
                        'messages': [
                            U,
                            {
                                'role': 'assistant',
                                'tool_calls': [
                                    {'function': {'name': 'log_mood', 'arguments': '{"x": ' + deep(20_000) + '}'}}
                                ],
                            },
                            {'role': 'tool', 'content': 'ok'},
                            A,
                        ],
                        'tools': [MOOD],
                    }
                )
            }
        ),
    ),
    Case(
        'reformat-json-nested-deep-with-worker-processes',
        lambda c: run()(c)[:-2] + ['--n-proc', '2'],
        0,
        check=expect(kept=300, reasons={'too_deep': 1}, where=[('a.jsonl', 151)]),
        setup=files(
            **{
                'a.jsonl': jl(
                    *[conv(i) for i in range(150)],
                    {'messages': [U, A], 'extra': json.loads(deep(900))},
                    *[conv(i) for i in range(150, 300)],
                )
            }
        ),
    ),
    Case(
        'reformat-csv-field-over-128k',
        run(),
        0,
        check=expect(kept=1, rejected=0),
        setup=files(
            **{
                'qa.csv': 'questionText,answerText\nHow do I calm down?,'
                + '"<p>Try this:</p><img src=""data:image/png;base64,'
                + 'iVBORw0KGgo' * 20_400
                + '""><p>Breathe out slowly.</p>"\n'
            }
        ),
    ),
    Case(
        'reformat-5000-digit-integer',
        run(),
        0,
        check=expect(kept=1, reasons={'invalid_number': 1}, where=[('a.jsonl', 2)]),
        setup=files(**{'a.jsonl': jl(conv(), '{"messages": [], "n": ' + '9' * 5000 + '}')}),
    ),
    Case(
        'reformat-unreadable-file',
        run(),
        0,
        check=expect(kept=1, reasons={'unreadable': 1}, where=[('mem.jsonl', None)]),
        setup=then(files(**{'a.jsonl': jl(conv())}), symlink('mem.jsonl', '/proc/self/mem')),
    ),  # EIO even for root
    Case(
        'reformat-non-utf8-file-name',
        run(),
        0,
        check=lambda c, r: (expect(kept=1)(c, r), report(c)['files']['caf\\xe9.jsonl']),
        setup=non_utf8_name,
    ),
    Case(
        'reformat-record-over-size-cap',
        run(),
        0,
        check=expect(kept=1, reasons={'too_large': 1}, where=[('a.jsonl', 1)]),
        setup=files(
            **{'a.jsonl': '{"messages": [{"role": "user", "content": "' + 'x' * (9 * 2**20) + '"}]}\n' + jl(conv())}
        ),
    ),
    # --- what used to be lost without a word ---
    Case(
        'reformat-symlinked-worker-folder',
        run(),
        0,
        check=expect(kept=3),
        setup=then(
            files(**{'worker_01__a.jsonl': jl(conv(0))}),
            other_folder,
            lambda c: (c.tmp / 'raw' / 'worker_02').symlink_to(c.tmp / 'elsewhere', target_is_directory=True),
        ),
    ),
    Case(
        'reformat-symlink-loop',
        run(),
        0,
        check=expect(kept=1, skipped=('worker_01/loop/', 'already read as ./')),
        setup=then(files(**{'worker_01__a.jsonl': jl(conv())}), symlink('worker_01/loop', '..', directory=True)),
    ),
    Case(
        'reformat-hidden-files-listed',
        run(),
        0,
        check=expect(kept=1, skipped=('.notes.jsonl', 'hidden file')),
        setup=files(**{'a.jsonl': jl(conv(1)), '.notes.jsonl': jl(conv(2))}),
    ),
    Case(
        'reformat-every-split-list-read',
        run(),
        0,
        check=lambda c, r: (expect(kept=3)(c, r), report(c)['files']['s.json']['read'] == 3),
        setup=files(**{'s.json': json.dumps({'train': [conv(1), conv(2)], 'test': [conv(3)]})}),
    ),
    Case(
        'reformat-separator-characters-are-not-duplicates',
        run(),
        0,
        check=expect(kept=2, duplicates=0),
        setup=files(
            **{
                'a.jsonl': jl(
                    {'messages': [U, {'role': 'assistant', 'content': 'a\x1fassistant\x1eb'}]},
                    {
                        'messages': [
                            U,
                            {'role': 'assistant', 'content': 'a'},
                            {'role': 'user', 'content': 'b'},
                            {'role': 'assistant', 'content': 'b'},
                        ]
                    },
                )
            }
        ),
    ),
    Case(
        'reformat-broken-link-listed',
        run(),
        0,
        check=expect(kept=1, skipped=('dead.jsonl', 'broken or looping link')),
        setup=then(files(**{'a.jsonl': jl(conv())}), symlink('dead.jsonl', 'nowhere.jsonl')),
    ),
    Case(
        'reformat-fifo-skipped-not-read',
        run(),
        0,
        check=expect(kept=1, skipped=('pipe.jsonl', 'not a regular file')),
        setup=then(files(**{'a.jsonl': jl(conv())}), fifo),
    ),
    # --- what used to be a wrong result ---
    Case(
        'reformat-nan-and-infinity',
        run(),
        0,
        check=expect(kept=1, reasons={'invalid_number': 3}),
        setup=files(
            **{
                'a.jsonl': jl(
                    conv(),
                    '{"messages": [], "score": NaN}',
                    '{"messages": [], "score": -Infinity}',
                    '{"messages": [], "score": 1e999}',
                )
            }
        ),
    ),
    Case(
        'reformat-content-dict-refused-not-repr',
        run(),
        0,
        check=expect(kept=0, reasons={'bad_content': 1}),
        setup=files(**{'a.jsonl': jl({'messages': [{'role': 'user', 'content': {'text_en': 'hi'}}, A]})}),
    ),
    Case(
        'reformat-content-text-parts-flattened',
        run(),
        0,
        check=lambda c, r: (expect(kept=1)(c, r), parts_kept(c, r)),
        setup=files(
            **{'a.jsonl': jl({'messages': [{'role': 'user', 'content': [{'type': 'text', 'text': 'hi'}, 'there']}, A]})}
        ),
    ),
    Case(
        'reformat-out-dir-inside-raw-dir',
        lambda c: ['reformat', c.tmp / 'raw', c.tmp / 'raw' / 'out', '--no-progress'],
        0,
        check=lambda c, r: json.loads((c.tmp / 'raw' / 'out' / 'report.json').read_text())['totals']['duplicates'] == 0,
        setup=twice_into_raw,
    ),
    Case('reformat-val-frac-above-one', run('--val-frac', '2'), 2, 'must be a number in [0, 1)', check=nothing_written),
    Case('reformat-val-frac-negative', run('--val-frac', '-1'), 2, "got '-1'", check=nothing_written),
    Case('reformat-val-frac-not-a-number', run('--val-frac', 'nan'), 2, 'must be a number in [0, 1)'),
    Case('reformat-max-tokens-negative', run('--max-tokens', '-5'), 2, 'must be a whole number >= 0'),
    Case(
        'reformat-n-proc-zero',
        lambda c: ['reformat', c.tmp / 'raw', c.tmp / 'out', '--n-proc', '0'],
        2,
        'must be a whole number >= 1',
    ),
    Case(
        'reformat-out-dir-not-writable',
        lambda c: ['reformat', c.tmp / 'raw', c.tmp / 'blocker' / 'out', '--no-progress'],
        2,
        'blocker',
        setup=out_under_a_file,
    ),
    Case('reformat-raw-dir-missing', run(), 2, 'raw data directory not found'),
    Case('reformat-raw-dir-is-a-file', run(), 2, 'is not a folder', setup=lambda c: (c.tmp / 'raw').write_text('x')),
    Case(
        'reformat-out-dir-is-raw-dir',
        lambda c: ['reformat', c.tmp / 'raw', c.tmp / 'raw'],
        2,
        'OUT_DIR is RAW_DIR',
        setup=files(**{'a.jsonl': jl(conv())}),
    ),
    # --- more shapes of trouble, each a kept record or a reject with its reason and place ---
    Case('reformat-empty-folder', run(), 0, check=expect(kept=0, rejected=0), setup=lambda c: (c.tmp / 'raw').mkdir()),
    Case(
        'reformat-empty-file',
        run(),
        0,
        check=expect(kept=1, rejected=0),
        setup=files(**{'e.jsonl': '', 'a.jsonl': jl(conv())}),
    ),
    Case(
        'reformat-bom-and-crlf',
        run(),
        0,
        check=expect(kept=2, rejected=0),
        setup=files(**{'a.jsonl': b'\xef\xbb\xbf' + jl(conv(1), conv(2)).replace('\n', '\r\n').encode()}),
    ),
    Case(
        'reformat-truncated-json-array',
        run(),
        0,
        check=expect(kept=2, reasons={'malformed_json': 1}, where=[('a.json', 4)]),
        setup=files(**{'a.json': '[\n' + json.dumps(conv(1)) + ',\n' + json.dumps(conv(2)) + ',\n{"messages": [\n'}),
    ),
    Case(
        'reformat-json-array-named-jsonl',
        run(),
        0,
        check=expect(kept=3, rejected=0),
        setup=files(**{'a.jsonl': json.dumps([conv(1), conv(2), conv(3)], indent=4)}),
    ),
    Case(
        'reformat-deep-element-then-more-records',
        run(),
        0,
        check=expect(kept=2, reasons={'too_deep': 1}, where=[('a.json', 3)]),
        setup=files(
            **{'a.json': '[\n' + json.dumps(conv(1)) + ',\n' + deep(30_000) + ',\n' + json.dumps(conv(2)) + '\n]'}
        ),
    ),
    Case(
        'reformat-unpaired-surrogate',
        run(),
        0,
        check=expect(kept=0, reasons={'bad_content': 1}),
        setup=files(
            **{
                'a.jsonl': '{"messages": [{"role": "user", "content": "hi \\ud800"}, '
                + '{"role": "assistant", "content": "ok"}]}\n'
            }
        ),
    ),
    Case(
        'reformat-line-that-is-not-an-object',
        run(),
        0,
        check=expect(kept=1, reasons={'unrecognised_format': 2}),
        setup=files(**{'a.jsonl': jl(conv(), '42', '"just text"')}),
    ),
    Case(
        'reformat-semicolon-csv',
        run(),
        0,
        check=expect(kept=1, rejected=0),
        setup=files(**{'qa.csv': 'question;answer\n"How do I stop worrying, really?";"Name the worry."\n'}),
    ),
    Case(
        'reformat-not-a-parquet-file',
        run(),
        0,
        check=expect(kept=1, reasons={'unreadable': 1}),
        setup=files(**{'a.jsonl': jl(conv()), 'b.parquet': 'PAR1 but not really'}),
    ),
    Case(
        'reformat-text-and-tool-call-in-one-turn',
        run(),
        0,
        check=expect(kept=1, rejected=0),
        setup=files(**{'a.jsonl': jl(with_call('{}', content='Let me note that.'))}),
    ),
    Case(
        'reformat-unknown-speaker-named',
        run(),
        0,
        check=expect(kept=0, reasons={'unknown_role': 1}),
        setup=files(**{'a.jsonl': jl({'messages': [{'role': 'narrator', 'content': 'Once.'}, A]})}),
    ),
    Case(
        'reformat-one-conversation-per-file',
        run(),
        0,
        check=expect(kept=1, rejected=0),
        setup=files(
            **{
                'smile.json': json.dumps(
                    [{'role': 'client', 'content': '我很累'}, {'role': 'counselor', 'content': '累了多久？'}],
                    ensure_ascii=False,
                )
            }
        ),
    ),
    # --- shapes of real public datasets (issue 10, more files of the same repositories) ---
    Case(
        'reformat-preference-pair-keeps-chosen-reply',
        run(),
        0,
        check=both(
            expect(kept=1, rejected=0),
            has_texts(['I keep replaying the argument.', 'That sounds exhausting. What comes back most?']),
        ),
        setup=files(
            **{
                'dpo.json': json.dumps(
                    [
                        {
                            'conversations': SEEKER,
                            'chosen': {'from': 'gpt', 'value': 'That sounds exhausting. What comes back most?'},
                            'rejected': {'from': 'gpt', 'value': 'Just stop thinking about it.'},
                        }
                    ]
                )
            }
        ),
    ),
    Case(
        'reformat-kto-reply-labelled-false-refused',
        run(),
        0,
        check=expect(kept=1, reasons={'dispreferred': 1}),
        setup=files(**{'kto.jsonl': jl(conv(1, label=True), conv(2, label=False))}),
    ),
    Case(
        'reformat-multimodal-records-refused',
        run(),
        0,
        check=expect(kept=1, reasons={'multimodal': 2}),
        setup=files(
            **{
                'mllm.jsonl': jl(
                    conv(1, images=['1.jpg']),
                    {'messages': [{'role': 'user', 'content': [{'type': 'image_url', 'value': '2.jpg'}]}, A]},
                    conv(3, images=[]),
                )
            }
        ),
    ),
    Case(
        'reformat-pretraining-text-and-index-files-skipped',
        run(),
        0,
        check=both(
            expect(kept=1, rejected=0, skipped=('c4_demo.jsonl', 'pretraining text')),
            expect(skipped=('dataset_info.json', 'an index')),
            expect(skipped=('wiki_demo.txt', 'no speaker labels')),
        ),
        setup=files(
            **{
                'a.jsonl': jl(conv()),
                'c4_demo.jsonl': jl({'text': 'Call us at 780-800-7092 today.'}, {'text': 'Disney buys Lucasfilm.'}),
                'dataset_info.json': json.dumps({'identity': {'file_name': 'identity.json'}}),
                'wiki_demo.txt': 'Anarchism is a political philosophy.\n',
            }
        ),
    ),
    Case(
        'reformat-list-of-labelled-lines-is-one-conversation',
        run(),
        0,
        check=both(expect(kept=1, rejected=0), has_texts(['我最近很焦虑。', '能多说一些吗？'])),
        setup=files(**{'1.json': json.dumps(['求助者：我最近很焦虑。', '支持者：能多说一些吗？'], ensure_ascii=False)}),
    ),
    Case(
        'reformat-parallel-results-in-one-tool-message',
        run(),
        0,
        check=expect(kept=1, rejected=0),
        setup=files(
            **{
                'calls.json': json.dumps(
                    [
                        {
                            'conversations': [
                                {'from': 'human', 'value': 'Log a 3 and a 4.'},
                                {'from': 'function_call', 'value': CALLS},
                                {'from': 'observation', 'value': json.dumps([{'content': 'ok'}, {'content': 'ok'}])},
                                {'from': 'gpt', 'value': 'Both logged.'},
                            ],
                            'tools': json.dumps([MOOD['function']]),
                        }
                    ]
                )
            }
        ),
    ),
    Case(
        'reformat-tool-arguments-encoded-twice',
        run(),
        0,
        check=expect(kept=1, rejected=0),
        setup=files(**{'a.jsonl': jl(with_call(json.dumps('{"score": 3}')))}),
    ),
    Case(
        'reformat-query-response-history-not-lost',
        run(),
        0,
        check=both(
            expect(kept=2, rejected=0, duplicates=0),
            has_texts(['How do you sleep?', 'Badly.'], ['How do you sleep?', 'Badly.', 'And at night?', 'Worse.']),
        ),
        setup=files(
            **{
                'swift.jsonl': jl(
                    {'query': 'How do you sleep?', 'response': 'Badly.', 'history': []},
                    {
                        'query': 'And at night?',
                        'response': 'Worse.',
                        'history': [{'query': 'How do you sleep?', 'response': 'Badly.'}],
                    },
                )
            }
        ),
    ),
    Case(
        'reformat-personachat-last-candidate-is-the-reply',
        run(),
        0,
        check=both(expect(kept=1, rejected=0), has_texts(['i feel worthless .', 'you are not alone .'])),
        setup=files(
            **{
                'cc.json': json.dumps(
                    {
                        'train': [
                            {
                                'personality': [''],
                                'utterances': [
                                    {'history': ['i feel worthless .'], 'candidates': ['good luck', 'you are not alone .']}
                                ],
                            }
                        ]
                    }
                )
            }
        ),
    ),
]
