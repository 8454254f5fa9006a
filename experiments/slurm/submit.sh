#!/usr/bin/env bash
# Runs a table across N Slurm array tasks (one shard each, one GPU each) and renders it when all
# have finished:  experiments/slurm/submit.sh experiments/table1_unet.yaml 6
# Environment: DSMA (the binary, default `dsma` on PATH), OUT (default runs/<file name>),
# BACKEND (cuda or cpu, default cuda), EXTRA_OVERRIDES (passed to every shard), any sbatch option
# in SBATCH_* variables (e.g. SBATCH_PARTITION, SBATCH_TIMELIMIT, SBATCH_GRES), and SBATCH_ARGS:
# options for both sbatch calls that override the scripts' #SBATCH lines (e.g. "--cpus-per-task=4
# --mem=16G"; see experiments/slurm/README.md).
# The table job waits for every task to end (afterany, so a cancelled and requeued task is waited
# for) and refuses to write a table with a run missing (`dsma table --complete`).
set -euo pipefail
if [ $# -lt 1 ]; then
    echo "usage: $0 EXPERIMENT.yaml [SHARDS]" >&2
    exit 1
fi
export EXPERIMENT=$1
shards=${2:-4}
case $shards in
    ''|*[!0-9]*|0) echo "SHARDS must be a positive number, got '${shards}'" >&2; exit 1 ;;
esac
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck disable=SC2086 # SBATCH_ARGS is a list of options
array=$(sbatch --parsable --array="0-$((shards - 1))" --export=ALL ${SBATCH_ARGS:-} "$here/shard.sbatch")
array=${array%%;*}
# shellcheck disable=SC2086
table=$(sbatch --parsable --dependency="afterany:${array}" --export=ALL ${SBATCH_ARGS:-} "$here/table.sbatch")
echo "submitted ${shards} shards as job ${array}; the table job ${table} runs when all have ended"
