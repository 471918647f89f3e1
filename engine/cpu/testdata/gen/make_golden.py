#!/usr/bin/python3
"""Writes golden inputs and outputs for engine/cpu's tests.

PyTorch is the independent oracle: every expected output here is computed by
torch (torch.matmul, torch.nn.functional.layer_norm, F.gelu, torch.softmax,
...), never by fx. Inputs come from a fixed seed, so rerunning the script
reproduces the files bit for bit on the same torch build.

Run from the repository root with the system Python that has torch:

    /usr/bin/python3 engine/cpu/testdata/gen/make_golden.py

Files are written as .npy (float32 '<f4' or int32 '<i4', C order) to
engine/cpu/testdata/golden/. Constants shared with golden_test.go:
LayerNorm eps 1e-5; attention B=2, T=7, H=3, Dh=15, scale 1/sqrt(15); the
second sequence has 2 padded keys; the decode case has 3 queries at offset 4.
"""

import math
import os

import numpy as np
import torch
import torch.nn.functional as F

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "golden")


def save(name, t):
    a = t.detach().cpu().numpy() if isinstance(t, torch.Tensor) else np.asarray(t)
    if a.dtype in (np.float64, np.float32):
        a = a.astype("<f4")
    elif a.dtype in (np.int64, np.int32, np.bool_):
        a = a.astype("<i4")
    else:
        raise TypeError(f"{name}: {a.dtype}")
    np.save(os.path.join(OUT, name + ".npy"), np.ascontiguousarray(a))


def randn(*shape):
    return torch.randn(*shape, dtype=torch.float32)


def main():
    os.makedirs(OUT, exist_ok=True)
    torch.manual_seed(20240611)
    torch.set_num_threads(1)

    # MatMul: odd K and N, leading dims, both weight layouts.
    x = randn(2, 3, 37)
    w = randn(37, 61)
    bias = randn(61)
    save("mm_nn_x", x)
    save("mm_nn_w", w)
    save("mm_nn_bias", bias)
    save("mm_nn_out", torch.matmul(x, w) + bias)

    x = randn(5, 37)
    w = randn(61, 37)
    save("mm_tn_x", x)
    save("mm_tn_w", w)
    save("mm_tn_bias", bias)
    save("mm_tn_out", F.linear(x, w, bias))

    # K = 768, both layouts of the same weights.
    x = randn(4, 768)
    w = randn(768, 67) / math.sqrt(768)
    bias = randn(67)
    save("mm768_x", x)
    save("mm768_w", w)
    save("mm768_wt", w.t().contiguous())
    save("mm768_bias", bias)
    save("mm768_nn_out", torch.matmul(x, w))
    save("mm768_tn_out", F.linear(x, w.t().contiguous(), bias))

    # LayerNorm and its scale; a second case far from zero mean (mean 100,
    # std 0.5), where torch's own float32 kernel is off by about 1e-5 of the
    # exact result, so its expectation is computed by torch in float64.
    eps = 1e-5
    for name, x, d, dtype in (
        ("ln", randn(2, 7, 61) * 2 + 3, 61, torch.float32),
        ("ln_offset", randn(3, 768) * 0.5 + 100, 768, torch.float64),
    ):
        g, b = randn(d), randn(d)
        save(name + "_x", x)
        save(name + "_gamma", g)
        save(name + "_beta", b)
        save(name + "_out", F.layer_norm(x.to(dtype), (d,), g.to(dtype), b.to(dtype), eps))
        var = x.double().var(-1, unbiased=False, keepdim=True)
        save(name + "_scale", (var + eps).sqrt())

    # Elementwise.
    x = torch.cat([torch.linspace(-8, 8, 401), randn(600) * 3])
    save("act_x", x)
    save("act_gelu_tanh", F.gelu(x, approximate="tanh"))
    save("act_gelu_erf", F.gelu(x))
    save("act_tanh", torch.tanh(x))

    a = randn(2, 7, 61)
    b1 = randn(61)
    b2 = randn(7, 61)
    save("add_a", a)
    save("add_b1", b1)
    save("add_b2", b2)
    save("add_out1", a + b1)
    save("add_out2", a + b2)

    table = randn(50, 15)
    ids = torch.tensor([0, 49, 3, 3, 17, 8, 22, 0, 41], dtype=torch.int32)
    save("emb_table", table)
    save("emb_ids", ids)
    save("emb_out", F.embedding(ids.long(), table))

    # Gathers, reusing add_a [2, 7, 61] (14 rows of 61).
    rows = torch.tensor([13, 0, 5, 5], dtype=torch.int32)
    save("rows_idx", rows)
    save("rows_out", a.reshape(-1, 61)[rows.long()])
    save("slice_out", a[..., 10:37])

    # Softmax with masked entries, a fully masked row and large values.
    x = randn(2, 3, 5, 7) * 3
    x = x.masked_fill(torch.rand(2, 3, 5, 7) < 0.3, float("-inf"))
    x[0, 1, 2, :] = float("-inf")
    x[1, 2, 4, :] = torch.tensor([1000.0, 999.0, 998.5, -1000.0, 1001.0, 0.0, 1000.0])
    x[1, 0, 0, :] = torch.tensor([-1e4, -1e4 - 1, -1e4 + 2, float("-inf"), -1e4, -1e4, -1e4])
    save("sm_x", x)
    save("sm_out", torch.nan_to_num(torch.softmax(x, -1), nan=0.0))

    # Attention: B=2, T=7, H=3, Dh=15; causal, second sequence padded.
    B, T, H, Dh = 2, 7, 3, 15
    scale = 1 / math.sqrt(Dh)
    q, k, v = randn(B, T, H, Dh), randn(B, T, H, Dh), randn(B, T, H, Dh)
    valid = torch.tensor([[1] * 7, [1] * 5 + [0] * 2], dtype=torch.int32)
    causal = torch.ones(T, T, dtype=torch.bool).tril()
    allowed = causal[None, None] & (valid[:, None, None, :] != 0)
    scores = torch.matmul(q.permute(0, 2, 1, 3), k.permute(0, 2, 3, 1)) * scale
    scores = scores.masked_fill(~allowed, float("-inf"))
    pattern = torch.nan_to_num(torch.softmax(scores, -1), nan=0.0)
    z = torch.matmul(pattern, v.permute(0, 2, 1, 3)).permute(0, 2, 1, 3).contiguous()
    w = randn(H * Dh, 61)
    result = torch.einsum("bthd,hdn->bthn", z, w.reshape(H, Dh, 61))
    for name, t in (
        ("q", q), ("k", k), ("v", v), ("valid", valid), ("scores", scores),
        ("pattern", pattern), ("z", z), ("w", w), ("wt", w.t().contiguous()),
        ("result", result), ("result_sum", result.sum(2)),
    ):
        save("attn_" + name, t)

    # Decode: 3 queries at offset 4 against 7 keys, causal, no padding.
    q2 = randn(B, 3, H, Dh)
    off = 4
    allowed2 = torch.arange(T)[None, :] <= (torch.arange(3)[:, None] + off)
    scores2 = torch.matmul(q2.permute(0, 2, 1, 3), k.permute(0, 2, 3, 1)) * scale
    scores2 = scores2.masked_fill(~allowed2[None, None], float("-inf"))
    pattern2 = torch.softmax(scores2, -1)
    z2 = torch.matmul(pattern2, v.permute(0, 2, 1, 3)).permute(0, 2, 1, 3).contiguous()
    save("concat_out", torch.cat([k, q2], 1))
    save("dec_q", q2)
    save("dec_scores", scores2)
    save("dec_z", z2)


if __name__ == "__main__":
    main()
