#!/usr/bin/env bash
# Everything a session with a CUDA GPU checks, in one run (about 6-8 minutes on one H200):
#   OUT=folder bash benchmarks/gpu_run.sh
# from the repository root, on a machine with CUDA PyTorch and no package registry. Optional, in .whl/:
# wheels of dependencies that machine lacks (installed with --no-index), and mamba-ssm's sdist
# (mamba_ssm-*.tar.gz), which is then built for this GPU's architecture alone, in the background
# after gpu_check (so that its CPU load does not touch that table), and checked at the end. Each step has its own time limit; logs and
# tables land in $OUT: steps.log (what ran, when, exit codes), gpu_check.md (benchmarks/gpu_check.py),
# pytest_*.log, scan_*.txt (benchmarks/bench_triton_ss2d.py), train_step.txt, mamba_*.
set -u
export PYTHONUNBUFFERED=1
OUT=${OUT:-/tmp/gpu_run}
mkdir -p "$OUT"
py=${PYTHON:-python3}
step() {  # step NAME SECONDS COMMAND...: run with a time limit, output to $OUT/NAME, exit code to steps.log
    local name=$1 limit=$2
    shift 2
    echo "== $(date -u +%H:%M:%S) $name (limit ${limit}s): $*" | tee -a "$OUT/steps.log"
    timeout "$limit" "$@" >"$OUT/$name" 2>&1
    echo "   $(date -u +%H:%M:%S) $name: exit $?" | tee -a "$OUT/steps.log"
    tail -n 40 "$OUT/$name"
}

nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader >>"$OUT/steps.log" 2>&1
if compgen -G ".whl/*.whl" >/dev/null; then
    $py -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
    export PYTHONPATH=/tmp/site
fi
step install.log 60 $py -m pip install --no-index --no-deps --no-build-isolation . || exit 1

step gpu_check.log 200 $py benchmarks/gpu_check.py --backends triton,chunked

mamba_pid=
sdist=$(compgen -G ".whl/mamba_ssm-*.tar.gz" | head -n 1)
if [ -n "$sdist" ]; then
    arch=$($py -c "import torch; print(''.join(map(str, torch.cuda.get_device_capability())))")
    rm -rf /tmp/mamba && mkdir -p /tmp/mamba && tar xzf "$sdist" -C /tmp/mamba
    src=$(compgen -G "/tmp/mamba/mamba_ssm-*" | head -n 1)
    # Only this GPU's architecture: replace the gencode list just before the ABI note that follows it.
    sed -i "s/^    # HACK: The compiler flag/    cc_flag = ['-gencode', 'arch=compute_${arch},code=sm_${arch}']\n&/" "$src/setup.py"
    (cd "$src" && MAMBA_FORCE_BUILD=TRUE MAX_JOBS=8 timeout 420 nice -n 10 \
        $py -m pip install --no-index --no-deps --no-build-isolation . >/tmp/mamba_build.log 2>&1
     echo "exit $?" >>/tmp/mamba_build.log; tail -n 60 /tmp/mamba_build.log >"$OUT/mamba_build.log") &
    mamba_pid=$!
fi

step pytest_gpu.log 90 $py -m pytest -q -p no:cacheprovider -m gpu tests
step pytest_triton.log 90 $py -m pytest -q -p no:cacheprovider tests/test_triton_ss2d.py
step scan_forward.txt 45 $py benchmarks/bench_triton_ss2d.py --sizes 256,1024,2048 --channels 62 --batch 1
step scan_sweep.txt 60 $py benchmarks/bench_triton_ss2d.py --sizes 1024 --channels 62 --batch 1 --repeats 5 \
    --chunk 32,64,128,256,512 --block-channels 16,32,64
step scan_backward.txt 45 $py benchmarks/bench_triton_ss2d.py --sizes 128,256 --channels 62 --batch 8 --backward
step train_step.txt 60 bash -c "for b in triton chunked; do $py benchmarks/bench_train_step.py --device cuda \
    --backend \$b --patch 128 --batch 8 --repeats 5; done"

if [ -n "$mamba_pid" ]; then
    wait "$mamba_pid"
    echo "   mamba-ssm build: $(tail -n 1 /tmp/mamba_build.log)" | tee -a "$OUT/steps.log"
    if $py -c "import selective_scan_cuda, mamba_ssm.ops.selective_scan_interface" 2>>"$OUT/steps.log"; then
        step mamba_check.log 120 $py benchmarks/gpu_check.py --backends mamba --photo-backends none \
            --name gpu_check_mamba.md
        step pytest_mamba.log 45 $py -m pytest -q -p no:cacheprovider -m gpu -k mamba tests
    fi
fi
echo "== $(date -u +%H:%M:%S) done" | tee -a "$OUT/steps.log"
