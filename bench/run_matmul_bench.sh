#!/usr/bin/env bash
# fx's matmul against OpenBLAS sgemm (through numpy) at GPT-2's shapes, the
# same thread count, interleaved: each round runs fx's BenchmarkMatMul, then
# numpy, so both see the same load. Each side reports, per shape, the best
# mean over batches of calls of about 0.1 s (go test -benchtime 100ms
# -count 3; numpy_sgemm.py likewise), and the table keeps the best round.
# Needs Debian's python3-numpy with libopenblas0-pthread as the system BLAS.
# OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE are unset for the numpy command only.
#
# With -b DIR, each round also runs the BenchmarkMatMul of the fx tree in
# DIR (an earlier commit, e.g. from `git worktree add DIR COMMIT`), so that
# before and after are measured in the same run, under the same load.
#
#   bench/run_matmul_bench.sh [-r ROUNDS] [-k KERNELS] [-b DIR] [THREADS...]   # default: 3 rounds, avx2 (else go), 1 2
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-/usr/bin/python3}
rounds=3
kernels=
before=
while getopts "r:k:b:" opt; do
  case $opt in
    r) rounds=$OPTARG ;;
    k) kernels=$OPTARG ;;
    b) before=$OPTARG ;;
    *) echo "usage: $0 [-r ROUNDS] [-k KERNELS] [-b DIR] [THREADS...]" >&2; exit 2 ;;
  esac
done
shift $((OPTIND - 1))
if [ -z "$kernels" ]; then
  kernels=$(grep -qw avx2 /proc/cpuinfo && grep -qw fma /proc/cpuinfo && echo avx2 || echo go)
fi
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
go test -c -o "$dir/cpu.test" ./engine/cpu
if [ -n "$before" ]; then
  (cd "$before" && go test -c -o "$dir/before.test" ./engine/cpu)
fi
for threads in "${@:-1 2}"; do
  for round in $(seq "$rounds"); do
    echo "== threads=$threads round=$round" >&2
    GOMAXPROCS=$threads "$dir/cpu.test" -test.run '^$' -test.bench "MatMul/kernels=$kernels/" \
      -test.benchtime 100ms -test.count 3 >>"$dir/fx.$threads.txt"
    if [ -n "$before" ]; then
      GOMAXPROCS=$threads "$dir/before.test" -test.run '^$' -test.bench "MatMul/kernels=$kernels/" \
        -test.benchtime 100ms -test.count 3 >>"$dir/before.$threads.txt"
    fi
    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE $PY bench/numpy_sgemm.py --threads "$threads" \
      --seconds 0.3 >>"$dir/np.$threads.jsonl" 2>/dev/null
  done
done
$PY - "$dir" "$kernels" "${@:-1 2}" <<'EOF'
import json, re, sys
d, kernels, threads = sys.argv[1], sys.argv[2], sys.argv[3:]
threads = " ".join(threads).split()
def gobench(path):
    out = {}
    try:
        lines = open(path).readlines()
    except OSError:
        return out
    for line in lines:
        m = re.match(r"BenchmarkMatMul/kernels=\w+/M=(\d+)/K=(\d+)/N=(\d+)/transW=(\w+)\S*\s+\d+\s+\d+ ns/op\s+([\d.]+) GFLOP/s", line)
        if m:
            key = (int(m[1]), int(m[2]), int(m[3]), m[4] == "true")
            out[key] = max(out.get(key, 0), float(m[5]))
    return out

for t in threads:
    fx = gobench("%s/fx.%s.txt" % (d, t))
    bf = gobench("%s/before.%s.txt" % (d, t))
    ob = {}
    for line in open("%s/np.%s.jsonl" % (d, t)):
        for r in json.loads(line)["results"]:
            key = (r["m"], r["k"], r["n"], r["transW"])
            ob[key] = max(ob.get(key, 0), r["gflops"])
    print("\nthreads=%s, fx kernels=%s, best of each side's rounds, GFLOP/s\n" % (t, kernels))
    ratio = lambda a, b: "%.2f" % (a / b) if a and b else "-"
    num = lambda v: "%.1f" % v if v else "-"
    if bf:
        print("| M×K×N | fx before | fx | OpenBLAS | before / OpenBLAS | fx / OpenBLAS |")
        print("| --- | --- | --- | --- | --- | --- |")
    else:
        print("| M×K×N | fx | OpenBLAS | fx / OpenBLAS |")
        print("| --- | --- | --- | --- |")
    for key in sorted(fx, key=lambda k: (k[0], k[3], k[1], k[2])):
        m, k, n, tr = key
        name = "%d×%d×%d%s" % (m, k, n, " (wᵀ)" if tr else "")
        o, b = ob.get(key), bf.get(key)
        if bf:
            print("| %s | %s | %.1f | %s | %s | %s |" % (name, num(b), fx[key], num(o), ratio(b, o), ratio(fx[key], o)))
        else:
            print("| %s | %.1f | %s | %s |" % (name, fx[key], num(o), ratio(fx[key], o)))
EOF
