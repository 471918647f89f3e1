# Makes the tiny random GPT-2 / BERT test models in exact Hugging Face layout
# (testdata/models/NAME/{config.json, model.safetensors, ...}) and their golden
# activations computed by PyTorch (testdata/golden/NAME.npz, NAME_generate.json).
#
# Rerun from the repo root with Debian's PyTorch (torch 1.13, numpy 1.24):
#     /usr/bin/python3 testdata/gen/make_models.py
# Output is deterministic: fixed seeds, single-threaded torch, fixed zip timestamps,
# so rerunning reproduces identical bytes. No transformers / safetensors packages
# are used: the HF forward passes are re-implemented in ref_models.py and the
# safetensors files are written/parsed by hand in st_io.py. See testdata/README.md.

import json
import math
import os
import shutil
import sys

import numpy as np
import torch

sys.dont_write_bytecode = True  # keep testdata/gen free of __pycache__
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import ref_models as R  # noqa: E402
import st_io  # noqa: E402

ROOT = os.path.dirname(HERE)  # testdata/
MODELS = os.path.join(ROOT, "models")
GOLDEN = os.path.join(ROOT, "golden")
SHARED = "/work/shared/data"  # only read here, at generation time; tests use the copies

torch.set_num_threads(1)
torch.use_deterministic_algorithms(True)

TRANSFORMERS_VERSION = "4.44.2"
TORCH_DTYPE = {"F32": "float32", "BF16": "bfloat16", "F16": "float16"}


def write_json(path, obj):
    with open(path, "w") as f:
        f.write(json.dumps(obj, indent=2, sort_keys=True) + "\n")


def npf32(t):
    return np.ascontiguousarray(t.detach().to(torch.float32).numpy())


# ----------------------------------------------------------------------------- random init

class Init:
    def __init__(self, seed):
        self.g = torch.Generator().manual_seed(seed)

    def normal(self, shape, std, mean=0.0):
        return torch.randn(*shape, generator=self.g) * std + mean

    def ln_weight(self, n):
        return self.normal((n,), 0.1, 1.0)

    def bias(self, n, std=0.05):
        return self.normal((n,), std)


# ----------------------------------------------------------------------------- GPT-2

def gpt2_config(vocab, npos, D, H, L, dtype):
    return {
        "activation_function": "gelu_new",
        "architectures": ["GPT2LMHeadModel"],
        "attn_pdrop": 0.1,
        "bos_token_id": vocab - 1,
        "embd_pdrop": 0.1,
        "eos_token_id": vocab - 1,
        "initializer_range": 0.02,
        "layer_norm_epsilon": 1e-05,
        "model_type": "gpt2",
        "n_ctx": npos,
        "n_embd": D,
        "n_head": H,
        "n_inner": None,
        "n_layer": L,
        "n_positions": npos,
        "reorder_and_upcast_attn": False,
        "resid_pdrop": 0.1,
        "scale_attn_by_inverse_layer_idx": False,
        "scale_attn_weights": True,
        "summary_activation": None,
        "summary_first_dropout": 0.1,
        "summary_proj_to_labels": True,
        "summary_type": "cls_index",
        "summary_use_proj": True,
        "torch_dtype": TORCH_DTYPE[dtype],
        "transformers_version": TRANSFORMERS_VERSION,
        "use_cache": True,
        "vocab_size": vocab,
    }


