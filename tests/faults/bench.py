"""Faults of the benchmark scripts (`bench/bench_gpu.py`, `bench/bench_train.py`). They are not `mirastral` commands, so
`CASES` (run by tests/test_faults.py) is empty and `SCRIPT_CASES` holds them: `argv` starts with the script's name under
bench/, and tests/test_bench.py runs each one in its own process with the same rules (status, one error line naming
the problem, no traceback, outputs intact). They fail before any model is made, so each takes seconds."""
import json
from . import Case

CASES = []

def _planted(c):
    (c.tmp/'planted').mkdir()
    (c.tmp/'planted'/'config.json').write_text('{"not": "ours"}')

def _planted_intact(c, r):
    assert sorted(p.name for p in (c.tmp/'planted').iterdir()) == ['config.json']
    assert json.loads((c.tmp/'planted'/'config.json').read_text()) == {'not': 'ours'}
    assert not (c.tmp/'g.json').exists()

def _other_shape(c):
    import sys
    from pathlib import Path
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]/'bench'))
    import bench_gpu
    bench_gpu.make_model(bench_gpu.model_config('tiny'), c.tmp/'tiny')

def _gpu(*args): return lambda c: ['bench_gpu.py', *args, '--out', c.tmp/'g.json']

SCRIPT_CASES = [
    Case('bench-gpu-foreign-model-dir', lambda c: _gpu('--shape', 'tiny', '--model-dir', c.tmp/'planted')(c), 2,
         'does not hold this benchmark model', setup=_planted, check=_planted_intact),
    Case('bench-gpu-model-dir-of-another-shape', lambda c: _gpu('--shape', 'tiny', '--layers', '1', '--model-dir',
         c.tmp/'tiny')(c), 2, 'for another shape', setup=_other_shape),
    Case('bench-gpu-no-warmup', _gpu('--shape', 'tiny', '--warmup', '0'), 2, '--warmup and --steps must be >= 1'),
    Case('bench-gpu-unknown-attention', _gpu('--shape', 'tiny', '--attn', 'packed_sdpa,fast'), 2, "'fast' is not"),
    Case('bench-gpu-bad-multiplier', _gpu('--shape', 'tiny', '--attn', 'packed_sdpa*0'), 2, "'packed_sdpa*0' is not"),
    Case('bench-gpu-data-missing', lambda c: _gpu('--shape', 'tiny', '--data', c.tmp/'nodata')(c), 2,
         'train.jsonl not found'),
    Case('bench-train-unknown-arm', lambda c: ['bench_train.py', '--arms', 'naive,turbo', '--work', c.tmp/'w'], 2,
         "unknown arm(s)/dataset(s) ['turbo']"),
    Case('bench-train-unknown-dataset', lambda c: ['bench_train.py', '--datasets', 'huge', '--work', c.tmp/'w'], 2,
         "['huge']"),
]
