"""Faults of `mirastral export`: damaged or missing inputs are named before any weights load, an export is all or
nothing (no folder, no hidden temporary left by a failure), an earlier export or a stranger's folder is never lost, and
a folder holding both an adapter and a model is refused rather than guessed at."""
import json, os, shutil
from . import Case

def _final(c): return c.run()/'final_model'
def _ex(*extra): return lambda c: ['export', c.run(), c.tmp/'out', *extra]

def _nothing_at(name):
    "Check: no export folder `name` and no hidden temporary beside it."
    def check(c, r):
        assert not (c.tmp/name).exists(), sorted(p.name for p in (c.tmp/name).iterdir())
        assert not [p.name for p in c.tmp.iterdir() if p.name.startswith(f'.{name}.')], list(c.tmp.iterdir())
    return check

def _truncate(c):
    f = _final(c)/'adapter_model.safetensors'
    data = f.read_bytes()
    f.write_bytes(data[:len(data) // 2])

def _randomize(c): (_final(c)/'adapter_model.safetensors').write_bytes(os.urandom(4096))
def _delete_adapter(c): (_final(c)/'adapter_model.safetensors').unlink()
def _adapter_config(text): return lambda c: (_final(c)/'adapter_config.json').write_text(text)
def _config_yaml(text): return lambda c: (_final(c)/'config.yaml').write_text(text)

def _stranger(c):
    (c.tmp/'out').mkdir()
    (c.tmp/'out'/'thesis.tex').write_text('years of work')

def _file_intact(c, r): assert (c.tmp/'out').read_text() == 'x'
def _run_intact(c, r): assert (c.tmp/'run'/'final_model'/'adapter_model.safetensors').stat().st_size > 1000

def _stranger_intact(c, r): assert (c.tmp/'out'/'thesis.tex').read_text() == 'years of work'

def _earlier_export(c):
    "A real earlier export (adapter only) at out/, plus a file only it has."
    from mirastral.export import export_model
    export_model(c.run(), c.tmp/'out', merge=False, check=False)
    (c.tmp/'out'/'marker').write_text('old')

def _earlier_intact(c, r):
    assert (c.tmp/'out'/'marker').read_text() == 'old' and (c.tmp/'out'/'adapter_model.safetensors').exists()

def _replaced_whole(c, r):
    "The merged export replaced the adapter-only one: no stale adapter, no old file, one kind of folder."
    from mirastral.model import model_kind
    out = c.tmp/'out'
    left = sorted(p.name for p in out.iterdir())
    assert 'marker' not in left and 'adapter_config.json' not in left, left
    assert model_kind(out) == 'model' and json.loads((out/'export.json').read_text())['merged'] is True
    assert not [p for p in c.tmp.iterdir() if p.name.startswith('.out.')]

def _merged_ok(c, r):
    from mirastral.model import model_kind
    out = c.tmp/'out'
    assert model_kind(out) == 'model' and json.loads((out/'export.json').read_text())['check']['same_tokens']
    for f in ('tokenizer.model.v3', 'tokenizer_config.json', 'tools.json', 'README.md', 'config.yaml'):
        assert (out/f).exists(), f
    assert oct((out).stat().st_mode & 0o777) != oct(0o700)      # not left private like a mkdtemp folder
    assert not [p for p in c.tmp.iterdir() if p.name.startswith('.out.')]

def _adapter_ok(c, r):
    from mirastral.model import model_kind
    assert model_kind(c.tmp/'out') == 'adapter' and not list((c.tmp/'out').glob('model*.safetensors'))

def _ambiguous(c):
    "An adapter-only export with a stray full model copied in (what the old export left when written over)."
    from mirastral.export import export_model
    from mirastral.model import create_tiny_model
    export_model(c.run(), c.tmp/'mixed', merge=False, check=False)
    for f in create_tiny_model().iterdir(): shutil.copy(f, c.tmp/'mixed'/f.name)
    (c.tmp/'in.txt').write_text('hello\n')

CASES = [
    Case('export-missing-run', lambda c: ['export', c.tmp/'nowhere', c.tmp/'out'], 2, 'nowhere not found',
         check=_nothing_at('out')),
    Case('export-not-a-run', lambda c: ['export', c.tmp, c.tmp/'out'], 2, 'holds no adapter', check=_nothing_at('out')),
    Case('export-adapter-deleted', _ex(), 2, 'adapter_model.safetensors is missing',
         setup=_delete_adapter, check=_nothing_at('out')),
    Case('export-adapter-truncated', _ex(), 2, 'truncated or corrupt',
         setup=_truncate, check=_nothing_at('out')),
    Case('export-adapter-random-bytes', _ex(), 2, 'not a readable safetensors file',
         setup=_randomize, check=_nothing_at('out')),
    Case('export-adapter-config-not-json', _ex(), 2, 'adapter_config.json is not valid JSON',
         setup=_adapter_config('{"r": 16,'), check=_nothing_at('out')),
    Case('export-config-yaml-broken', _ex(), 2, 'config.yaml is not valid YAML',
         setup=_config_yaml('lora_r: [16\nmodel: x: y\n'), check=_nothing_at('out')),
    Case('export-config-yaml-a-list', _ex(), 2, 'must be a mapping of training settings',
         setup=_config_yaml('- a\n- b\n'), check=_nothing_at('out')),
    Case('export-base-missing', _ex(), 2, 'neither a local folder nor a hub id',
         setup=_config_yaml('model_name_or_path: /gone/base-model\n'), check=_nothing_at('out')),
    Case('export-into-a-strangers-folder', _ex(), 2, 'not a MiraStral export',
         setup=_stranger, check=_stranger_intact),
    Case('export-overwrite-never-takes-a-strangers-folder', _ex('--overwrite'), 2,
         'not a MiraStral export', setup=_stranger, check=_stranger_intact),
    Case('export-into-an-earlier-export', _ex(), 2, 'pass --overwrite',
         setup=_earlier_export, check=_earlier_intact),
    Case('export-onto-a-file', _ex(), 2, 'is a file',
         setup=lambda c: (c.tmp/'out').write_text('x'), check=_file_intact),
    Case('export-into-its-own-run', lambda c: ['export', c.run(), c.run(), '--overwrite'], 2,
         'holds the run being exported', check=_run_intact),
    Case('export-merged', _ex(), 0, 'reloaded and checked: same', check=_merged_ok),
    Case('export-adapter-only', _ex('--adapter-only'), 0, 'adapter of',
         check=_adapter_ok),
    Case('export-overwrite-replaces-whole', _ex('--overwrite', '--no-check'), 0,
         'merged model', setup=_earlier_export, check=_replaced_whole),
    Case('export-ambiguous-folder-is-refused-on-load', lambda c: ['chat', c.tmp/'mixed', '--input', c.tmp/'in.txt',
         '--store', c.tmp/'store'], 2, 'holds both an adapter', setup=_ambiguous),
]
