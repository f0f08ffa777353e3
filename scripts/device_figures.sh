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
# Each step has its own time limit (LIMIT seconds, default 150), so one that hangs still
# leaves the others' files to come back; the script's exit status is the number of
# steps that failed.
set -u
out=${OUT:?OUT must name the folder for the results}
kiln=${KILN:-.kiln-bin/kiln}
limit=${LIMIT:-150}
quick=()
if [ -n "${QUICK:-}" ]; then quick=(--quick); fi
mkdir -p "$out"

# The device machine has NVIDIA's Vulkan driver but not the loader: unpack the carried
# packages (the device tool's README), and point the loader at the driver.
if [ -d .gl ]; then
    for f in .gl/*.deb; do dpkg -x "$f" /; done
    ldconfig
fi
icd=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
if [ -f "$icd" ]; then export VK_DRIVER_FILES=$icd; fi
export XDG_RUNTIME_DIR=${XDG_RUNTIME_DIR:-/tmp/xdg-kiln}
mkdir -p "$XDG_RUNTIME_DIR"

failed=0
# step NAME COMMAND...: runs COMMAND into $out/NAME.txt under the time limit.
step() {
    local name=$1
    shift
    local start=$SECONDS
    timeout "$limit" "$@" >"$out/$name.txt" 2>&1
    local status=$?
    echo "$name: exit $status in $((SECONDS - start)) s ($*)"
    if [ "$status" -ne 0 ]; then failed=$((failed + 1)); fi
}

if command -v nvidia-smi >/dev/null; then
    step gpu nvidia-smi --query-gpu=name,driver_version,clocks.max.sm,clocks.max.mem --format=csv
fi
step bench "$kiln" bench all --backend gpu "${quick[@]}"
step bench_f16 bash -c "for w in matmul conv step; do '$kiln' bench \$w --backend gpu ${quick[*]} --precision f16 || exit; done"
step parity "$kiln" parity
step parity_f16 "$kiln" parity --precision f16
if [ -z "${QUICK:-}" ]; then
    step torch python3 scripts/torch_bench_reference.py
fi
exit "$failed"
