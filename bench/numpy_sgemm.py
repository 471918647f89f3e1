# OpenBLAS sgemm through numpy: the matmul anchor of the [cpu-speed] issue.
#
#   env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE /usr/bin/python3 bench/numpy_sgemm.py --threads N
#
# Times x·w (w [K, N]) or x·wᵀ (w [N, K], transW) in float32 at GPT-2's shapes
# and prints one JSON object: GFLOP/s per shape, the best of several
# batches of calls of about 0.1 s each (as go test -bench -count N gives).
# bench/run_matmul_bench.sh runs it beside fx's BenchmarkMatMul, interleaved.
# Debian's python3-numpy calls the system BLAS (libblas.so.3), which is
# OpenBLAS when libopenblas0-pthread is installed; the script says which.
import argparse
import json
import os
import sys
import time

SHAPES = [(768, 2304, False), (768, 768, False), (768, 3072, False), (3072, 768, False), (768, 50257, True)]
ROWS = [1, 8, 128, 512]


def blas_library():
    """Returns the BLAS shared object mapped into this process."""
    try:
        with open("/proc/self/maps") as f:
            libs = {line.split()[-1] for line in f if "blas" in line}
        return sorted(libs)
    except OSError:
        return []


def gflops(fn, flops, min_seconds, batch_seconds=0.1):
    """Returns the best GFLOP/s over batches of calls lasting about
    batch_seconds each: the statistic of go test -bench -count N."""
    fn()  # warm up
    t0 = time.perf_counter()
    fn()
    reps = max(1, int(batch_seconds / max(time.perf_counter() - t0, 1e-9)))
    best, batches, start = 0.0, 0, time.perf_counter()
    while True:
        t0 = time.perf_counter()
        for _ in range(reps):
            fn()
        best = max(best, flops * reps / (time.perf_counter() - t0) / 1e9)
        batches += 1
        if time.perf_counter() - start >= min_seconds and batches >= 3:
            return best


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seconds", type=float, default=0.5, help="minimum time per shape")
    ap.add_argument("--rows", default=",".join(map(str, ROWS)), help="comma-separated M values")
    a = ap.parse_args()
    os.environ["OPENBLAS_NUM_THREADS"] = str(a.threads)
    os.environ["OMP_NUM_THREADS"] = str(a.threads)
    import numpy as np  # after the thread count is set

    rng = np.random.default_rng(1)
    rows = []
    shapes = [(m, k, n, t) for m in map(int, a.rows.split(",")) for k, n, t in SHAPES]
    shapes.append((1024, 768, 3072, False))  # the reference point
    for m, k, n, trans in shapes:
        x = rng.standard_normal((m, k), dtype=np.float32)
        w = rng.standard_normal((n, k) if trans else (k, n), dtype=np.float32)
        out = np.empty((m, n), dtype=np.float32)
        wt = w.T  # a view: numpy passes the transpose flag to sgemm
        fn = (lambda: np.matmul(x, wt, out=out)) if trans else (lambda: np.matmul(x, w, out=out))
        g = gflops(fn, 2.0 * m * k * n, a.seconds)
        rows.append({"m": m, "k": k, "n": n, "transW": trans, "gflops": round(g, 2)})
        print("M=%d K=%d N=%d transW=%s %.1f GFLOP/s" % (m, k, n, trans, g), file=sys.stderr)
    print(json.dumps({"numpy": np.__version__, "blas": blas_library(), "threads": a.threads, "results": rows}))


if __name__ == "__main__":
    main()