def gpt2_init(cfg, seed, std, wte_std, wpe_std):
    """Canonical (no prefix) GPT-2 parameters in HF state_dict order, float32."""
    ini = Init(seed)
    D, L, V, P = cfg["n_embd"], cfg["n_layer"], cfg["vocab_size"], cfg["n_positions"]
    I = cfg["n_inner"] or 4 * D
    sd = {"wte.weight": ini.normal((V, D), wte_std), "wpe.weight": ini.normal((P, D), wpe_std)}
    for i in range(L):
        p = "h.%d." % i
        sd[p + "ln_1.weight"] = ini.ln_weight(D)
        sd[p + "ln_1.bias"] = ini.bias(D, 0.02)
        sd[p + "attn.c_attn.weight"] = ini.normal((D, 3 * D), std)  # Conv1D [in, out]
        sd[p + "attn.c_attn.bias"] = ini.bias(3 * D)
        sd[p + "attn.c_proj.weight"] = ini.normal((D, D), std)
        sd[p + "attn.c_proj.bias"] = ini.bias(D)
        sd[p + "ln_2.weight"] = ini.ln_weight(D)
        sd[p + "ln_2.bias"] = ini.bias(D, 0.02)
        sd[p + "mlp.c_fc.weight"] = ini.normal((D, I), std)
        sd[p + "mlp.c_fc.bias"] = ini.bias(I)
        sd[p + "mlp.c_proj.weight"] = ini.normal((I, D), std)
        sd[p + "mlp.c_proj.bias"] = ini.bias(D)
    sd["ln_f.weight"] = ini.ln_weight(D)
    sd["ln_f.bias"] = ini.bias(D, 0.02)
    return sd


def gpt2_file_tensors(sd, cfg, dtype, prefix, buffers, lm_head):
    """List of (stored name, tensor, dtype) in HF state_dict order."""
    P = cfg["n_positions"]
    out = []
    for name, t in sd.items():
        out.append((prefix + name, t, dtype))
        if buffers and name.endswith("ln_1.bias"):
            p = name[: -len("ln_1.bias")]
            # old checkpoints: float32 tril causal buffer and scalar masked_bias
            out.append((prefix + p + "attn.bias", torch.tril(torch.ones(P, P)).view(1, 1, P, P), "F32"))
            out.append((prefix + p + "attn.masked_bias", torch.tensor(-1e4), "F32"))
    if lm_head:
        out.append(("lm_head.weight", sd["wte.weight"], dtype))
    return out


def gpt2_load(parsed, cfg):
    """Canonical float32 state dict from an independently parsed file (what a loader must do)."""
    sd = {}
    P = cfg["n_positions"]
    for name, (dt, shape, arr) in parsed.items():
        n = name[len("transformer."):] if name.startswith("transformer.") else name
        if n.endswith("attn.bias") and dt == "F32" and shape == (1, 1, P, P):
            assert np.array_equal(arr, np.tril(np.ones((P, P), np.float32))[None, None])
            continue
        if n.endswith("attn.masked_bias"):
            assert shape == () and arr == np.float32(-1e4)
            continue
        sd[n] = torch.from_numpy(arr.copy())
    if "lm_head.weight" in sd:
        assert torch.equal(sd["lm_head.weight"], sd["wte.weight"])
        del sd["lm_head.weight"]
    return sd


# ----------------------------------------------------------------------------- BERT

def bert_config(arch, vocab, D, H, L, I, P, dtype, extra=None):
    cfg = {
        "architectures": [arch],
        "attention_probs_dropout_prob": 0.1,
        "classifier_dropout": None,
        "hidden_act": "gelu",
        "hidden_dropout_prob": 0.1,
        "hidden_size": D,
        "initializer_range": 0.02,
        "intermediate_size": I,
        "layer_norm_eps": 1e-12,
        "max_position_embeddings": P,
        "model_type": "bert",
        "num_attention_heads": H,
        "num_hidden_layers": L,
        "pad_token_id": 0,
        "position_embedding_type": "absolute",
        "torch_dtype": TORCH_DTYPE[dtype],
        "transformers_version": TRANSFORMERS_VERSION,
        "type_vocab_size": 2,
        "use_cache": True,
        "vocab_size": vocab,
    }
    cfg.update(extra or {})
    return cfg


