"""Real public data in: `reformat` on the slices in ../shared/realdata (CounselChat, ESConv, AnnoMI, SMILECHAT,
CPsyCoun, EmoLLM, LLaMA-Factory), pinned per file, with the text checked against the source; then each new shape on
small fixtures of our own (tests/fixtures/reformat), including Parquet and JSONL exported by `datasets`."""

import csv, json, os, re
from pathlib import Path
import pytest
from mirastral.data import reformat, read_jsonl, check_output_set
from mirastral.schema import mistral_tokenizer, mistral_request

ROOT = Path(__file__).resolve().parents[1]
REALDATA = Path(
    os.environ.get('MIRASTRAL_REALDATA', ROOT.parent / 'shared' / 'realdata')
)  # beside the checkout, as in CI
FIXTURES = ROOT / 'tests' / 'fixtures' / 'reformat'
HTML = re.compile(r'</?(?:p|br|div|span|em|strong|ul|li|o:p|style|font)\b[^>]*>|&(?:nbsp|amp|lt|gt|quot|#\d+);', re.I)
needs_realdata = pytest.mark.skipif(
    not REALDATA.is_dir(),
    reason=f"the real-data slices are not here ({REALDATA}): they sit beside the checkout in CI (shared/realdata)",
)


def texts(rec):
    "Every text a kept record carries: message text, tool arguments."
    out = [m.get('content') or '' for m in rec['messages']]
    return out + [c['function']['arguments'] for m in rec['messages'] for c in m.get('tool_calls', [])]


@pytest.fixture(scope='module')
def real(tmp_path_factory):
    out = tmp_path_factory.mktemp('realdata') / 'out'
    rep = reformat(REALDATA, out, n_proc=2, progress=False)
    kept = [r for f in ('train.jsonl', 'val.jsonl') for r in read_jsonl(out / f)]
    by_source = {}
    for r in kept:
        by_source.setdefault(r['meta']['source'], []).append(r)
    return rep, by_source, out


# per file: (read, kept, rejected, duplicates, format kept); read counts conversations, not lines or rows
EXPECTED = {
    'annomi/AnnoMI-full.csv': (3, 3, 0, 0, 'turns'),  # 127 utterance rows, 3 transcripts
    'counsel-chat/20200325_counsel_chat.csv': (150, 150, 0, 0, 'qa'),
    'cpsycoun/case_0.txt': (1, 1, 0, 0, 'transcript'),
    'cpsycoun/case_1.txt': (1, 1, 0, 0, 'transcript'),
    'emollm/data.json': (120, 120, 0, 0, 'xtuner'),
    'esconv/FailedESConv.json': (40, 40, 0, 0, 'esconv'),
    'llama-factory/alpaca_en_demo.json': (120, 120, 0, 0, 'alpaca'),
    'llama-factory/glaive_toolcall_en_demo.json': (120, 112, 0, 8, 'sharegpt'),  # 8 exact repeats in the source
    'smile/0.json': (1, 1, 0, 0, 'turns'),  # one conversation per file
    'smile/1.json': (1, 1, 0, 0, 'turns'),
}


@needs_realdata
def test_every_file_counted_in_conversations(real):
    rep, by_source, out = real
    got = {
        src: (s['read'], s['kept'], s['rejected'], s['duplicates'], *s['formats']) for src, s in rep['files'].items()
    }
    assert got == EXPECTED
    assert rep['skipped_files'] == [{'source': 'SOURCES.md', 'reason': "unsupported file type '.md'"}]
    assert {k: len(v) for k, v in by_source.items()} == {k: v[1] for k, v in EXPECTED.items()}
    assert check_output_set(out)['totals'] == rep['totals']


@needs_realdata
def test_kept_records_are_what_mistral_common_encodes(real):
    rep, by_source, out = real
    tok = mistral_tokenizer('finetuning')
    for recs in by_source.values():
        for r in recs[:25]:
            assert len(tok.encode_chat_completion(mistral_request(r)).tokens) == r['meta']['tokens']


@needs_realdata
def test_counselchat_text_true_and_crisis_lines_kept(real):
    rep, by_source, out = real
    with open(REALDATA / 'counsel-chat' / '20200325_counsel_chat.csv', newline='', encoding='utf-8') as f:
        rows = list(csv.DictReader(f))
    kept = {r['meta']['index']: r for r in by_source['counsel-chat/20200325_counsel_chat.csv']}
    lifeline = sum(row['answerText'].count('1-800-273-8255') for row in rows)
    assert lifeline >= 2
    assert sum(r['messages'][1]['content'].count('1-800-273-8255') for r in kept.values()) == lifeline
    assert sum('741741' in r['messages'][1]['content'] for r in kept.values()) == sum(
        '741741' in row['answerText'] for row in rows
    )
    for i, r in kept.items():
        assert not any(HTML.search(t) for t in texts(r)), i
        assert '[PHONE]' not in ''.join(texts(r)), i
        assert r['meta']['source_split'] == rows[i]['split']  # the source's split column is kept
    assert rep['pii_kept']['public_crisis_lines'] >= lifeline


