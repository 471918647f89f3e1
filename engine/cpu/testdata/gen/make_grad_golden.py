#!/usr/bin/python3
"""Writes golden inputs and input gradients for engine/cpu's backward ops.

PyTorch's autograd is the independent oracle: every expected gradient here is
computed by torch.autograd.grad in float64 from the float32 inputs (cast
exactly to float64), never by fx, and then stored as float32. Inputs come
from a fixed seed, so rerunning the script reproduces the values bit for bit
on the same torch build (the zip container's timestamps may differ).

Run from the repository root with the system Python that has torch:

    /usr/bin/python3 engine/cpu/testdata/gen/make_grad_golden.py

The arrays go into one archive, engine/cpu/testdata/golden/grad.npz, as
float32 '<f4' (int32 '<i4' for indices and masks), C order. Constants shared
with grad_test.go: LayerNorm eps 1e-5; attention B=2, T=7, H=3, Dh=15,
scale 1/sqrt(15), causal, the second sequence has 2 padded keys; the decode
case has 3 queries at offset 4 against the same 7 keys.
"""

import math
import os

import numpy as np
import torch
import torch.nn.functional as F

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "golden", "grad.npz")

arrays = {}


def save(name, t):
    a = t.detach().cpu().numpy() if isinstance(t, torch.Tensor) else np.asarray(t)
    if a.dtype in (np.float64, np.float32):
        a = a.astype("<f4")
    elif a.dtype in (np.int64, np.int32, np.bool_):
        a = a.astype("<i4")
    else:
        raise TypeError(f"{name}: {a.dtype}")
    if name in arrays:
        raise KeyError(name)
    arrays[name] = np.ascontiguousarray(a)


def randn(*shape):
    return torch.randn(*shape, dtype=torch.float32)


def grads(loss_fn, *inputs):
    """Gradients of loss_fn(*inputs) with respect to each input, in float64.

    inputs are float32 tensors; each is cast exactly to float64 first."""
    xs = [x.double().requires_grad_(True) for x in inputs]
    return torch.autograd.grad(loss_fn(*xs), xs)


def attn_allowed(B, Tq, Tk, valid, offset):
    """[B, 1, Tq, Tk] bool: causal at offset, and the key is not padding."""
    causal = torch.arange(Tk)[None, :] <= (torch.arange(Tq)[:, None] + offset)
    return causal[None, None] & (valid[:, None, None, :] != 0)


def scores_of(q, k, scale):
    """q [B, Tq, H, Dh], k [B, Tk, H, Dh] -> q·kᵀ·scale as [B, H, Tq, Tk]."""
    return torch.matmul(q.permute(0, 2, 1, 3), k.permute(0, 2, 3, 1)) * scale


def mix_of(p, v):
    """p [B, H, Tq, Tk], v [B, Tk, H, Dh] -> z [B, Tq, H, Dh]."""
    return torch.matmul(p, v.permute(0, 2, 1, 3)).permute(0, 2, 1, 3)