def bert_init(cfg, seed, std, head):
    ini = Init(seed)
    D, L, V, P, I = (cfg["hidden_size"], cfg["num_hidden_layers"], cfg["vocab_size"],
                     cfg["max_position_embeddings"], cfg["intermediate_size"])
    e = "bert.embeddings."
    sd = {
        e + "word_embeddings.weight": ini.normal((V, D), std),
        e + "position_embeddings.weight": ini.normal((P, D), 0.1),
        e + "token_type_embeddings.weight": ini.normal((cfg["type_vocab_size"], D), 0.1),
        e + "LayerNorm.weight": ini.ln_weight(D),
        e + "LayerNorm.bias": ini.bias(D, 0.02),
    }
    for i in range(L):
        p = "bert.encoder.layer.%d." % i
        for nm in ("query", "key", "value"):
            sd[p + "attention.self.%s.weight" % nm] = ini.normal((D, D), std)  # nn.Linear [out, in]
            sd[p + "attention.self.%s.bias" % nm] = ini.bias(D)
        sd[p + "attention.output.dense.weight"] = ini.normal((D, D), std)
        sd[p + "attention.output.dense.bias"] = ini.bias(D)
        sd[p + "attention.output.LayerNorm.weight"] = ini.ln_weight(D)
        sd[p + "attention.output.LayerNorm.bias"] = ini.bias(D, 0.02)
        sd[p + "intermediate.dense.weight"] = ini.normal((I, D), std)
        sd[p + "intermediate.dense.bias"] = ini.bias(I)
        sd[p + "output.dense.weight"] = ini.normal((D, I), std)
        sd[p + "output.dense.bias"] = ini.bias(D)
        sd[p + "output.LayerNorm.weight"] = ini.ln_weight(D)
        sd[p + "output.LayerNorm.bias"] = ini.bias(D, 0.02)
    if head == "cls":
        sd["bert.pooler.dense.weight"] = ini.normal((D, D), std)
        sd["bert.pooler.dense.bias"] = ini.bias(D)
        sd["classifier.weight"] = ini.normal((cfg["num_labels"], D), std)
        sd["classifier.bias"] = ini.bias(cfg["num_labels"])
    else:
        sd["cls.predictions.bias"] = ini.bias(V, 0.1)
        sd["cls.predictions.transform.dense.weight"] = ini.normal((D, D), std)
        sd["cls.predictions.transform.dense.bias"] = ini.bias(D)
        sd["cls.predictions.transform.LayerNorm.weight"] = ini.ln_weight(D)
        sd["cls.predictions.transform.LayerNorm.bias"] = ini.bias(D, 0.02)
    return sd


def bert_file_tensors(sd, cfg, dtype, old_ln_names, position_ids):
    out = []
    for name, t in sd.items():
        n = name
        if old_ln_names and "LayerNorm." in n:
            n = n.replace("LayerNorm.weight", "LayerNorm.gamma").replace("LayerNorm.bias", "LayerNorm.beta")
        out.append((n, t, dtype))
        if position_ids and name == "bert.embeddings.LayerNorm.bias":
            out.append(("bert.embeddings.position_ids",
                        torch.arange(cfg["max_position_embeddings"], dtype=torch.int64).view(1, -1), "I64"))
    return out


def bert_load(parsed, cfg):
    sd = {}
    for name, (dt, shape, arr) in parsed.items():
        if name.endswith("position_ids"):
            assert dt == "I64" and np.array_equal(arr, np.arange(cfg["max_position_embeddings"])[None])
            continue
        n = name.replace("LayerNorm.gamma", "LayerNorm.weight").replace("LayerNorm.beta", "LayerNorm.bias")
        sd[n] = torch.from_numpy(arr.copy())
    return sd


# ----------------------------------------------------------------------------- checks

def check_file_matches(parsed, tensors):
    """Every stored tensor read back independently equals the dtype-rounded original."""
    assert set(parsed) == {n for n, _, _ in tensors}
    for name, t, dt in tensors:
        pdt, shape, arr = parsed[name]
        assert pdt == dt and shape == tuple(t.shape), name
        if dt == "I64":
            assert np.array_equal(arr, t.numpy())
        else:
            exp = st_io.roundtrip_f32(t, dt).numpy()
            assert np.array_equal(arr.view(np.uint32), exp.view(np.uint32)), name


def compare_hooks(ref32, chk64, tag):
    """Compare float32 HF-path hooks with the float64 independent implementation.
    -inf entries must match exactly; finite entries within a relative tolerance."""
    worst = 0.0
    for k, a in ref32.items():
        b = chk64[k]
        assert a.shape == b.shape, (tag, k, a.shape, b.shape)
        a64 = a.double()
        inf_a, inf_b = torch.isinf(a64), torch.isinf(b)
        assert torch.equal(inf_a, inf_b), (tag, k, "inf mask differs")
        if inf_a.any():
            assert torch.equal(a64[inf_a], b[inf_b])
        fin = ~inf_a
        scale = 1.0 + b[fin].abs().max().item()
        err = (a64[fin] - b[fin]).abs().max().item() / scale
        worst = max(worst, err)
        assert err < 2e-5, (tag, k, err)
    return worst