@needs_realdata
def test_general_domain_text_is_not_scrubbed(real):
    "Alpaca's numbers, year ranges and tables stay as they are; the one [PHONE] is a phone number it was asked for."
    rep, by_source, out = real
    raw = json.loads((REALDATA / 'llama-factory' / 'alpaca_en_demo.json').read_text())
    changed = {
        r['meta']['index']
        for r in by_source['llama-factory/alpaca_en_demo.json']
        if r['messages'][-1]['content'] != raw[r['meta']['index']]['output'].strip()
    }
    assert changed == {91}, changed
    assert raw[91]['instruction'] == 'Generate a hypothetical phone number.'
    assert [s['match'] for s in rep['pii_samples']['PHONE']] == ['(555) 123-4567']
    assert rep['pii_replaced'].get('PHONE') == 1


@needs_realdata
def test_tool_arguments_and_numbers_survive(real):
    rep, by_source, out = real
    glaive = {r['meta']['index']: r for r in by_source['llama-factory/glaive_toolcall_en_demo.json']}
    assert not any('[PHONE]' in t for r in glaive.values() for t in texts(r))
    track = [t for r in glaive.values() for t in texts(r) if 'tracking_number' in t]
    assert track and all(re.search(r'"tracking_number": "\w+"', t) for t in track)
    assert any('Factors of 541' in t for r in glaive.values() for t in texts(r))  # a multi-line numeric answer


@needs_realdata
def test_sessions_and_speaker_formats(real):
    rep, by_source, out = real
    # AnnoMI: one conversation per transcript, turns in utterance order, the therapist's opening kept in meta
    with open(REALDATA / 'annomi' / 'AnnoMI-full.csv', newline='', encoding='utf-8') as f:
        rows = list(csv.DictReader(f))
    annomi = {r['meta']['session']['transcript_id']: r for r in by_source['annomi/AnnoMI-full.csv']}
    assert sorted(annomi) == sorted({row['transcript_id'] for row in rows})
    t0 = sorted((row for row in rows if row['transcript_id'] == '0'), key=lambda row: int(row['utterance_id']))
    assert annomi['0']['meta']['opening'] == t0[0]['utterance_text'] and t0[0]['interlocutor'] == 'therapist'
    assert annomi['0']['messages'][0]['content'].startswith(t0[1]['utterance_text'])
    assert len(annomi['0']['meta']['annotations']) == len(t0)
    # ESConv: strategies and situation in meta
    es = by_source['esconv/FailedESConv.json']
    assert all(r['meta']['fields']['situation'] for r in es)
    assert sum(1 for r in es for a in r['meta']['annotations'] if 'strategy' in a) > 100
    # SMILECHAT and CPsyCoun: Chinese speakers, alternating roles, one conversation per file
    for src in ('smile/0.json', 'smile/1.json', 'cpsycoun/case_0.txt', 'cpsycoun/case_1.txt'):
        (r,) = by_source[src]
        roles = [m['role'] for m in r['messages']]
        assert roles[0] == 'user' and roles[-1] == 'assistant' and len(roles) >= 6, src
        assert all(a != b for a, b in zip(roles, roles[1:])), src
    first = (REALDATA / 'cpsycoun' / 'case_0.txt').read_text(encoding='utf-8').split('\n')[0].split('：', 1)[1]
    assert by_source['cpsycoun/case_0.txt'][0]['messages'][0]['content'] == first


# ---- the shapes researchers bring, on fixtures written for this project ----


@pytest.fixture(scope='module')
def shapes(tmp_path_factory):
    "The fixtures, plus files made here: Parquet and JSONL exported by `datasets`, a CSV field over 128 KiB."
    import shutil
    from datasets import Dataset

    raw = tmp_path_factory.mktemp('shapes') / 'raw'
    shutil.copytree(FIXTURES, raw)
    rows = [
        {
            'questionTitle': 'Panic at night',
            'questionText': 'I wake up with my heart racing.',
            'answerText': '<p>That sounds <b>frightening</b>.&nbsp;Slow breathing can help.</p>',
            'split': 'train',
        },
        {
            'questionTitle': 'Grief',
            'questionText': 'My father died last month.',
            'answerText': 'I am so sorry for your loss.',
            'split': 'test',
        },
    ]
    Dataset.from_list(rows).to_parquet(str(raw / 'hf_counselchat.parquet'))
    Dataset.from_list([json.loads(l) for l in (FIXTURES / 'cactus.jsonl').read_text().splitlines()] * 2).to_json(
        str(raw / 'hf_cactus.jsonl')
    )
    image = 'data:image/png;base64,' + 'iVBORw0KGgoAAAANSUhEUgAA' * 10_000  # 240,000 characters
    with open(raw / 'big_field.csv', 'w', newline='') as f:
        w = csv.writer(f)
        w.writerow(['questionText', 'answerText'])
        w.writerow(
            [
                'What does a panic attack look like?',
                f'<p>Here is a diagram:</p><p><img src="{image}"></p><p>Breathe slowly.</p>',
            ]
        )
    out = raw.parent / 'out'
    rep = reformat(raw, out, progress=False)
    kept = {}
    for r in (r for f in ('train.jsonl', 'val.jsonl') for r in read_jsonl(out / f)):
        kept.setdefault(r['meta']['source'], []).append(r)
    return rep, kept


