# PyTorch CPU anchor for fx's GPT-2-small-shaped forward and matmul.
#
#   /usr/bin/python3 bench/torch_cpu_forward.py --make DIR      # write random GPT-2-small weights (HF layout)
#   /usr/bin/python3 bench/torch_cpu_forward.py --run DIR --threads N [--no-matmul]
#
# bench/run_cpu_bench.sh calls both beside bench/cpubench, so fx and PyTorch
# run the same weights with the same number of threads in one run. The full
# forward is testdata/gen/ref_models.py's line-by-line port of HF's
# GPT2LMHeadModel; the decode step is the same model with HF's KV cache
# (layer_past concatenated to each step's keys and values), after a prompt.
# Each time is the best of --rounds rounds, each the mean of enough calls to
# last --seconds, as bench/cpubench measures fx.
import argparse
import json
import math
import os
import sys
import time

import torch
import torch.nn.functional as F

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


def timeit(fn, min_seconds=1.0, rounds=3):
    """Returns the best over rounds of the mean time per call, each round
    lasting at least min_seconds, after one warm-up call."""
    fn()  # warm up
    best = None
    for _ in range(rounds):
        n, start = 0, time.perf_counter()
        while n == 0 or time.perf_counter() - start < min_seconds:
            fn()
            n += 1
        sec = (time.perf_counter() - start) / n
        best = sec if best is None else min(best, sec)
    return best


def gpt2_kv(sd, cfg, ids, past):
    """GPT2LMHeadModel forward of ids [B, T] after the cached positions in
    past (a list of (key, value) per layer, [B, H, L, Dh], or None), as HF
    runs generation: returns the last position's logits and the new cache."""
    D, H, L = cfg["n_embd"], cfg["n_head"], cfg["n_layer"]
    Dh = D // H
    eps = cfg["layer_norm_epsilon"]
    B, T = ids.shape
    offset = 0 if past is None else past[0][0].size(-2)
    pos = torch.arange(offset, offset + T, dtype=torch.long).unsqueeze(0)
    x = F.embedding(ids, sd["wte.weight"]) + F.embedding(pos, sd["wpe.weight"])
    presents = []
    for i in range(L):
        p = "h.%d." % i
        h = F.layer_norm(x, (D,), sd[p + "ln_1.weight"], sd[p + "ln_1.bias"], eps)
        qkv = torch.addmm(sd[p + "attn.c_attn.bias"], h.view(-1, D), sd[p + "attn.c_attn.weight"]).view(B, T, 3 * D)
        q, k, v = (t.view(B, T, H, Dh).permute(0, 2, 1, 3) for t in qkv.split(D, dim=2))
        if past is not None:
            k = torch.cat((past[i][0], k), dim=-2)
            v = torch.cat((past[i][1], v), dim=-2)
        presents.append((k, v))
        w = torch.matmul(q, k.transpose(-1, -2)) / (Dh ** 0.5)
        Lk = k.size(-2)
        causal = torch.ones((T, Lk), dtype=torch.bool).tril(diagonal=Lk - T)
        w = torch.where(causal, w, torch.full([], torch.finfo(w.dtype).min, dtype=w.dtype))
        a = torch.matmul(F.softmax(w, dim=-1), v).permute(0, 2, 1, 3).reshape(B, T, D)
        x = x + torch.addmm(sd[p + "attn.c_proj.bias"], a.view(-1, D), sd[p + "attn.c_proj.weight"]).view(B, T, D)
        h = F.layer_norm(x, (D,), sd[p + "ln_2.weight"], sd[p + "ln_2.bias"], eps)
        h = torch.addmm(sd[p + "mlp.c_fc.bias"], h.view(-1, D), sd[p + "mlp.c_fc.weight"])
        h = 0.5 * h * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (h + 0.044715 * torch.pow(h, 3.0))))
        x = x + torch.addmm(sd[p + "mlp.c_proj.bias"], h, sd[p + "mlp.c_proj.weight"]).view(B, T, D)
    x = F.layer_norm(x[:, -1:], (D,), sd["ln_f.weight"], sd["ln_f.bias"], eps)
    return F.linear(x, sd["wte.weight"]), presents


def peak_rss_mib():
    import resource
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def run(dir, threads, matmul=True, rounds=3, seconds=1.0, tokens=128, steps=16):
    torch.set_num_threads(threads)
    sd = load(dir)
    rows = []
    with torch.no_grad():
        prompt = torch.tensor([[(i * 7919) % 50257 for i in range(tokens)]])
        hf_gpt2_forward(sd, CONFIG, prompt)
        rss = peak_rss_mib()  # the weights (copied out of the file) and one prompt forward
        for T in (1, tokens):
            ids = prompt[:, :T]
            sec = timeit(lambda: hf_gpt2_forward(sd, CONFIG, ids), seconds, rounds)
            rows.append({"bench": "GPT2SmallForward/tokens=%d" % T, "sec_per_op": sec, "tokens_per_s": T / sec})

        def generate(new_tokens):
            logits, past = gpt2_kv(sd, CONFIG, prompt, None)
            for _ in range(new_tokens - 1):
                nxt = logits[:, -1].argmax(-1, keepdim=True)
                logits, past = gpt2_kv(sd, CONFIG, nxt, past)

        one = timeit(lambda: generate(1), seconds, rounds)
        many = timeit(lambda: generate(1 + steps), seconds, rounds)
        step = (many - one) / steps
        rows.append({"bench": "GPT2SmallPrefill/tokens=%d" % tokens, "sec_per_op": one, "tokens_per_s": tokens / one})
        rows.append({"bench": "GPT2SmallDecodeStep/cache=%d" % tokens, "sec_per_op": step, "tokens_per_s": 1 / step})
        if matmul:
            for M in (1, 128):
                for K, N, trans in ((768, 2304, False), (768, 768, False), (768, 3072, False), (3072, 768, False), (768, 50257, True)):
                    x = torch.randn(M, K)
                    w = torch.randn(N, K) if trans else torch.randn(K, N)
                    fn = (lambda: torch.matmul(x, w.t())) if trans else (lambda: torch.matmul(x, w))
                    sec = timeit(fn, 0.3, rounds)
                    rows.append({"bench": "MatMul/M=%d,K=%d,N=%d,transW=%s" % (M, K, N, trans), "sec_per_op": sec,
                                 "gflops": 2 * M * K * N / sec / 1e9})
    weights = os.path.getsize(os.path.join(dir, "model.safetensors")) / 2**20
    print(json.dumps({"torch": torch.__version__, "threads": threads, "results": rows,
                      "peak_rss_mib": rss, "weights_mib": weights}, indent=1))


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--make")
    ap.add_argument("--run")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=1.0)
    ap.add_argument("--no-matmul", action="store_true", help="skip the matmul timings")
    a = ap.parse_args()
    if a.make:
        make(a.make)
    if a.run:
        run(a.run, a.threads, matmul=not a.no_matmul, rounds=a.rounds, seconds=a.seconds)
