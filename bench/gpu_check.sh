#!/usr/bin/env bash
# The GPU check, in one call on a device machine (NVIDIA H100 / H200, no network): a random-weight Mistral-7B-shaped
# model, 4-bit NF4 + LoRA r=16 on all projections, seq 2048, packed, gradient checkpointing, 20 timed steps after 3 of
# warm-up, for packed_sdpa, sdpa and flash_attention_2 (when flash_attn is importable), then packed_sdpa with four
# times the examples a step (about 8k tokens, like the real job's batch of 4 at max_seq_len 4096); real tokens/s, peak
# VRAM (allocated and reserved), MFU.
#
#   bash bench/fetch_gpu_wheels.sh        # here, once: the wheels the device lacks, into .whl/ (ignored, ~40 MB)
#   run(command="bash bench/gpu_check.sh", carry=[".whl"], timeout_s=600)
#
# First checks placement on the GPU in seconds (bench/gpu_placement.py -> $OUT/placement.json: 16-bit and 4-bit loads
# on this process's GPU, the export's merge there, bf16 kept bf16). Writes $OUT/gpu_results.json (bench_gpu.py's JSON,
# rewritten after each variant) and $OUT/gpu_check.log, and prints a table last. GPU_CHECK_ARGS adds or overrides bench_gpu.py options (e.g. "--layers 2 --steps 3" for a quick look;
# on a CPU "--layers 1 --seq 1024 --steps 1 --warmup 1" runs the same path). GPU_CHECK_TIMEOUT (seconds, default 500)
# stops the benchmark in time for its log and the variants already measured to come back. PYTHON, GPU_CHECK_WHEELS
# (default .whl) and GPU_CHECK_SITE (default /tmp/site) let the same script run on a CPU machine as a test.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-$(mktemp -d)}
mkdir -p "$OUT"
exec > >(tee -a "$OUT/gpu_check.log") 2>&1
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_DATASETS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
export MIRASTRAL_CACHE=${MIRASTRAL_CACHE:-$(mktemp -d)}
PY=${PYTHON:-python3}
T0=$(date +%s)
echo "== gpu_check $(date -u +%FT%TZ) on $(hostname), commit $(git rev-parse --short HEAD 2>/dev/null || echo '?')"
WHL=${GPU_CHECK_WHEELS:-.whl}
if ls "$WHL"/*.whl >/dev/null 2>&1; then
  SITE=${GPU_CHECK_SITE:-/tmp/site}
  echo "== installing $(ls "$WHL"/*.whl | wc -l) carried wheels into $SITE"
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$SITE" "$WHL"/*.whl \
    || { echo "gpu_check: the wheel install failed"; exit 1; }
  export PYTHONPATH=$SITE:$PWD
else
  echo "== no .whl/ here: using the installed packages"
  export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
fi
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv
"$PY" - <<'PY' || { echo "gpu_check: an import failed (see above)"; exit 1; }
import importlib, importlib.metadata as md, sys
print('python', sys.version.split()[0])
for p in ('torch', 'transformers', 'peft', 'accelerate', 'bitsandbytes', 'mistral_common', 'datasets', 'pydantic',
          'numpy', 'pyarrow', 'safetensors', 'tokenizers', 'flash_attn'):
    try: print(f'  {p} {md.version(p)}')
    except md.PackageNotFoundError: print(f'  {p} -')
import torch
print('cuda', torch.version.cuda, '| GPU:', torch.cuda.get_device_name() if torch.cuda.is_available() else 'none')
for m in ('mirastral.model', 'mirastral.train', 'mirastral.evaluate', 'mirastral.export', 'bitsandbytes'):
    importlib.import_module(m)
print('imports ok')
PY
echo "== placement on this GPU (bench/gpu_placement.py: tiny models, seconds)"
"$PY" bench/gpu_placement.py "$OUT/placement.json" 2>&1 | grep -v "Loading weights\|Writing model shards" \
  || echo "gpu_check: placement checks failed (see above); the benchmark runs anyway"
echo "== setup took $(( $(date +%s) - T0 )) s; benchmark:"
timeout --signal=TERM --kill-after=15 "${GPU_CHECK_TIMEOUT:-500}" "$PY" bench/bench_gpu.py --shape 7b --seq 2048 \
  --steps 20 --warmup 3 --lora-r 16 --attn packed_sdpa,sdpa,flash_attention_2,packed_sdpa*4 --out "$OUT/gpu_results.json" \
  ${GPU_CHECK_ARGS:-}
rc=$?
[ $rc -eq 124 ] && echo "gpu_check: the benchmark ran past GPU_CHECK_TIMEOUT; the variants measured are in $OUT/gpu_results.json"
echo "== gpu_check done in $(( $(date +%s) - T0 )) s (exit $rc); results: $OUT/gpu_results.json, log: $OUT/gpu_check.log"
exit $rc