def test_every_fixture_conversation_is_kept(shapes):
    rep, kept = shapes
    assert rep['totals']['rejected'] == 0, rep['reject_reasons']
    assert {s: (v['read'], v['kept']) for s, v in rep['files'].items()} == {
        'annomi.csv': (2, 2),
        'beratung_de.txt': (2, 2),
        'big_field.csv': (1, 1),
        'cactus.jsonl': (1, 1),
        'counselchat_html.csv': (2, 2),
        'cpsycoun_case.txt': (1, 1),
        'emollm_array.jsonl': (2, 2),
        'esconv.json': (2, 2),
        'hf_cactus.jsonl': (2, 0),
        'hf_counselchat.parquet': (2, 2),
        'llamafactory_v1.jsonl': (2, 2),
        'openai_text_and_calls.jsonl': (2, 2),
        'seance_fr.txt': (1, 1),
        'sesion_es.txt': (1, 1),
        'sessao_pt.txt': (1, 1),
        'smile_17.json': (1, 1),
        'splits.json': (3, 3),
    }
    assert rep['files']['hf_cactus.jsonl']['duplicates'] == 2  # the same records as cactus.jsonl: found again


def test_speaker_labels_in_other_languages(shapes):
    rep, kept = shapes
    for src in (
        'beratung_de.txt',
        'sesion_es.txt',
        'seance_fr.txt',
        'sessao_pt.txt',
        'cpsycoun_case.txt',
        'smile_17.json',
    ):
        for r in kept[src]:
            assert [m['role'] for m in r['messages']][:2] == ['user', 'assistant'], src
    (fr,) = kept['seance_fr.txt']
    assert fr['messages'][0]['content'] == 'Je me sens dépassée par mes études en ce moment.'


def test_llamafactory_parts_and_text_with_calls(shapes):
    rep, kept = shapes
    lf = next(r for r in kept['llamafactory_v1.jsonl'] if r['tools'])
    assert [m['role'] for m in lf['messages']] == ['system', 'user', 'assistant', 'tool', 'assistant']
    assert lf['messages'][0]['content'] == 'You are a supportive counsellor.'
    assert json.loads(lf['messages'][2]['tool_calls'][0]['function']['arguments']) == {'score': 3}
    assert lf['meta']['call_text'] == [{'message': 2, 'text': "Thank you for telling me, I'll note that."}]
    assert not any('log it first' in t for t in texts(lf))  # reasoning dropped ...
    assert any(n.startswith('dropped reasoning parts') for n in lf['meta']['notes'])  # ... and said so
    for r in kept['openai_text_and_calls.jsonl']:  # OpenAI tool_calls and legacy function_call, each with text
        call = next(m for m in r['messages'] if m.get('tool_calls'))
        assert 'content' not in call and r['meta']['call_text'][0]['text']


def test_esconv_annomi_cactus_meta(shapes):
    rep, kept = shapes
    es = next(r for r in kept['esconv.json'] if r['meta']['fields']['problem_type'] == 'job crisis')
    assert es['meta']['opening'] == 'Hello, what would you like to talk about today?'
    assert es['messages'][0]['content'] == "I'm scared about work.\nMy contract ends soon and nothing is lined up."
    assert {'turn': 3, 'strategy': 'Reflection of feelings'} in es['meta']['annotations']
    anno = {r['meta']['session']['transcript_id']: r for r in kept['annomi.csv']}
    assert [m['content'] for m in anno['7']['messages']][:2] == [
        'I guess. My wife keeps asking me to quit.',
        "So it matters to her, and you're not sure yet how much it matters to you.",
    ]
    assert anno['7']['meta']['fields']['topic'] == 'smoking cessation' and anno['7']['meta']['line'] == 2
    (cactus,) = kept['cactus.jsonl']
    assert cactus['meta']['fields']['cbt_technique'] == 'Decatastrophizing' and len(cactus['messages']) == 4


def test_html_images_and_office_markup_become_plain_text(shapes):
    rep, kept = shapes
    answers = [
        r['messages'][1]['content']
        for src in ('counselchat_html.csv', 'hf_counselchat.parquet', 'big_field.csv')
        for r in kept[src]
    ]
    assert not any(HTML.search(a) or 'mso' in a or 'base64' in a for a in answers)
    assert any('  * Write worries down at a set time' in a for a in answers)  # list items keep their bullets
    assert any('1-800-273-8255' in a and '741741' in a for a in answers)  # crisis lines kept
    assert any(a == 'That sounds frightening. Slow breathing can help.' for a in answers)
    (big,) = kept['big_field.csv']
    assert big['messages'][1]['content'] == 'Here is a diagram:\n\nBreathe slowly.'
    assert 'converted HTML to plain text' in big['meta']['notes']
    assert {r['meta']['source_split'] for r in kept['splits.json']} == {'train', 'test', 'validation'}
