#!/usr/bin/env bash
# MiraStral training job: papermill runs nbs/03_train.ipynb headless and writes the executed notebook next to the
# checkpoints. Submit with `qsub hpc/run_finetune.sh` (PBS/Torque or Grid Engine), or run it directly:
# `bash hpc/run_finetune.sh` trains the embedded tiny model on the demo data, no scheduler needed.
#
# Settings come from the environment (all optional):
#   MIRASTRAL_CONFIG   YAML of TrainConfig fields (e.g. hpc/mistral7b.yaml for the real 7B QLoRA run)
#   OUTPUT_DIR         default /data/scratch/$USER/mira_finetune if /data/scratch/$USER exists, else runs/$RUN_NAME
#   RUN_NAME           default demo
#   DATA_DIR           default runs/demo/data (made by `mirastral demo --max-steps 0` if missing and default)
#   MIRASTRAL_PARAMS   extra papermill parameters, e.g. "-p max_steps 500 -p learning_rate 1e-4"
#   MIRASTRAL_VENV     default .venv (created with `make setup` when missing)
#
# Walltime: the scheduler's warning signal (SIGUSR1/SIGUSR2 with Grid Engine `-notify`, SIGTERM elsewhere) is passed
# to the training kernel, which saves a checkpoint and stops; the job then exits 99, which makes Grid Engine
# reschedule it (`-r y`). Resubmitting the same job resumes from the latest checkpoint in OUTPUT_DIR/results.
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

VENV=${MIRASTRAL_VENV:-.venv}
[ -x "$VENV/bin/python" ] || make setup VENV="$VENV" || { echo "[mirastral] setup failed"; exit 1; }
export PATH="$(cd "$VENV" && pwd)/bin:$PATH" PYTHONUNBUFFERED=1

RUN_NAME=${RUN_NAME:-demo}
if [ -z "${OUTPUT_DIR:-}" ]; then
  if [ -d "/data/scratch/${USER:-nobody}" ]; then OUTPUT_DIR=/data/scratch/$USER/mira_finetune; else OUTPUT_DIR=runs/$RUN_NAME; fi
fi
DATA_DIR=${DATA_DIR:-runs/demo/data}
if [ ! -f "$DATA_DIR/train.jsonl" ] && [ "$DATA_DIR" = runs/demo/data ]; then mirastral demo --max-steps 0 --no-progress || exit 1; fi
mkdir -p "$OUTPUT_DIR/results"
STAMP=$(date +%Y%m%d-%H%M%S)

# The trainer runs in its own session (setsid): schedulers signal the job's whole process group, and papermill
# would die of a SIGUSR1 meant for training. Only this script receives them, and it forwards them below.
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

if [ "$NPROC_PER_NODE" -gt 1 ] || [ "${NNODES:-1}" -gt 1 ]; then
  ARGS=(-p data_dir "$DATA_DIR" -p output_dir "$OUTPUT_DIR" -p run_name "$RUN_NAME")
  [ -n "${MIRASTRAL_CONFIG:-}" ] && ARGS=(--config "$MIRASTRAL_CONFIG" "${ARGS[@]}")
  LAUNCH=(torchrun --nproc_per_node "$NPROC_PER_NODE" --nnodes "${NNODES:-1}" --node_rank "${NODE_RANK:-0}"
          --master_addr "${MASTER_ADDR:-127.0.0.1}" --master_port "${MASTER_PORT:-29500}")
  echo "[mirastral] data-parallel: ${LAUNCH[*]} -m mirastral.cli train ${ARGS[*]} ${MIRASTRAL_PARAMS:-}"
  setsid "${LAUNCH[@]}" -m mirastral.cli train "${ARGS[@]}" ${MIRASTRAL_PARAMS:-} &
else
  setsid papermill nbs/03_train.ipynb "$OUTPUT_DIR/results/03_train.$STAMP.ipynb" -k mirastral --log-output --cwd . \
            -p data_dir "$DATA_DIR" -p output_dir "$OUTPUT_DIR" -p run_name "$RUN_NAME" \
            -p config_file "${MIRASTRAL_CONFIG:-}" ${MIRASTRAL_PARAMS:-} &
fi
child=$!
warned=
forward() {  # pass the walltime warning to the training process (papermill's kernel is its child)
  echo "[mirastral] SIG$1 received: asking training to checkpoint and stop"; warned=$1
  pkill "-$1" -P "$child" 2>/dev/null || kill "-$1" "$child" 2>/dev/null
}
trap 'forward TERM' TERM; trap 'forward USR1' USR1; trap 'forward USR2' USR2
while true; do wait "$child"; rc=$?; kill -0 "$child" 2>/dev/null || break; done  # wait again after a trapped signal

if [ -f "$OUTPUT_DIR/final_model/training_summary.json" ] && [ "$OUTPUT_DIR/final_model/training_summary.json" -nt "$OUTPUT_DIR/results/config.yaml" ]; then
  echo "[mirastral] finished: $OUTPUT_DIR/final_model"; exit 0
fi
if [ -f "$OUTPUT_DIR/results/training_summary.json" ] && grep -q '"interrupted' "$OUTPUT_DIR/results/training_summary.json"; then
  echo "[mirastral] interrupted after a checkpoint: exit 99 so the scheduler reschedules (or resubmit to resume)"; exit 99
fi
if [ -n "$warned" ]; then  # the warning came before training had started: nothing lost, the next run starts or resumes
  echo "[mirastral] SIG$warned arrived before training could checkpoint: exit 99 so the scheduler reschedules"; exit 99
fi
echo "[mirastral] training failed (exit $rc); see the log above and $OUTPUT_DIR/results/"; exit "${rc:-1}"
