#!/usr/bin/env bash
# Reconstruct a folder of photos on a Slurm cluster: one job array, each task one shard of
# `gmsr batch`; together the tasks cover every photo exactly once.
#
#   sbatch --array=1-8 examples/slurm_batch.sh photos/ cubes/ [more gmsr batch options]
#
# Resuming: outputs appear only when complete and `gmsr batch` skips finished cubes, so running
# the same sbatch line again (or `scontrol requeue JOBID_TASK`) redoes only what is missing.
# Two minutes before the time limit Slurm signals this script (--signal below), which stops
# gmsr cleanly (the cube in progress is removed) and, when scontrol is available, requeues the
# task to finish the rest. Any --array range works (0-7 or 1-8): the shard number is counted
# from the array's first index. Without Slurm, set SLURM_ARRAY_TASK_ID, SLURM_ARRAY_TASK_MIN
# and SLURM_ARRAY_TASK_COUNT by hand to run one shard.
#
#SBATCH --job-name=gmsr-batch
#SBATCH --cpus-per-task=4
#SBATCH --mem=4G
#SBATCH --time=04:00:00
#SBATCH --output=gmsr-batch-%A_%a.log
#SBATCH --signal=B:USR1@120
#SBATCH --requeue
# On GPU nodes add e.g. `#SBATCH --gres=gpu:1`: gmsr uses a CUDA GPU when it sees one.

set -uo pipefail

if [ $# -lt 2 ]; then
    echo "usage: sbatch --array=1-N $0 INPUT_DIR OUTPUT_DIR [gmsr batch options]" >&2
    exit 2
fi
input=$1
output=$2
shift 2

task=${SLURM_ARRAY_TASK_ID:?"submit with sbatch --array=1-N (SLURM_ARRAY_TASK_ID is not set)"}
first=${SLURM_ARRAY_TASK_MIN:-1}
count=${SLURM_ARRAY_TASK_COUNT:?"SLURM_ARRAY_TASK_COUNT is not set"}
shard=$((task - first + 1))

# One process per task: let torch and the cube writer use the CPUs Slurm gave the task.
export OMP_NUM_THREADS=${SLURM_CPUS_PER_TASK:-${OMP_NUM_THREADS:-1}}

mkdir -p "$output"
echo "gmsr batch shard $shard/$count on $(hostname): $input -> $output"

gmsr batch "$input" -o "$output" --shard "$shard/$count" --quiet "$@" &
pid=$!
stopping=0
# SIGINT makes gmsr remove the cube in progress and exit (130); SIGTERM would not let it.
trap 'stopping=1; kill -INT "$pid" 2>/dev/null' USR1 TERM INT
wait "$pid"
status=$?
while kill -0 "$pid" 2>/dev/null; do  # a trapped signal ends `wait` early: wait for gmsr itself
    wait "$pid"
    status=$?
done

if [ "$stopping" = 1 ]; then
    if command -v scontrol >/dev/null 2>&1 && [ -n "${SLURM_ARRAY_JOB_ID:-}" ]; then
        echo "time is nearly up: requeueing ${SLURM_ARRAY_JOB_ID}_${task} to finish shard $shard/$count"
        scontrol requeue "${SLURM_ARRAY_JOB_ID}_${task}"
    else
        echo "stopped early: run the same command again to finish shard $shard/$count" >&2
    fi
fi
exit "$status"