def main():
    torch.manual_seed(20240612)
    torch.set_num_threads(1)
    eps = 1e-5

    # LayerNorm: dx only (gamma and beta get no gradient in fx). An odd
    # width, and GPT-2's width far from zero mean.
    for name, x in (
        ("ln", randn(2, 7, 61) * 2 + 3),
        ("ln_offset", randn(3, 768) * 0.5 + 100),
    ):
        d = x.shape[-1]
        g, b, dy = randn(d), randn(d), randn(*x.shape)
        (dx,) = grads(lambda x: (F.layer_norm(x, (d,), g.double(), b.double(), eps) * dy.double()).sum(), x)
        save(name + "_x", x)
        save(name + "_gamma", g)
        save(name + "_beta", b)
        save(name + "_dy", dy)
        save(name + "_dx", dx)

    # Elementwise: both GELUs and tanh over a wide range.
    x = torch.cat([torch.linspace(-8, 8, 401), randn(600) * 3])
    dy = randn(*x.shape)
    save("act_x", x)
    save("act_dy", dy)
    (dx,) = grads(lambda x: (F.gelu(x, approximate="tanh") * dy.double()).sum(), x)
    save("gelu_tanh_dx", dx)
    (dx,) = grads(lambda x: (F.gelu(x) * dy.double()).sum(), x)
    save("gelu_erf_dx", dx)
    save("tanh_y", torch.tanh(x.double()))
    (dx,) = grads(lambda x: (torch.tanh(x) * dy.double()).sum(), x)
    save("tanh_dx", dx)

    # Softmax with -inf (masked) entries, a fully masked row and saturated
    # rows. dy is nonzero everywhere; dx must be 0 wherever y is 0. A fully
    # masked row has y = 0 (fx's convention) and dx = 0.
    x = randn(2, 3, 5, 7) * 3
    x = x.masked_fill(torch.rand(2, 3, 5, 7) < 0.3, float("-inf"))
    x[0, 1, 2, :] = float("-inf")
    x[1, 2, 4, :] = torch.tensor([1000.0, 999.0, 998.5, -1000.0, 1001.0, 0.0, 1000.0])
    x[1, 0, 0, :] = torch.tensor([-1e4, -1e4 - 1, -1e4 + 2, float("-inf"), -1e4, -1e4, -1e4])
    dy = randn(2, 3, 5, 7)
    full = torch.isinf(x).all(-1, keepdim=True)

    def softmax_loss(x):
        y = torch.softmax(x.masked_fill(full, 0.0), -1).masked_fill(full, 0.0)
        return (y * dy.double()).sum()

    (dx,) = grads(softmax_loss, x)
    y = torch.softmax(x.double().masked_fill(full, 0.0), -1).masked_fill(full, 0.0)
    save("sm_x", x)
    save("sm_y", y)
    save("sm_dy", dy)
    save("sm_dx", dx)

    # Attention: B=2, T=7, H=3, Dh=15; causal, the second sequence padded.
    B, T, H, Dh = 2, 7, 3, 15
    scale = 1 / math.sqrt(Dh)
    q, k, v = randn(B, T, H, Dh), randn(B, T, H, Dh), randn(B, T, H, Dh)
    valid = torch.tensor([[1] * 7, [1] * 5 + [0] * 2], dtype=torch.int32)
    allowed = attn_allowed(B, T, T, valid, 0)
    save("attn_q", q)
    save("attn_k", k)
    save("attn_v", v)
    save("attn_valid", valid)

    # Scores: dscores is zero at masked entries.
    ds = randn(B, H, T, T).masked_fill(~allowed, 0.0)
    dq, dk = grads(lambda q, k: (scores_of(q, k, scale) * ds.double()).sum(), q, k)
    save("scores_ds", ds)
    save("scores_dq", dq)
    save("scores_dk", dk)

    # Mix: the pattern of the masked scores, rounded to float32 as fx holds
    # it; dpattern is the full gradient, also at masked entries.
    s64 = scores_of(q.double(), k.double(), scale).masked_fill(~allowed, float("-inf"))
    pattern = torch.softmax(s64, -1).float()
    dz = randn(B, T, H, Dh)
    dp, dv = grads(lambda p, v: (mix_of(p, v) * dz.double()).sum(), pattern, v)
    save("mix_pattern", pattern)
    save("mix_dz", dz)
    save("mix_dpattern", dp)
    save("mix_dv", dv)

    # The whole attention: scores, softmax, mix.
    def attention_loss(q, k, v, allowed, dz):
        s = scores_of(q, k, scale).masked_fill(~allowed, float("-inf"))
        return (mix_of(torch.softmax(s, -1), v) * dz.double()).sum()

    dq, dk, dv = grads(lambda q, k, v: attention_loss(q, k, v, allowed, dz), q, k, v)
    save("chain_dq", dq)
    save("chain_dk", dk)
    save("chain_dv", dv)

    # Decode: 3 queries at offset 4 against the 7 keys, causal, no padding.
    Tq, off = 3, 4
    q2 = randn(B, Tq, H, Dh)
    allowed2 = attn_allowed(B, Tq, T, torch.ones(B, T, dtype=torch.int32), off)
    ds2 = randn(B, H, Tq, T).masked_fill(~allowed2, 0.0)
    dq, dk = grads(lambda q, k: (scores_of(q, k, scale) * ds2.double()).sum(), q2, k)
    save("dec_q", q2)
    save("dec_ds", ds2)
    save("dec_dq", dq)
    save("dec_dk", dk)
    dz2 = randn(B, Tq, H, Dh)
    dq, dk, dv = grads(lambda q, k, v: attention_loss(q, k, v, allowed2, dz2), q2, k, v)
    save("dec_dz", dz2)
    save("dec_chain_dq", dq)
    save("dec_chain_dk", dk)
    save("dec_chain_dv", dv)

    # ConcatLast: the backward of slicing the last dimension.
    parts = [randn(2, 7, 5), randn(2, 7, 15), randn(2, 7, 1)]
    for i, p in enumerate(parts):
        save(f"concat_part{i}", p)
    save("concat_out", torch.cat(parts, -1))

    # ScatterRows: index_add into zeros, with repeated indices.
    x = randn(9, 15)
    idx = torch.tensor([0, 11, 3, 3, 7, 3, 0, 10, 2], dtype=torch.int32)
    save("scatter_x", x)
    save("scatter_idx", idx)
    save("scatter_out", torch.zeros(12, 15, dtype=torch.float64).index_add_(0, idx.long(), x.double()))

    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    np.savez_compressed(OUT, **arrays)


if __name__ == "__main__":
    main()
