#!/usr/bin/env bash
# Everything a session with a CUDA GPU checks, in one run (about 6-8 minutes on one H200):
#   OUT=folder bash benchmarks/gpu_run.sh
# from the repository root, on a machine with CUDA PyTorch and no package registry. Optional, in .whl/:
# wheels of dependencies that machine lacks (installed with --no-index), and mamba-ssm's sdist
# (mamba_ssm-*.tar.gz), which is then built for this GPU's architecture alone, in the background
# while the correctness checks run (3-4 minutes on 16 cores), and timed once it is built. Each step
# has its own time limit, so that one slow step cannot take the rest with it. Six files land in $OUT:
# steps.log (what ran, when, exit codes), gpu_check.log (benchmarks/gpu_check.py's tables),
# pytest.log, scan.txt (benchmarks/bench_triton_ss2d.py), train_step.txt, mamba_build.log.
# The chunked backend is checked for correctness only: its speed is not worth the minutes (a training
# step 100 times slower than triton's on an H200).
set -u
export PYTHONUNBUFFERED=1
OUT=${OUT:-/tmp/gpu_run}
mkdir -p "$OUT"
py=${PYTHON:-python3}
step() {  # step FILE SECONDS COMMAND...: run with a time limit, output appended to $OUT/FILE
    local name=$1 limit=$2
    shift 2
    echo "== $(date -u +%H:%M:%S) (limit ${limit}s) $*" | tee -a "$OUT/steps.log" "$OUT/$name"
    timeout "$limit" "$@" >>"$OUT/$name" 2>&1
    local rc=$?
    echo "   $(date -u +%H:%M:%S) exit $rc" | tee -a "$OUT/steps.log"
    return $rc
}
check="env OUT= $py benchmarks/gpu_check.py"  # its tables go to gpu_check.log only

nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader >>"$OUT/steps.log" 2>&1
if compgen -G ".whl/*.whl" >/dev/null; then
    $py -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
    export PYTHONPATH=/tmp/site
fi
step steps.log 60 $py -m pip install -q --no-index --no-deps --no-build-isolation . || exit 1

mamba_pid=
sdist=$(compgen -G ".whl/mamba_ssm-*.tar.gz" | head -n 1)
if [ -n "$sdist" ]; then
    arch=$($py -c "import torch; print(''.join(map(str, torch.cuda.get_device_capability())))")
    rm -rf /tmp/mamba && mkdir -p /tmp/mamba && tar xzf "$sdist" -C /tmp/mamba
    src=$(compgen -G "/tmp/mamba/mamba_ssm-*" | head -n 1)
    # Only this GPU's architecture: replace the gencode list just before the ABI note that follows it.
    sed -i "s/^    # HACK: The compiler flag/    cc_flag = ['-gencode', 'arch=compute_${arch},code=sm_${arch}']\n&/" "$src/setup.py"
    (cd "$src" && MAMBA_FORCE_BUILD=TRUE MAX_JOBS=12 timeout 420 \
        $py -m pip install --no-index --no-deps --no-build-isolation . >/tmp/mamba_build.log 2>&1
     echo "exit $?" >>/tmp/mamba_build.log; tail -n 20 /tmp/mamba_build.log >"$OUT/mamba_build.log") &
    mamba_pid=$!
fi

# While mamba-ssm builds: correctness (GPU tests, the Triton kernels' own tests, the whole network).
step pytest.log 90 $py -m pytest -q -p no:cacheprovider -m gpu tests
step pytest.log 90 $py -m pytest -q -p no:cacheprovider tests/test_triton_ss2d.py
step gpu_check.log 120 $check --backends triton,chunked --parts correctness
step scan.txt 60 $py benchmarks/bench_triton_ss2d.py --sizes 1024 --compose none --repeats 5 \
    --chunk 64,128,256,512,1024 --block-channels 16,32,64
step scan.txt 45 $py benchmarks/bench_triton_ss2d.py --sizes 512,2048 --compose none --repeats 10

backends=triton compose=none
if [ -n "$mamba_pid" ]; then
    wait "$mamba_pid"
    echo "   mamba-ssm build: $(tail -n 1 /tmp/mamba_build.log)" | tee -a "$OUT/steps.log"
    # selective_scan_cuda links against libtorch: torch is imported first.
    if $py -c "import torch, selective_scan_cuda, mamba_ssm.ops.selective_scan_interface" 2>>"$OUT/steps.log"; then
        backends=triton,mamba compose=mamba
        step gpu_check.log 90 $check --backends mamba --parts correctness
        step pytest.log 45 $py -m pytest -q -p no:cacheprovider -m gpu -k mamba tests
    fi
fi
# Speed once nothing else runs: the network alone, then the 6000 x 4000 photo (its writer is on the CPU).
step gpu_check.log 150 $check --backends $backends --parts speed,photo --photo-backends triton
step scan.txt 60 $py benchmarks/bench_triton_ss2d.py --sizes 128,256 --channels 62 --batch 8 --backward \
    --compose $compose
step train_step.txt 60 $py benchmarks/bench_train_step.py --device cuda --backend triton --patch 128 --batch 8 \
    --repeats 5
echo "== $(date -u +%H:%M:%S) done" | tee -a "$OUT/steps.log"
