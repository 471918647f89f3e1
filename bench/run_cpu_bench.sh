#!/usr/bin/env bash
# fx against PyTorch CPU on the same GPT-2-small-shaped weights, the same
# number of threads, in one run: a full forward of 1 and of 128 tokens
# (every position's logits), the prefill of a 128-token prompt and one decode
# step through the KV cache after it, and the peak RSS. Rounds alternate fx
# (bench/cpubench) and PyTorch (bench/torch_cpu_forward.py) so both see the
# same load; the table keeps each side's best round and the ratio.
#
# Needs Debian's python3-torch with OpenBLAS as the system BLAS (apt-get
# install -y python3-torch libopenblas0-pthread; without OpenBLAS, Debian's
# torch falls back to the reference BLAS and is several times slower).
# OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE are unset for the PyTorch command
# only. The matmul anchor (OpenBLAS sgemm via numpy) is
# bench/run_matmul_bench.sh.
#
#   bench/run_cpu_bench.sh [-r ROUNDS] [-k KERNELS] [-m MODEL_DIR] [THREADS...]   # default: 3 rounds, auto, 1 2
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-/usr/bin/python3}
rounds=3
kernels=auto
model=
while getopts "r:k:m:" opt; do
  case $opt in
    r) rounds=$OPTARG ;;
    k) kernels=$OPTARG ;;
    m) model=$OPTARG ;;
    *) echo "usage: $0 [-r ROUNDS] [-k KERNELS] [-m MODEL_DIR] [THREADS...]" >&2; exit 2 ;;
  esac
done
shift $((OPTIND - 1))
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
if [ -z "$model" ]; then
  model="$dir/gpt2-small"
  $PY bench/torch_cpu_forward.py --make "$model"
fi
go build -o "$dir/cpubench" ./bench/cpubench
for threads in "${@:-1 2}"; do
  for round in $(seq "$rounds"); do
    echo "== threads=$threads round=$round" >&2
    "$dir/cpubench" -model "$model" -threads "$threads" -kernels "$kernels" -rounds 1 >>"$dir/fx.$threads.json"
    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE OPENBLAS_NUM_THREADS="$threads" \
      $PY bench/torch_cpu_forward.py --run "$model" --threads "$threads" --no-matmul --rounds 1 >>"$dir/torch.$threads.json"
  done
done
$PY - "$dir" "${@:-1 2}" <<'EOF'
import json, sys
d, threads = sys.argv[1], " ".join(sys.argv[2:]).split()

def docs(path):
    text, dec, out, i = open(path).read(), json.JSONDecoder(), [], 0
    while i < len(text):
        if text[i].isspace():
            i += 1
            continue
        obj, i = dec.raw_decode(text, i)
        out.append(obj)
    return out

for t in threads:
    fx, pt = docs("%s/fx.%s.json" % (d, t)), docs("%s/torch.%s.json" % (d, t))
    def best(runs):
        b = {}
        for r in runs:
            for row in r["results"]:
                b[row["bench"]] = min(b.get(row["bench"], float("inf")), row["sec_per_op"])
        return b
    bf, bp = best(fx), best(pt)
    print("\nthreads=%s, fx kernels=%s, best of %d rounds each, ms per op (tokens/s)\n" % (t, fx[0]["kernels"], len(fx)))
    print("| benchmark | fx | PyTorch | fx time / PyTorch time |")
    print("| --- | --- | --- | --- |")
    for name in bf:
        f, p = bf[name], bp.get(name)
        tok = lambda s: ("" if "DecodeStep" in name else " (%.0f tok/s)" % (int(name.split("=")[1]) / s))
        print("| %s | %.1f%s | %s | %s |" % (name, f * 1e3, tok(f), "%.1f%s" % (p * 1e3, tok(p)) if p else "-", "%.2f" % (f / p) if p else "-"))
    print("| peak RSS, MiB (weights %.0f MiB) | %.0f | %.0f | %.2f |" % (
        fx[0]["weights_mib"], max(r["peak_rss_mib"] for r in fx), max(r["peak_rss_mib"] for r in pt),
        max(r["peak_rss_mib"] for r in fx) / max(r["peak_rss_mib"] for r in pt)))
EOF