def to64(sd):
    return {k: v.double() for k, v in sd.items()}


# ----------------------------------------------------------------------------- GPT-2 goldens

def gpt2_inputs(cfg, seed, lengths=(7, 5)):
    g = torch.Generator().manual_seed(seed)
    V = cfg["vocab_size"]
    T = max(lengths)
    ids = torch.full((len(lengths), T), cfg["eos_token_id"], dtype=torch.int64)  # pad = eos, as usual for GPT-2
    mask = torch.zeros((len(lengths), T), dtype=torch.int64)
    for b, n in enumerate(lengths):
        ids[b, :n] = torch.randint(0, V - 1, (n,), generator=g)
        mask[b, :n] = 1
    return ids, mask


def gpt2_golden(name, sd, cfg, seed):
    ids, mask = gpt2_inputs(cfg, seed)
    hooks = {}
    logits, hidden = R.hf_gpt2_forward(sd, cfg, ids, mask, hooks=hooks)
    # guard 1: the independent TL-style implementation (float64) agrees
    chk = R.tl_gpt2_forward(to64(sd), cfg, ids, mask)
    worst = compare_hooks(hooks, chk, name)
    # guard 2: HF path in float64 agrees too
    logits64, _ = R.hf_gpt2_forward(to64(sd), cfg, ids, mask)
    assert torch.allclose(logits.double(), logits64, atol=1e-4, rtol=1e-4)
    # guard 3: each sequence alone (no padding, no mask) gives the same valid-position outputs
    for b in range(ids.shape[0]):
        n = int(mask[b].sum())
        lg, hs = R.hf_gpt2_forward(sd, cfg, ids[b : b + 1, :n])
        assert torch.allclose(lg[0], logits[b, :n], atol=1e-5, rtol=1e-5), (name, b)
        for x, y in zip(hs, hidden):
            assert torch.allclose(x[0], y[b, :n], atol=1e-5, rtol=1e-5)
    # hidden_states consistency with hook names
    for i in range(cfg["n_layer"]):
        assert torch.equal(hidden[i], hooks["blocks.%d.hook_resid_pre" % i])
    assert torch.equal(hidden[-1], hooks["ln_final.hook_normalized"])
    arrays = {"input_ids": ids.numpy(), "attention_mask": mask.numpy()}
    arrays.update({k: npf32(v) for k, v in hooks.items()})
    st_io.savez_deterministic(os.path.join(GOLDEN, name + ".npz"), arrays)
    stats(name, hooks, cfg["n_layer"])
    print("  %s: f32 vs independent f64 max rel err %.2e" % (name, worst))
    return list(arrays)


def stats(name, hooks, L):
    for i in range(L):
        pat = hooks["blocks.%d.attn.hook_pattern" % i]
        ent = -(pat.clamp_min(1e-30).log() * pat).sum(-1)
        print("  %s block %d: pattern max %.3f mean-entropy %.3f" % (name, i, pat.max().item(), ent.mean().item()))
    lg = hooks.get("unembed.hook_out", hooks.get("classifier.hook_out"))
    print("  %s logits std %.3f range [%.2f, %.2f]" % (name, lg.std().item(), lg.min().item(), lg.max().item()))


def greedy(sd, cfg, prompt, n_new):
    ids = list(prompt)
    margins, top5 = [], None
    for step in range(n_new):
        logits, _ = R.hf_gpt2_forward(sd, cfg, torch.tensor([ids]))
        last = logits[0, -1]
        v, ix = torch.topk(last, 5)
        if step == 0:
            top5 = {"ids": [int(x) for x in ix], "logits": [float(x) for x in v]}
        margins.append(float(v[0] - v[1]))
        ids.append(int(torch.argmax(last)))
    return ids[len(prompt):], top5, margins


