#!/usr/bin/env bash
# fx's matmul against OpenBLAS sgemm (through numpy) at GPT-2's shapes, the
# same thread count, interleaved: each round runs fx's BenchmarkMatMul, then
# numpy, so both see the same load. Each side reports, per shape, the best
# mean over batches of calls of about 0.1 s (go test -benchtime 100ms
# -count 3; numpy_sgemm.py likewise), and the table keeps the best round.
# Needs Debian's python3-numpy with libopenblas0-pthread as the system BLAS
# (or any numpy: the table names the BLAS it found).
# OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE are unset for the numpy command only.
#
# -k takes a comma-separated list of kernel sets (avx2, avx512, go, and
# avx512_main4: AVX-512 with the 6×64 main tile); each gets a column. With
# -t BIN, the engine/cpu test binary BIN is used instead of building one
# (the GPU device check runs it where there is no Go). With -b DIR, each
# round also runs the BenchmarkMatMul of the fx tree in DIR (an earlier
# commit, e.g. from `git worktree add DIR COMMIT`), so that before and after
# are measured in the same run, under the same load.
#
#   bench/run_matmul_bench.sh [-r ROUNDS] [-c COUNT] [-k KERNELS] [-t BIN] [-b DIR] [THREADS...]   # default: 3 rounds, count 3, avx2 (else go), 1 2
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-/usr/bin/python3}
rounds=3
count=3
kernels=
testbin=
before=
while getopts "r:c:k:t:b:" opt; do
  case $opt in
    r) rounds=$OPTARG ;;
    c) count=$OPTARG ;;
    k) kernels=$OPTARG ;;
    t) testbin=$OPTARG ;;
    b) before=$OPTARG ;;
    *) echo "usage: $0 [-r ROUNDS] [-c COUNT] [-k KERNELS] [-t BIN] [-b DIR] [THREADS...]" >&2; exit 2 ;;
  esac
done
shift $((OPTIND - 1))
if [ -z "$kernels" ]; then
  kernels=$(grep -qw avx2 /proc/cpuinfo && grep -qw fma /proc/cpuinfo && echo avx2 || echo go)
fi
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
if [ -n "$testbin" ]; then
  cp "$testbin" "$dir/cpu.test"
else
  go test -c -o "$dir/cpu.test" ./engine/cpu
fi
if [ -n "$before" ]; then
  (cd "$before" && go test -c -o "$dir/before.test" ./engine/cpu)
fi
for threads in "${@:-1 2}"; do
  for round in $(seq "$rounds"); do
    echo "== threads=$threads round=$round" >&2
    for kn in ${kernels//,/ }; do
      GOMAXPROCS=$threads "$dir/cpu.test" -test.run '^$' -test.bench "MatMul/kernels=$kn/" \
        -test.benchtime 100ms -test.count "$count" >>"$dir/fx.$threads.txt"
    done
    if [ -n "$before" ]; then
      for kn in ${kernels//,/ }; do
        GOMAXPROCS=$threads "$dir/before.test" -test.run '^$' -test.bench "MatMul/kernels=$kn/" \
          -test.benchtime 100ms -test.count "$count" >>"$dir/before.$threads.txt"
      done
    fi
    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE $PY bench/numpy_sgemm.py --threads "$threads" \
      --seconds 0.3 >>"$dir/np.$threads.jsonl" 2>/dev/null
  done
done
$PY - "$dir" "$kernels" "${@:-1 2}" <<'EOF'
import json, re, sys
d, kernels, threads = sys.argv[1], sys.argv[2].split(","), sys.argv[3:]
threads = " ".join(threads).split()
def gobench(path):
    """Returns {kernels: {(m, k, n, transW): best GFLOP/s}}."""
    out = {}
    try:
        lines = open(path).readlines()
    except OSError:
        return out
    for line in lines:
        m = re.match(r"BenchmarkMatMul/kernels=(\w+)/M=(\d+)/K=(\d+)/N=(\d+)/transW=(\w+)\S*\s+\d+\s+\d+ ns/op\s+([\d.]+) GFLOP/s", line)
        if m:
            key = (int(m[2]), int(m[3]), int(m[4]), m[5] == "true")
            per = out.setdefault(m[1], {})
            per[key] = max(per.get(key, 0), float(m[6]))
    return out

for t in threads:
    fx = gobench("%s/fx.%s.txt" % (d, t))
    bf = gobench("%s/before.%s.txt" % (d, t))
    ob, blas = {}, set()
    for line in open("%s/np.%s.jsonl" % (d, t)):
        doc = json.loads(line)
        blas.update(doc.get("blas", []))
        for r in doc["results"]:
            key = (r["m"], r["k"], r["n"], r["transW"])
            ob[key] = max(ob.get(key, 0), r["gflops"])
    print("\nthreads=%s, best of each side's rounds, GFLOP/s; numpy's BLAS: %s\n" % (t, ", ".join(sorted(blas)) or "?"))
    ratio = lambda a, b: "%.2f" % (a / b) if a and b else "-"
    num = lambda v: "%.1f" % v if v else "-"
    cols = [("before " + k, bf[k]) for k in kernels if k in bf] + [(k, fx[k]) for k in kernels if k in fx]
    print("| M×K×N | " + " | ".join(c for c, _ in cols) + " | OpenBLAS | "
          + " | ".join("%s / OpenBLAS" % c for c, _ in cols) + " |")
    print("| --- " * (2 + 2 * len(cols)) + "|")
    keys = sorted({key for _, res in cols for key in res}, key=lambda k: (k[0], k[3], k[1], k[2]))
    for key in keys:
        m, k, n, tr = key
        name = "%d×%d×%d%s" % (m, k, n, " (wᵀ)" if tr else "")
        o = ob.get(key)
        print("| %s | %s | %s | %s |" % (name, " | ".join(num(res.get(key)) for _, res in cols), num(o),
                                        " | ".join(ratio(res.get(key), o) for _, res in cols)))
EOF
