#!/usr/bin/env bash
# Every hardware-GPU figure issue 6 asks for, in one run on a lent GPU machine: kiln's
# bench suite in f32 and f16, the parity table in both precisions, and PyTorch measuring
# the same work (scripts/torch_bench_reference.py), one file each under $OUT, so that a
# session with a few minutes of device time spends them in one call (BENCHMARKS.md, "Not
# measured yet", says how to prepare the carried loader packages and binary).
#
# On the device machine, from the repository root, with .gl and .kiln-bin carried:
#   bash scripts/device_figures.sh
# Here, as a smoke test on a software adapter (small shapes, no PyTorch):
#   QUICK=1 OUT=/tmp/figures KILN=target/release/kiln bash scripts/device_figures.sh
#
# The whole run stops within DEADLINE seconds (default 480, inside the device tool's
# 600-second command limit) and each step within LIMIT seconds (default 90) or what is
# left of the deadline, so that a step that hangs still leaves the others' files; the
# bench suite runs group by group for the same reason (kiln prints its table at the
# end). Steps append to six files (the device tool brings back at most eight):
# summary.txt (one line per step), gpu.txt, parity.txt, bench.txt, bench_f16.txt and
# torch.txt. The exit status is the number of steps that failed.
set -u
out=${OUT:?OUT must name the folder for the results}
kiln=${KILN:-.kiln-bin/kiln}
limit=${LIMIT:-90}
deadline=$((SECONDS + ${DEADLINE:-480}))
quick=""
if [ -n "${QUICK:-}" ]; then quick=--quick; fi
mkdir -p "$out"
summary=$out/summary.txt
: >"$summary"
failed=0

# report LINE: to the terminal and to summary.txt.
report() {
    echo "$1" | tee -a "$summary"
}

if [ ! -x "$kiln" ]; then
    report "no kiln binary at $kiln (KILN= names another)"
    exit 1
fi

# The device machine has NVIDIA's Vulkan driver but not the loader: unpack the carried
# packages (the device tool's README), and point the loader at the driver.
if [ -d .gl ]; then
    for f in .gl/*.deb; do
        if [ -f "$f" ]; then dpkg -x "$f" /; fi
    done
    ldconfig
fi
icd=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
if [ -f "$icd" ]; then export VK_DRIVER_FILES=$icd; fi
export XDG_RUNTIME_DIR=${XDG_RUNTIME_DIR:-/tmp/xdg-kiln}
mkdir -p "$XDG_RUNTIME_DIR"

# step FILE NAME COMMAND...: runs COMMAND within the limits, appending its output to
# $out/FILE.txt under a header naming the step.
step() {
    local file=$out/$1.txt name=$2
    shift 2
    local left=$((deadline - SECONDS))
    if [ "$left" -lt 10 ]; then
        report "$name: skipped, the deadline has passed"
        failed=$((failed + 1))
        return
    fi
    local start=$SECONDS
    echo "== $name: $*" >>"$file"
    timeout -k 5 "$((left < limit ? left : limit))" "$@" >>"$file" 2>&1
    local status=$?
    report "$name: exit $status in $((SECONDS - start)) s ($*)"
    if [ "$status" -ne 0 ]; then failed=$((failed + 1)); fi
}

if command -v nvidia-smi >/dev/null; then
    step gpu gpu nvidia-smi --query-gpu=name,driver_version,clocks.max.sm,clocks.max.mem --format=csv
fi
# The adapter first: everything after it is worth reading only on the hardware GPU.
step parity parity "$kiln" parity
report "adapter: $(sed -n 2p "$out/parity.txt")"
for group in matmul optim step conv softmax norm; do
    step bench "bench $group" "$kiln" bench "$group" --backend gpu $quick
done
step parity "parity f16" "$kiln" parity --precision f16
for group in matmul step conv; do
    step bench_f16 "bench f16 $group" "$kiln" bench "$group" --backend gpu $quick --precision f16
done
if [ -z "$quick" ]; then
    step torch torch python3 scripts/torch_bench_reference.py
fi
exit "$failed"
