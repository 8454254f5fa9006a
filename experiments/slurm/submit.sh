#!/usr/bin/env bash
# Runs a table across N Slurm array tasks (one shard each, one GPU each) and renders it when all
# have finished:  experiments/slurm/submit.sh experiments/table1_unet.yaml 6
# Environment: DSMA (the binary, default `dsma` on PATH), OUT (default runs/<file name>),
# BACKEND (cuda or cpu, default cuda), EXTRA_OVERRIDES (passed to every shard), and any sbatch
# option in SBATCH_* variables (e.g. SBATCH_PARTITION).
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
array=$(sbatch --parsable --array="0-$((shards - 1))" --export=ALL "$here/shard.sbatch")
array=${array%%;*}
table=$(sbatch --parsable --dependency="afterok:${array}" --export=ALL "$here/table.sbatch")
echo "submitted ${shards} shards as job ${array}; the table job ${table} runs when all succeed"
