#!/usr/bin/env bash
# Download, on a machine with PyPI, the wheels that bench/gpu_check.sh needs on the device machines (Python 3.12, x86-64,
# torch 2.11 cu130, transformers 5.17, no network; no bitsandbytes, mistral-common, pydantic, jsonschema, datasets,
# fastcore, py3langid, phonenumbers, inscriptis) into
# the ignored folder .whl/, under the device tool's 64 MiB limit (repository included).
#
#   bash bench/fetch_gpu_wheels.sh      # then: the `run` call in README's "## Performance" (carry .whl)
#
# WHEEL_DIR (default .whl) and PY_VERSION (default 3.12) fetch the same set elsewhere or for another Python (the CPU
# test of bench/gpu_check.sh uses the Python here).
#
# Versions are the ones tested together on CPU. transformers is carried (5.24): the device's 5.17 cannot slice the
# hidden states with a 2-D boolean `logits_to_keep` (it indexes `hidden_states[:, mask, :]`), which MiraStral's packed
# batches use. bitsandbytes' wheel (43 MB: kernels for every CUDA and ROCm release) is repacked with only its CPU and
# CUDA 13.x libraries (the device's torch is cu130).
set -euo pipefail
cd "$(dirname "$0")/.."
W=${WHEEL_DIR:-.whl}
PYV=${PY_VERSION:-3.12}
rm -rf "$W"
mkdir -p "$W"
PIP=(python3 -m pip download -q --no-deps --only-binary=:all: --python-version "$PYV" --implementation cp -d "$W"
     --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_24_x86_64
     --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 --platform manylinux1_x86_64 --platform any)
WHEELS=(
  bitsandbytes==0.50.2 transformers==5.24.0 peft==0.21.2 regex==2026.11.19
  mistral-common==1.13.1 pydantic==2.14.4 pydantic-core==2.50.5 annotated-types==0.8.0 typing-inspection==0.4.5
  typing-extensions==4.16.0 pydantic-extra-types==2.11.1 pycountry==26.2.16
  jsonschema==4.26.0 jsonschema-specifications==2025.9.1 referencing==0.37.0 rpds-py==2026.9.1
  datasets==5.2.0 dill==0.4.1 multiprocess==0.70.19
  fastcore==1.12.3 py3langid==0.4.0 phonenumbers==9.0.43 inscriptis==2.7.6
)
"${PIP[@]}" "${WHEELS[@]}" 2>&1 | grep -v "is ignored: it is neither" || true
python3 - "$W" <<'EOF'
"Repack bitsandbytes with only its CPU and CUDA 13 libraries (RECORD rewritten to match)."
import re, sys, zipfile
from pathlib import Path
whl = next(Path(sys.argv[1]).glob('bitsandbytes-*.whl'))
drop = re.compile(r'bitsandbytes/libbitsandbytes_(?!cpu\.|cuda13\d\.).*\.so$')
tmp = whl.with_suffix('.tmp')
with zipfile.ZipFile(whl) as src, zipfile.ZipFile(tmp, 'w', zipfile.ZIP_DEFLATED) as dst:
    for info in src.infolist():
        if drop.match(info.filename): continue
        data = src.read(info)
        if info.filename.endswith('.dist-info/RECORD'):
            data = ''.join(l for l in data.decode().splitlines(True) if not drop.match(l.split(',')[0])).encode()
        dst.writestr(info, data)
tmp.replace(whl)
EOF
n=$(ls "$W"/*.whl | wc -l)
if [ "$n" -ne "${#WHEELS[@]}" ]; then echo "expected ${#WHEELS[@]} wheels, got $n" >&2; exit 1; fi
du -ch "$W"/*.whl | tail -1
unzip -l "$W"/bitsandbytes-*.whl | grep -o 'libbitsandbytes_[a-z0-9]*\.so' | tr '\n' ' '
echo
