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
# With -b DIR, each round also runs the cpubench of the fx tree in DIR (an
# earlier commit, e.g. from `git worktree add DIR COMMIT`), so that before
# and after are measured in the same run, under the same load.
#
#   bench/run_cpu_bench.sh [-r ROUNDS] [-k KERNELS] [-m MODEL_DIR] [-b DIR] [THREADS...]   # default: 3 rounds, auto, 1 2
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-/usr/bin/python3}
rounds=3
kernels=auto
model=
before=
while getopts "r:k:m:b:" opt; do
  case $opt in
    r) rounds=$OPTARG ;;
    k) kernels=$OPTARG ;;
    m) model=$OPTARG ;;
    b) before=$OPTARG ;;
    *) echo "usage: $0 [-r ROUNDS] [-k KERNELS] [-m MODEL_DIR] [-b DIR] [THREADS...]" >&2; exit 2 ;;
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
if [ -n "$before" ]; then
  (cd "$before" && go build -o "$dir/before" ./bench/cpubench)
fi
for threads in "${@:-1 2}"; do
  for round in $(seq "$rounds"); do
    echo "== threads=$threads round=$round" >&2
    "$dir/cpubench" -model "$model" -threads "$threads" -kernels "$kernels" -rounds 1 >>"$dir/fx.$threads.json"
    if [ -n "$before" ]; then
      "$dir/before" -model "$model" -threads "$threads" -kernels "$kernels" -rounds 1 >>"$dir/before.$threads.json"
    fi
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
    try:
        old = docs("%s/before.%s.json" % (d, t))
    except OSError:
        old = []
    def best(runs):
        b = {}
        for r in runs:
            for row in r["results"]:
                b[row["bench"]] = min(b.get(row["bench"], float("inf")), row["sec_per_op"])
        return b
    bf, bp, bo = best(fx), best(pt), best(old)
    print("\nthreads=%s, fx kernels=%s, best of %d rounds each, ms per op (tokens/s)\n" % (t, fx[0]["kernels"], len(fx)))
    ratio = lambda a, b: "%.2f" % (a / b) if a and b else "-"
    if old:
        print("| benchmark | fx before | fx | PyTorch | before / PyTorch | fx / PyTorch |")
        print("| --- | --- | --- | --- | --- | --- |")
    else:
        print("| benchmark | fx | PyTorch | fx time / PyTorch time |")
        print("| --- | --- | --- | --- |")
    for name in bf:
        f, p, o = bf[name], bp.get(name), bo.get(name)
        tok = lambda s: ("" if "DecodeStep" in name else " (%.0f tok/s)" % (int(name.split("=")[1]) / s))
        ms = lambda s: "%.1f%s" % (s * 1e3, tok(s)) if s else "-"
        if old:
            print("| %s | %s | %s | %s | %s | %s |" % (name, ms(o), ms(f), ms(p), ratio(o, p), ratio(f, p)))
        else:
            print("| %s | %s | %s | %s |" % (name, ms(f), ms(p), ratio(f, p)))
    rss = lambda runs: max(r["peak_rss_mib"] for r in runs)
    print("\npeak RSS, MiB (weights %.0f MiB): fx %.0f (%.2f× the weights)%s, PyTorch %.0f" % (
        fx[0]["weights_mib"], rss(fx), rss(fx) / fx[0]["weights_mib"],
        ", fx before %.0f" % rss(old) if old else "", rss(pt)))
EOF
