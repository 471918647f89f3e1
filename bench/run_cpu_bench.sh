#!/usr/bin/env bash
# fx against PyTorch CPU on the same GPT-2-small-shaped weights, the same
# number of threads, in one run. Needs Debian's python3-torch with OpenBLAS
# as the system BLAS (apt-get install -y python3-torch libopenblas0-pthread;
# without OpenBLAS, Debian's torch falls back to the reference BLAS and is
# several times slower). OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE are unset for
# the PyTorch command only. Usage: bench/run_cpu_bench.sh [THREADS...]
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-/usr/bin/python3}
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
$PY bench/torch_cpu_forward.py --make "$dir/gpt2-small"
for threads in "${@:-1 2}"; do
  echo "== threads=$threads: fx"
  FX_BENCH_MODEL="$dir/gpt2-small" GOMAXPROCS=$threads go test -run '^$' \
    -bench 'GPT2SmallForward' -benchtime 3x ./transformer | grep -E 'Benchmark|ok'
  GOMAXPROCS=$threads go test -run '^$' -bench 'MatMul' -benchtime 3x ./engine/cpu | grep -E 'Benchmark|ok'
  echo "== threads=$threads: PyTorch"
  env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE OPENBLAS_NUM_THREADS=$threads \
    $PY bench/torch_cpu_forward.py --run "$dir/gpt2-small" --threads "$threads"
done
