# PyTorch CPU anchor for fx's GPT-2-small-shaped forward and matmul.
#
#   /usr/bin/python3 bench/torch_cpu_forward.py --make DIR      # write random GPT-2-small weights (HF layout)
#   /usr/bin/python3 bench/torch_cpu_forward.py --run DIR --threads N
#
# bench/run_cpu_bench.sh calls both around `go test -bench`, so fx and PyTorch
# run the same weights with the same number of threads in one run. The forward
# is testdata/gen/ref_models.py's line-by-line port of HF's GPT2LMHeadModel.
import argparse
import json
import os
import sys
import time

import torch

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "testdata", "gen"))
from ref_models import hf_gpt2_forward  # noqa: E402
from st_io import read_safetensors, write_safetensors  # noqa: E402

CONFIG = {
    "model_type": "gpt2", "architectures": ["GPT2LMHeadModel"], "vocab_size": 50257,
    "n_positions": 1024, "n_ctx": 1024, "n_embd": 768, "n_layer": 12, "n_head": 12, "n_inner": None,
    "activation_function": "gelu_new", "layer_norm_epsilon": 1e-5,
}


def make(dir):
    g = torch.Generator().manual_seed(1)
    d, v, inner, L = 768, 50257, 3072, 12
    proj_std = 0.02 / (2 * L) ** 0.5

    def n(std, *shape):
        return torch.randn(*shape, generator=g) * std

    ts = [("wte.weight", n(0.02, v, d)), ("wpe.weight", n(0.01, 1024, d)),
          ("ln_f.weight", torch.ones(d)), ("ln_f.bias", torch.zeros(d))]
    for i in range(L):
        p = "h.%d." % i
        ts += [(p + "ln_1.weight", torch.ones(d)), (p + "ln_1.bias", torch.zeros(d)),
               (p + "attn.c_attn.weight", n(0.02, d, 3 * d)), (p + "attn.c_attn.bias", torch.zeros(3 * d)),
               (p + "attn.c_proj.weight", n(proj_std, d, d)), (p + "attn.c_proj.bias", torch.zeros(d)),
               (p + "ln_2.weight", torch.ones(d)), (p + "ln_2.bias", torch.zeros(d)),
               (p + "mlp.c_fc.weight", n(0.02, d, inner)), (p + "mlp.c_fc.bias", torch.zeros(inner)),
               (p + "mlp.c_proj.weight", n(proj_std, inner, d)), (p + "mlp.c_proj.bias", torch.zeros(d))]
    os.makedirs(dir, exist_ok=True)
    write_safetensors(os.path.join(dir, "model.safetensors"), [(k, t, "F32") for k, t in ts])
    with open(os.path.join(dir, "config.json"), "w") as f:
        json.dump(CONFIG, f, indent=2)


def load(dir):
    _, tensors = read_safetensors(os.path.join(dir, "model.safetensors"))
    return {k: torch.from_numpy(a.copy()) for k, (_, _, a) in tensors.items()}


def timeit(fn, min_seconds=3.0):
    fn()  # warm up
    n, start = 0, time.perf_counter()
    while True:
        fn()
        n += 1
        el = time.perf_counter() - start
        if el >= min_seconds and n >= 3:
            return el / n


def run(dir, threads):
    torch.set_num_threads(threads)
    sd = load(dir)
    rows = []
    with torch.no_grad():
        for T in (1, 128):
            ids = torch.tensor([[(i * 7919) % 50257 for i in range(T)]])
            sec = timeit(lambda: hf_gpt2_forward(sd, CONFIG, ids))
            rows.append({"bench": "GPT2SmallForward/tokens=%d" % T, "sec_per_op": sec, "tokens_per_s": T / sec})
        for M in (1, 128):
            for K, N, trans in ((768, 2304, False), (768, 768, False), (768, 3072, False), (3072, 768, False), (768, 50257, True)):
                x = torch.randn(M, K)
                w = torch.randn(N, K) if trans else torch.randn(K, N)
                fn = (lambda: torch.matmul(x, w.t())) if trans else (lambda: torch.matmul(x, w))
                sec = timeit(fn, 1.0)
                rows.append({"bench": "MatMul/M=%d,K=%d,N=%d,transW=%s" % (M, K, N, trans), "sec_per_op": sec,
                             "gflops": 2 * M * K * N / sec / 1e9})
    print(json.dumps({"torch": torch.__version__, "threads": threads, "results": rows}, indent=1))


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--make")
    ap.add_argument("--run")
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    if a.make:
        make(a.make)
    if a.run:
        run(a.run, a.threads)
