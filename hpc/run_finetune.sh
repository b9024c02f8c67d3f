#!/usr/bin/env bash
# MiraStral training job: papermill runs nbs/03_train.ipynb headless (its prose, code and training cells; its tests
# run in `make test`) and writes the executed notebook next to the checkpoints. Submit with `qsub hpc/run_finetune.sh` (PBS/Torque or Grid Engine), or run it directly:
# `bash hpc/run_finetune.sh` trains the embedded tiny model on the demo data, no scheduler needed.
#
# Settings, later wins:  TrainConfig defaults  <  MIRASTRAL_CONFIG (YAML)  <  environment  <  MIRASTRAL_PARAMS
#   MIRASTRAL_CONFIG   YAML of TrainConfig fields (e.g. hpc/mistral7b.yaml for the real 7B QLoRA run)
#   DATA_DIR           -> data_dir     (passed only when set: the YAML's data_dir counts otherwise)
#   OUTPUT_DIR         -> output_dir   (likewise; TrainConfig's default is runs/<run_name>, or
#                                        /data/scratch/$USER/mira_finetune/<run_name> when /data/scratch/$USER exists)
#   RUN_NAME           -> run_name     (likewise)
#   MIRASTRAL_PARAMS   more settings, e.g. "-p max_steps 500 -p learning_rate 1e-4" (shell-style quoting; never globbed;
#                      every value reaches TrainConfig as a string and is converted by its field's type)
#   MIRASTRAL_OVERWRITE=1  output_dir holds a *different* run: move it aside (OUTPUT_DIR/replaced-<time>/) and start
#                      this one. The same run still resumes, so a requeued job that carries it is safe.
#   MIRASTRAL_DRY_RUN=1    check everything (settings, model size against the GPU, data, output_dir) and stop
#   MIRASTRAL_VENV     a virtual environment with MiraStral installed (default .venv, made with `make setup` if missing)
# The job first runs `mirastral train --dry-run` with the same settings: it prints them with their sources, checks
# the model's size against the GPU (a model over 1 B parameters with no CUDA device stops here, in seconds), reads
# and checks the data and says what output_dir holds (new run, resume, finished, or a different run: refused).
#
# Walltime: the scheduler's warning signal (SIGUSR1/SIGUSR2 with Grid Engine `-notify`, SIGTERM elsewhere) is passed
# to the training kernel, which saves a checkpoint and stops; the job then exits 99, which makes Grid Engine
# reschedule it (`-r y`). Resubmitting the same job resumes from the latest complete checkpoint in OUTPUT_DIR/results.
#
# Submit from the repository root (the job runs in the directory qsub was called from).
#
# Data-parallel (DDP): when the job has more than one GPU (CUDA_VISIBLE_DEVICES / nvidia-smi) or more than one node
# ($PBS_NODEFILE, Grid Engine's $PE_HOSTFILE), or NPROC_PER_NODE / NNODES say so, the job runs
# `torchrun ... -m mirastral.cli train` instead of papermill (papermill drives a single kernel); Trainer trains
# data-parallel, and only rank 0 writes. Multi-node: the script must run once on every node (e.g. `pbsdsh -u`, or
# your site's MPI/ssh launcher); each derives NODE_RANK from its host's place in the host file and uses the first host
# as MASTER_ADDR. Override any of NPROC_PER_NODE, NNODES, NODE_RANK, MASTER_ADDR, MASTER_PORT. For FSDP or DeepSpeed
# ZeRO on large nodes, start `accelerate launch --config_file YOUR.yaml -m mirastral.cli train ...` the same way.

# ---- PBS / Torque ----
#PBS -N mirastral
#PBS -l select=1:ncpus=8:ngpus=1:mem=64gb
#PBS -l walltime=24:00:00
#PBS -j oe
#PBS -o mirastral.pbs.log
# ---- Grid Engine (SGE / OGE / UGE) ----
#$ -N mirastral
#$ -S /bin/bash
#$ -cwd
#$ -V
#$ -j y
#$ -o mirastral.$JOB_ID.log
#$ -notify
#$ -r y
# Add your site's GPU and runtime requests, e.g.:  #$ -l gpu=1,h_rt=24:00:00,s_rt=23:50:00

set -uo pipefail
cd "${MIRASTRAL_ROOT:-${PBS_O_WORKDIR:-${SGE_O_WORKDIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}}}"
[ -f nbs/03_train.ipynb ] || { echo "[mirastral] $(pwd) is not the MiraStral repository: qsub from its root or set MIRASTRAL_ROOT"; exit 2; }
echo "[mirastral] job ${JOB_ID:-${PBS_JOBID:-local}} on $(hostname) in $(pwd) at $(date -Is) (restarted=${RESTARTED:-0})"