def gpt2_generate_golden(name, sd, cfg, prompts):
    out = {"model": name, "prompts": prompts, "max_new_tokens": 12, "greedy": [],
           "first_step_logits_top5": [], "min_margin": [],
           "eos_token_id": cfg["eos_token_id"],
           "note": "greedy argmax of the last position's logits, full recompute each step, batch 1, "
                   "no early stop at eos; greedy holds only the 12 new ids; first_step_logits_top5 is the top-5 "
                   "(ids, logits) at the prompt's last position; min_margin is the smallest top1-top2 logit gap over the 12 steps"}
    sd64 = to64(sd)
    for pr in prompts:
        toks, top5, margins = greedy(sd, cfg, pr, 12)
        toks64, _, _ = greedy(sd64, cfg, pr, 12)
        assert toks == toks64, (name, "f32 and f64 greedy differ")
        out["greedy"].append(toks)
        out["first_step_logits_top5"].append(top5)
        out["min_margin"].append(min(margins))
    write_json(os.path.join(GOLDEN, name + "_generate.json"), out)
    print("  %s generate: %s margins %s" % (name, out["greedy"], ["%.3g" % m for m in out["min_margin"]]))


def pick_prompts(sd, cfg, seed, lengths=(3, 6), min_margin=0.02):
    """Deterministically pick random prompts whose greedy continuation has no near-ties."""
    g = torch.Generator().manual_seed(seed)
    prompts = []
    for n in lengths:
        for _ in range(100):
            pr = [int(x) for x in torch.randint(0, cfg["vocab_size"] - 1, (n,), generator=g)]
            _, _, m = greedy(sd, cfg, pr, 12)
            if min(m) >= min_margin:
                break
        else:
            raise RuntimeError("no prompt without near-ties")
        prompts.append(pr)
    return prompts


def write_model(dirname, cfg, tensors, shards=None):
    d = os.path.join(MODELS, dirname)
    os.makedirs(d, exist_ok=True)
    write_json(os.path.join(d, "config.json"), cfg)
    if shards is None:
        path = os.path.join(d, "model.safetensors")
        st_io.write_safetensors(path, tensors)
        meta, parsed = st_io.read_safetensors(path)
        assert meta == {"format": "pt"}
        check_file_matches(parsed, tensors)
        return parsed
    # sharded: shards = list of lists of stored names
    total = 0
    weight_map = {}
    parsed_all = {}
    byname = {n: (n, t, dt) for n, t, dt in tensors}
    assert sorted(sum(shards, [])) == sorted(byname)
    for k, names in enumerate(shards):
        fn = "model-%05d-of-%05d.safetensors" % (k + 1, len(shards))
        part = [byname[n] for n in names]
        total += st_io.write_safetensors(os.path.join(d, fn), part)
        meta, parsed = st_io.read_safetensors(os.path.join(d, fn))
        assert meta == {"format": "pt"}
        check_file_matches(parsed, part)
        parsed_all.update(parsed)
        for n in names:
            weight_map[n] = fn
    write_json(os.path.join(d, "model.safetensors.index.json"),
               {"metadata": {"total_size": total}, "weight_map": dict(sorted(weight_map.items()))})
    return parsed_all


# ----------------------------------------------------------------------------- BERT goldens

def bert_inputs(cfg, seed, cls_ids):
    """Batch of 2, right-padded with 0: seq0 length 9 single segment, seq1 length 6 as a pair
    (token_type 0 for the first 3 tokens, 1 after)."""
    g = torch.Generator().manual_seed(seed)
    V = cfg["vocab_size"]
    T = 9
    ids = torch.zeros((2, T), dtype=torch.int64)
    tt = torch.zeros((2, T), dtype=torch.int64)
    mask = torch.zeros((2, T), dtype=torch.int64)
    if cls_ids:  # real bert-base-uncased ids: [CLS]=101, [SEP]=102, words from 1996..
        lo, CLS, SEP = 1996, 101, 102
        ids[0, :9] = torch.cat([torch.tensor([CLS]), torch.randint(lo, V, (7,), generator=g), torch.tensor([SEP])])
        a = torch.randint(lo, V, (1,), generator=g).tolist()
        b = torch.randint(lo, V, (2,), generator=g).tolist()
        ids[1, :6] = torch.tensor([CLS] + a + [SEP] + b + [SEP])
    else:
        ids[0, :9] = torch.randint(0, V, (9,), generator=g)
        ids[1, :6] = torch.randint(0, V, (6,), generator=g)
    mask[0, :9] = 1
    mask[1, :6] = 1
    tt[1, 3:6] = 1
    return ids, tt, mask


