"Split determinism and agreement with mistral-common's own finetuning validator."

import copy
import pytest
from mistral_common.protocol.instruct.request import ChatCompletionRequest
from mistral_common.tokens.tokenizers.mistral import MistralTokenizer
from mistral_common.protocol.instruct.validator import ValidationMode
from mistral_common.exceptions import MistralCommonException
from pydantic import ValidationError
from mirastral.data import reformat, read_jsonl, process_item
from mirastral.demo import write_demo_corpus
from mirastral.schema import tokenizer_path, RecordError, conversation_key


@pytest.fixture(scope='module')
def mc():
    "mistral-common's tokenizer in finetuning mode, loaded independently of mirastral."
    return MistralTokenizer.from_file(str(tokenizer_path()), mode=ValidationMode.finetuning)


def mc_accepts(mc, rec):
    try:
        mc.encode_chat_completion(ChatCompletionRequest(messages=rec['messages'], tools=rec['tools'] or None))
        return True
    except (MistralCommonException, ValidationError, ValueError, AssertionError):
        return False


def test_everything_kept_is_accepted_by_mistral_common(demo, mc):
    raw, out, rep = demo
    recs = read_jsonl(out / 'train.jsonl') + read_jsonl(out / 'val.jsonl')
    assert all(mc_accepts(mc, r) for r in recs)
    assert all(
        len(mc.encode_chat_completion(ChatCompletionRequest(messages=r['messages'], tools=r['tools'] or None)).tokens)
        == r['meta']['tokens']
        for r in recs[:50]
    )


MUTATIONS = {  # each makes a valid record invalid for mistral-common
    'ends on user': lambda r: r['messages'].append({'role': 'user', 'content': 'bye'}),
    'bad function name': lambda r: (
        [c['function'].update(name='log mood') for m in r['messages'] for c in m.get('tool_calls', [])]
        + [t['function'].update(name='log mood') for t in r['tools']]
    ),
    'both content and calls': lambda r: next(m for m in r['messages'] if m.get('tool_calls')).update(content='hi'),
    'tool result first': lambda r: r['messages'].insert(
        1 if r['messages'][0]['role'] == 'system' else 0, {'role': 'tool', 'tool_call_id': 'abcdefghi', 'content': 'x'}
    ),
    'unanswered extra result': lambda r: r['messages'].insert(
        -1, {'role': 'tool', 'tool_call_id': 'abcdefghi', 'content': 'x'}
    ),
}


@pytest.mark.parametrize('name', MUTATIONS)
def test_records_mistral_common_refuses_never_reach_training(demo, mc, name):
    raw, out, rep = demo
    base = next(r for r in read_jsonl(out / 'train.jsonl') if any(m.get('tool_calls') for m in r['messages']))
    bad = copy.deepcopy(base)
    MUTATIONS[name](bad)
    assert not mc_accepts(mc, bad), "mutation should make mistral-common refuse"
    raw_rec = {'messages': bad['messages'], 'tools': bad['tools']}
    try:
        kept = process_item(raw_rec, {'source': 't', 'index': 0})
    except RecordError:
        return  # refused: good
    assert mc_accepts(mc, kept), (
        f"{name}: kept a record mistral-common refuses"
    )  # normalised into a valid one (e.g. trimmed)


def test_split_is_deterministic_across_runs_and_processes(tmp_path):
    write_demo_corpus(tmp_path / 'raw', n=800)
    reformat(tmp_path / 'raw', tmp_path / 'a', n_proc=1, progress=False)
    reformat(tmp_path / 'raw', tmp_path / 'b', n_proc=2, progress=False)
    for f in ('train.jsonl', 'val.jsonl', 'rejects.jsonl', 'duplicates.jsonl'):
        assert (tmp_path / 'a' / f).read_bytes() == (tmp_path / 'b' / f).read_bytes(), f


def test_more_data_never_moves_a_conversation_across_the_split(tmp_path):
    write_demo_corpus(tmp_path / 'small', n=300)
    write_demo_corpus(tmp_path / 'big', n=300)
    write_demo_corpus(tmp_path / 'big' / 'extra', n=300, seed=1)
    reformat(tmp_path / 'small', tmp_path / 's', progress=False)
    reformat(tmp_path / 'big', tmp_path / 'b', progress=False)
    side = lambda d: {conversation_key(r): f for f in ('train', 'val') for r in read_jsonl(d / f'{f}.jsonl')}
    s, b = side(tmp_path / 's'), side(tmp_path / 'b')
    assert s and all(b[k] == v for k, v in s.items())
