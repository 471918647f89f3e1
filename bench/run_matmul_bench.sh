#!/usr/bin/env bash
# fx's matmul against OpenBLAS sgemm (through numpy) at GPT-2's shapes, the
# same thread count, interleaved: each round runs fx's BenchmarkMatMul, then
# numpy, so both see the same load. Each side reports, per shape, the best
# mean over batches of calls of about 0.1 s (go test -benchtime 100ms
# -count 3; numpy_sgemm.py likewise), and the table keeps the best round.
# Needs Debian's python3-numpy with libopenblas0-pthread as the system BLAS.
# OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE are unset for the numpy command only.
#
#   bench/run_matmul_bench.sh [-r ROUNDS] [-k KERNELS] [THREADS...]   # default: 3 rounds, avx2 (else go), 1 2
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-/usr/bin/python3}
rounds=3
kernels=
while getopts "r:k:" opt; do
  case $opt in
    r) rounds=$OPTARG ;;
    k) kernels=$OPTARG ;;
    *) echo "usage: $0 [-r ROUNDS] [-k KERNELS] [THREADS...]" >&2; exit 2 ;;
  esac
done
shift $((OPTIND - 1))
if [ -z "$kernels" ]; then
  kernels=$(grep -qw avx2 /proc/cpuinfo && grep -qw fma /proc/cpuinfo && echo avx2 || echo go)
fi
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
go test -c -o "$dir/cpu.test" ./engine/cpu
for threads in "${@:-1 2}"; do
  for round in $(seq "$rounds"); do
    echo "== threads=$threads round=$round" >&2
    GOMAXPROCS=$threads "$dir/cpu.test" -test.run '^$' -test.bench "MatMul/kernels=$kernels/" \
      -test.benchtime 100ms -test.count 3 >>"$dir/fx.$threads.txt"
    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE $PY bench/numpy_sgemm.py --threads "$threads" \
      --seconds 0.3 >>"$dir/np.$threads.jsonl" 2>/dev/null
  done
done
$PY - "$dir" "$kernels" "${@:-1 2}" <<'EOF'
import json, re, sys
d, kernels, threads = sys.argv[1], sys.argv[2], sys.argv[3:]
threads = " ".join(threads).split()
for t in threads:
    fx = {}
    for line in open("%s/fx.%s.txt" % (d, t)):
        m = re.match(r"BenchmarkMatMul/kernels=\w+/M=(\d+)/K=(\d+)/N=(\d+)/transW=(\w+)\S*\s+\d+\s+\d+ ns/op\s+([\d.]+) GFLOP/s", line)
        if m:
            key = (int(m[1]), int(m[2]), int(m[3]), m[4] == "true")
            fx[key] = max(fx.get(key, 0), float(m[5]))
    ob = {}
    for line in open("%s/np.%s.jsonl" % (d, t)):
        for r in json.loads(line)["results"]:
            key = (r["m"], r["k"], r["n"], r["transW"])
            ob[key] = max(ob.get(key, 0), r["gflops"])
    print("\nthreads=%s, fx kernels=%s, best of each side's rounds, GFLOP/s\n" % (t, kernels))
    print("| M×K×N | fx | OpenBLAS | fx / OpenBLAS |")
    print("| --- | --- | --- | --- |")
    for key in sorted(fx, key=lambda k: (k[0], k[3], k[1], k[2])):
        m, k, n, tr = key
        name = "%d×%d×%d%s" % (m, k, n, " (wᵀ)" if tr else "")
        o = ob.get(key)
        print("| %s | %.1f | %s | %s |" % (name, fx[key], "%.1f" % o if o else "-", "%.2f" % (fx[key] / o) if o else "-"))
EOF