# The venv: a user-given one must exist (its path is never handed to make, which would expand `$(...)` in it).
if [ -n "${MIRASTRAL_VENV:-}" ]; then
  VENV=$MIRASTRAL_VENV
  [ -x "$VENV/bin/python" ] || { echo "[mirastral] MIRASTRAL_VENV: $VENV/bin/python not found: make the venv first (make setup VENV=...)"; exit 2; }
else
  VENV=.venv
  [ -x "$VENV/bin/python" ] || make setup || { echo "[mirastral] setup failed"; exit 1; }
fi
export PATH="$(cd "$VENV" && pwd)/bin:$PATH" PYTHONUNBUFFERED=1

# Settings, in the order they apply (later wins). Only what the user set is passed: no default here overrides the YAML.
CONFIG_ARGS=()
[ -n "${MIRASTRAL_CONFIG:-}" ] && CONFIG_ARGS=(--config "$MIRASTRAL_CONFIG")
PARAMS=()
FROM_ENV=()
for pair in DATA_DIR:data_dir OUTPUT_DIR:output_dir RUN_NAME:run_name; do
  var=${pair%%:*}; name=${pair#*:}
  if [ -n "${!var:-}" ]; then PARAMS+=(-p "$name" "${!var}"); FROM_ENV+=("$var=${!var}"); fi
done
[ "${MIRASTRAL_OVERWRITE:-0}" = 1 ] && { PARAMS+=(-p overwrite true); FROM_ENV+=("MIRASTRAL_OVERWRITE=1"); }
EXTRA=()
if [ -n "${MIRASTRAL_PARAMS:-}" ]; then  # split like a shell would, without globbing or expansion; -p and -r alike
  mapfile -d '' -t EXTRA < <(python - "$MIRASTRAL_PARAMS" <<'PY'
import shlex, sys
try: words = shlex.split(sys.argv[1])
except ValueError as e: sys.exit(f"[mirastral] MIRASTRAL_PARAMS: {e}")
if len(words) % 3 or any(w not in ('-p', '-r') for w in words[::3]):
    sys.exit(f"[mirastral] MIRASTRAL_PARAMS must be '-p NAME VALUE' groups, got {sys.argv[1]!r}")
sys.stdout.write(''.join(f"-p\0{n}\0{v}\0" for n, v in zip(words[1::3], words[2::3])))
PY
  ) || exit 2
  [ ${#EXTRA[@]} -gt 0 ] || { echo "[mirastral] MIRASTRAL_PARAMS could not be read: $MIRASTRAL_PARAMS"; exit 2; }
fi
PARAMS+=("${EXTRA[@]}")
echo "[mirastral] settings, later wins: TrainConfig defaults < config file ${MIRASTRAL_CONFIG:-(none)}" \
     "< environment ${FROM_ENV[*]:-(none)} < MIRASTRAL_PARAMS ${MIRASTRAL_PARAMS:-(none)}"

# What the scheduler allocated: GPUs on this node, and the node list.
if [ -z "${NPROC_PER_NODE:-}" ]; then
  if [ -n "${CUDA_VISIBLE_DEVICES:-}" ]; then NPROC_PER_NODE=$(echo "$CUDA_VISIBLE_DEVICES" | tr ',' '\n' | grep -c .)
  elif command -v nvidia-smi >/dev/null 2>&1; then NPROC_PER_NODE=$(nvidia-smi -L 2>/dev/null | grep -c '^GPU')
  fi
  [ "${NPROC_PER_NODE:-0}" -ge 1 ] || NPROC_PER_NODE=1
fi
HOSTFILE=${PBS_NODEFILE:-}
[ -z "$HOSTFILE" ] && [ -n "${PE_HOSTFILE:-}" ] && HOSTFILE=$PE_HOSTFILE
if [ -n "$HOSTFILE" ] && [ -f "$HOSTFILE" ]; then
  mapfile -t HOSTS < <(awk '{print $1}' "$HOSTFILE" | awk '!seen[$0]++')
  NNODES=${NNODES:-${#HOSTS[@]}}; MASTER_ADDR=${MASTER_ADDR:-${HOSTS[0]}}
  if [ -z "${NODE_RANK:-}" ]; then
    for i in "${!HOSTS[@]}"; do case "${HOSTS[$i]}" in "$(hostname)"|"$(hostname -s)"|"$(hostname -f 2>/dev/null)") NODE_RANK=$i;; esac; done
  fi
fi

# Check everything before anything heavy starts: settings, model size vs. GPU, data, output_dir (the run's identity
# counts its processes: WORLD_SIZE as torchrun will set it).
check() { WORLD_SIZE=$((NPROC_PER_NODE * ${NNODES:-1})) mirastral train "${CONFIG_ARGS[@]}" "${PARAMS[@]}" --dry-run; }
RESOLVED=$(check 2>&1) || { rc=$?; echo "$RESOLVED"; echo "[mirastral] the settings check failed (exit $rc): nothing was started"; exit 2; }
echo "$RESOLVED" | grep -v '^resolved '
resolved() { sed -n "s/^resolved $1=//p" <<< "$RESOLVED" | tail -1; }
OUTPUT_DIR=$(resolved output_dir)
if [ "$(resolved data_ready)" = 0 ]; then  # only the embedded model's default: the demo data, made here once
  echo "[mirastral] making the demo data ($(resolved data_dir))"; mirastral demo --max-steps 0 --no-progress || exit 1
  RESOLVED=$(check 2>&1) || { rc=$?; echo "$RESOLVED"; exit 2; }
fi
[ "${MIRASTRAL_DRY_RUN:-0}" = 1 ] && { echo "[mirastral] dry run: nothing trained"; exit 0; }
mkdir -p "$OUTPUT_DIR/results"
STAMP=$(date +%Y%m%d-%H%M%S)
STARTED=$(mktemp)  # outcome files newer than this were written by this run
trap 'rm -f "$STARTED"' EXIT

# The trainer runs in its own session (setsid): schedulers signal the job's whole process group, and papermill
# would die of a SIGUSR1 meant for training. Only this script receives them, and it forwards them below.
if [ "$NPROC_PER_NODE" -gt 1 ] || [ "${NNODES:-1}" -gt 1 ]; then
  LAUNCH=(torchrun --nproc_per_node "$NPROC_PER_NODE" --nnodes "${NNODES:-1}" --node_rank "${NODE_RANK:-0}"
          --master_addr "${MASTER_ADDR:-127.0.0.1}" --master_port "${MASTER_PORT:-29500}")
  echo "[mirastral] data-parallel: ${LAUNCH[*]} -m mirastral.cli train ${CONFIG_ARGS[*]} ${PARAMS[*]}"
  setsid "${LAUNCH[@]}" -m mirastral.cli train "${CONFIG_ARGS[@]}" "${PARAMS[@]}" &
else
  RAW=()  # papermill -r: raw strings, so "None" or "1e-4" stay text until TrainConfig converts them by field type
  for ((i = 0; i < ${#PARAMS[@]}; i += 3)); do RAW+=(-r "${PARAMS[i+1]}" "${PARAMS[i+2]}"); done
  [ -n "${MIRASTRAL_CONFIG:-}" ] && RAW+=(-r config_file "$MIRASTRAL_CONFIG")
  # The chapter without its show-and-test cells (those run in `nbdev_test`, not in every job): its prose, the exported
  # code, the parameters cell and the cell that trains.
  JOBNB=$OUTPUT_DIR/results/.03_train.job.ipynb
  python - nbs/03_train.ipynb "$JOBNB" <<'PY' || { echo "[mirastral] could not prepare the notebook"; exit 1; }
import nbformat, sys
nb = nbformat.read(sys.argv[1], as_version=4)
def runs(c): return 'parameters' in c.metadata.get('tags', []) or c.source.startswith(('#| export', '#| slow'))
nb.cells = [c for c in nb.cells if c.cell_type == 'markdown' or runs(c)]
nbformat.write(nb, sys.argv[2])
PY
  setsid papermill "$JOBNB" "$OUTPUT_DIR/results/03_train.$STAMP.ipynb" -k mirastral --log-output --cwd . "${RAW[@]}" &
fi
child=$!
warned=
forward() {  # pass the walltime warning to the training process (papermill's kernel is its child)
  echo "[mirastral] SIG$1 received: asking training to checkpoint and stop"; warned=$1
  pkill "-$1" -P "$child" 2>/dev/null || kill "-$1" "$child" 2>/dev/null
}
trap 'forward TERM' TERM; trap 'forward USR1' USR1; trap 'forward USR2' USR2
while true; do wait "$child"; rc=$?; kill -0 "$child" 2>/dev/null || break; done  # wait again after a trapped signal

SUMMARY=$OUTPUT_DIR/results/training_summary.json
if [ "$rc" = 99 ] || { [ "$SUMMARY" -nt "$STARTED" ] && grep -q '"interrupted' "$SUMMARY"; }; then
  echo "[mirastral] interrupted after a checkpoint: exit 99 so the scheduler reschedules (or resubmit to resume)"; exit 99
fi
if [ "$rc" = 0 ] && [ -f "$OUTPUT_DIR/final_model/training_summary.json" ]; then
  echo "[mirastral] finished: $OUTPUT_DIR/final_model"; exit 0
fi
if [ -n "$warned" ]; then  # the warning came before training could checkpoint: nothing lost, the next run starts or resumes
  echo "[mirastral] SIG$warned arrived before training could checkpoint: exit 99 so the scheduler reschedules"; exit 99
fi
echo "[mirastral] training failed (exit $rc); see the log above and $OUTPUT_DIR/results/"; exit "${rc:-1}"
