#!/usr/bin/env bash
# On a machine with an NVIDIA GPU: install memjax with JAX's CUDA wheels (the `cuda` extra),
# then run the steady-state, whole-network transient and hardware-in-the-loop step
# benchmarks, each against its digital baseline measured in the same run on the same device,
# and print their ratios. Without a GPU it runs on the CPU and says so.
#
#   bash benchmarks/device_check.sh [--quick] [--no-install]
#
# --quick: small sizes, to check that everything runs on the device (a few minutes on a CPU);
#          without it, the sizes benchmarks/README.md records.
# --no-install: use the memjax already installed.
# Every benchmark's output is also written to $OUT/device_check/ when $OUT is set.
set -euo pipefail
cd "$(dirname "$0")/.."

quick=0
install=1
for argument in "$@"; do
    case "$argument" in
        --quick) quick=1 ;;
        --no-install) install=0 ;;
        *) echo "device_check.sh: unknown option $argument (expected --quick, --no-install)" >&2; exit 2 ;;
    esac
done

if [ "$install" = 1 ]; then
    python3 -m pip install -q -e ".[cuda]"
fi
python3 - <<'EOF'
import jax
backend = jax.default_backend()
print(f"jax {jax.__version__}, backend {backend}, devices {jax.devices()}")
if backend != "gpu":
    print("no GPU visible to JAX: the ratios below are this machine's CPU")
EOF

logs="${OUT:-}"
if [ -n "$logs" ]; then
    logs="$logs/device_check"
    mkdir -p "$logs"
fi

run() {  # name, then the command
    local name="$1"
    shift
    echo
    echo "== $name: $*"
    if [ -n "$logs" ]; then
        "$@" 2>&1 | tee "$logs/$name.txt"
    else
        "$@"
    fi
}

if [ "$quick" = 1 ]; then
    run steady_state python3 benchmarks/bench_memristive.py --models random --inputs random \
        --widths 0.5 --batches 32 --rounds 3
    run transient python3 benchmarks/bench_transient.py --width 0.5 --stepping per_stage
    run finetune_step python3 benchmarks/bench_finetune.py --width 0.5 --batch 16 --repeats 2
else
    run steady_state python3 benchmarks/bench_memristive.py --models shipped random --inputs random
    run transient_per_neuron python3 benchmarks/bench_transient.py --batches 1 8
    run transient_per_stage python3 benchmarks/bench_transient.py --batches 1 8 --stepping per_stage
    run finetune_step python3 benchmarks/bench_finetune.py
fi