def bert_golden(name, sd, cfg, seed, head):
    ids, tt, mask = bert_inputs(cfg, seed, cls_ids=(head == "cls"))
    hooks = {}
    logits, hidden = R.hf_bert_forward(sd, cfg, ids, tt, mask, head, hooks=hooks)
    chk = R.tl_bert_forward(to64(sd), cfg, ids, tt, mask, head)
    worst = compare_hooks(hooks, chk, name)
    logits64, _ = R.hf_bert_forward(to64(sd), cfg, ids, tt, mask, head)
    assert torch.allclose(logits.double(), logits64, atol=1e-4, rtol=1e-4)
    # each sequence alone without padding agrees at valid positions
    for b in range(2):
        n = int(mask[b].sum())
        lg, hs = R.hf_bert_forward(sd, cfg, ids[b : b + 1, :n], tt[b : b + 1, :n], mask[b : b + 1, :n], head)
        if head == "cls":
            assert torch.allclose(lg[0], logits[b], atol=1e-5, rtol=1e-5)
        else:
            assert torch.allclose(lg[0], logits[b, :n], atol=1e-5, rtol=1e-5)
        for x, y in zip(hs, hidden):
            assert torch.allclose(x[0], y[b, :n], atol=1e-5, rtol=1e-5)
    for i in range(cfg["num_hidden_layers"]):
        assert torch.equal(hidden[i], hooks["blocks.%d.hook_resid_pre" % i])
    assert torch.equal(hidden[-1], hooks["blocks.%d.hook_resid_post" % (cfg["num_hidden_layers"] - 1)])
    arrays = {"input_ids": ids.numpy(), "token_type_ids": tt.numpy(), "attention_mask": mask.numpy()}
    arrays.update({k: npf32(v) for k, v in hooks.items()})
    st_io.savez_deterministic(os.path.join(GOLDEN, name + ".npz"), arrays)
    stats(name, hooks, cfg["num_hidden_layers"])
    print("  %s: f32 vs independent f64 max rel err %.2e" % (name, worst))
    return list(arrays)


def check_npz(name, keys):
    z = np.load(os.path.join(GOLDEN, name + ".npz"))
    assert list(z.files) == keys
    for k in keys:
        a = z[k]
        assert a.dtype in (np.float32, np.int64), (k, a.dtype)
        assert a.shape[0] == 2, (k, a.shape)


# ----------------------------------------------------------------------------- main

def main():
    os.makedirs(MODELS, exist_ok=True)
    os.makedirs(GOLDEN, exist_ok=True)
    keys = {}

    # 1. gpt2-tiny: F32, no prefix, attn.bias/masked_bias buffers, no lm_head
    cfg = gpt2_config(512, 64, 60, 4, 2, "F32")
    sd0 = gpt2_init(cfg, seed=1001, std=0.2, wte_std=0.2, wpe_std=0.1)
    tensors = gpt2_file_tensors(sd0, cfg, "F32", prefix="", buffers=True, lm_head=False)
    parsed = write_model("gpt2-tiny", cfg, tensors)
    sd = gpt2_load(parsed, cfg)
    keys["gpt2-tiny"] = gpt2_golden("gpt2-tiny", sd, cfg, seed=2001)
    gpt2_generate_golden("gpt2-tiny", sd, cfg, pick_prompts(sd, cfg, seed=3001))

    # 4. gpt2-tiny-sharded: the same tensors in two shards + index; shares gpt2-tiny's golden
    names = [n for n, _, _ in tensors]
    first = [n for n in names if n.startswith(("wte.", "wpe.", "h.0."))]
    second = [n for n in names if n not in first]
    parsed_sh = write_model("gpt2-tiny-sharded", cfg, tensors, shards=[first, second])
    for n in parsed:
        assert np.array_equal(parsed[n][2], parsed_sh[n][2])

    # 2. gpt2-tiny-bf16: BF16, transformer. prefix, explicit lm_head.weight == wte, no buffers
    cfg = gpt2_config(512, 64, 48, 6, 3, "BF16")
    sd0 = gpt2_init(cfg, seed=1002, std=0.2, wte_std=0.2, wpe_std=0.1)
    tensors = gpt2_file_tensors(sd0, cfg, "BF16", prefix="transformer.", buffers=False, lm_head=True)
    parsed = write_model("gpt2-tiny-bf16", cfg, tensors)
    sd = gpt2_load(parsed, cfg)
    keys["gpt2-tiny-bf16"] = gpt2_golden("gpt2-tiny-bf16", sd, cfg, seed=2002)
    gpt2_generate_golden("gpt2-tiny-bf16", sd, cfg, pick_prompts(sd, cfg, seed=3002))

    # 3. gpt2-default: real GPT-2 vocab (50257), F16, no prefix, real tokenizer files
    cfg = gpt2_config(50257, 128, 32, 2, 2, "F16")
    cfg["bos_token_id"] = cfg["eos_token_id"] = 50256
    sd0 = gpt2_init(cfg, seed=1003, std=0.25, wte_std=0.25, wpe_std=0.1)
    tensors = gpt2_file_tensors(sd0, cfg, "F16", prefix="", buffers=False, lm_head=False)
    parsed = write_model("gpt2-default", cfg, tensors)
    for fn in ("vocab.json", "merges.txt"):
        shutil.copyfile(os.path.join(SHARED, "gpt2", fn), os.path.join(MODELS, "gpt2-default", fn))
    vocab = json.load(open(os.path.join(MODELS, "gpt2-default", "vocab.json"), encoding="utf-8"))
    assert [vocab[t] for t in ("The", "\u0120dog")] == [464, 3290]
    assert [vocab[t] for t in ("Hello", ",", "\u0120world", "!")] == [15496, 11, 995, 0]
    sd = gpt2_load(parsed, cfg)
    keys["gpt2-default"] = gpt2_golden("gpt2-default", sd, cfg, seed=2003)
    gpt2_generate_golden("gpt2-default", sd, cfg, [[464, 3290], [15496, 11, 995, 0]])

    # 5. bert-tiny-cls: BF16, bert. prefix, LayerNorm.gamma/beta, position_ids I64 buffer, real vocab
    cfg = bert_config("BertForSequenceClassification", 30522, 36, 3, 2, 72, 64, "BF16", {
        "id2label": {"0": "NEGATIVE", "1": "POSITIVE"},
        "label2id": {"NEGATIVE": 0, "POSITIVE": 1},
        "problem_type": "single_label_classification",
    })
    cfg["num_labels"] = 2
    sd0 = bert_init(cfg, seed=1005, std=0.2, head="cls")
    del cfg["num_labels"]  # HF writes id2label/label2id, not num_labels
    tensors = bert_file_tensors(sd0, cfg, "BF16", old_ln_names=True, position_ids=True)
    parsed = write_model("bert-tiny-cls", cfg, tensors)
    shutil.copyfile(os.path.join(SHARED, "bert-base-uncased", "vocab.txt"),
                    os.path.join(MODELS, "bert-tiny-cls", "vocab.txt"))
    sd = bert_load(parsed, cfg)
    keys["bert-tiny-cls"] = bert_golden("bert-tiny-cls", sd, cfg, seed=2005, head="cls")

    # 6. bert-tiny-mlm: F32, bert. prefix, LayerNorm.weight/bias, no pooler, decoder tied (omitted)
    cfg = bert_config("BertForMaskedLM", 400, 48, 4, 3, 96, 32, "F32")
    sd0 = bert_init(cfg, seed=1006, std=0.2, head="mlm")
    tensors = bert_file_tensors(sd0, cfg, "F32", old_ln_names=False, position_ids=False)
    parsed = write_model("bert-tiny-mlm", cfg, tensors)
    sd = bert_load(parsed, cfg)
    keys["bert-tiny-mlm"] = bert_golden("bert-tiny-mlm", sd, cfg, seed=2006, head="mlm")

    for name, ks in keys.items():
        check_npz(name, ks)
    print("ok")


if __name__ == "__main__":
    main()
