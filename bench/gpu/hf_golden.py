"""Independent oracle check of testdata/golden/*.npz against Hugging Face transformers itself.

The goldens were computed by testdata/gen/ref_models.py, a line-by-line port of HF's
GPT2LMHeadModel / BertForSequenceClassification / BertForMaskedLM (transformers was
not installed where they were made). This script runs the real transformers classes
(attn_implementation="eager", eval mode, CPU; the models are tiny) on every tiny model
dir under testdata/models, on exactly the golden inputs (input_ids, attention_mask,
token_type_ids are read from the npz, and cross-checked against a regeneration with
testdata/gen/make_models.py's own input functions), in float64 and in float32, and
compares against the golden arrays:

  * logits (unembed.hook_out / classifier.hook_out), all positions and valid rows only;
  * activations that map one-to-one onto HF modules, caught with forward (pre-)hooks:
    embeddings, resid_pre (block input), ln1/ln2 outputs, q/k/v (c_attn or
    query/key/value outputs), z (c_proj / attention.output.dense input), attn_out,
    resid_mid (ln_2 / attention.output.LayerNorm input), mlp pre/post, mlp_out,
    resid_post (block output), ln_final, pooler, mlm transform; attention patterns
    from output_attentions; hidden_states from output_hidden_states (GPT-2:
    hs[i] = blocks.i.hook_resid_pre, hs[L] = ln_final.hook_normalized; BERT:
    hs[0] = embed.ln.hook_normalized, hs[i] = blocks.{i-1}.hook_resid_post; when an
    expected pairing does not hold, the best-matching golden key is reported);
  * for the GPT-2 models, the greedy generation goldens (*_generate.json, full
    recompute, 12 tokens) and their first-step top-5.
Not compared (no HF tensor to read): *.hook_scale, attn.hook_attn_scores, attn.hook_result.

Each model is loaded with from_pretrained(dir) (so HF's own reading of our files --
prefix, gamma/beta names, buffers, shards, bf16/f16 -- is checked too); every
parameter is then compared bit-for-bit with the file as read by testdata/gen/st_io.py.
If from_pretrained fails or loads different values, the model is rebuilt from its
config and loaded with load_state_dict, and the failure is reported.

    python3 bench/gpu/hf_golden.py --out FILE.json      # from the repo root, offline

Metric per tensor: max|hf - golden| / max|golden| ("rel"). ok = every rel < --tol.
Exit status 0 when every model and dtype is ok, 1 otherwise (the JSON says what), 2 on a usage error.
"""
import argparse
import contextlib
import json
import os
import sys
import time
import traceback

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import numpy as np  # noqa: E402
import torch  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
TESTDATA = os.path.join(ROOT, "testdata")
sys.path.insert(0, os.path.join(TESTDATA, "gen"))
sys.dont_write_bytecode = True
import st_io  # noqa: E402

# model dir, golden npz name, kind, seed make_models.py used for the inputs
MODELS = [
    ("gpt2-tiny", "gpt2-tiny", "gpt2", 2001),
    ("gpt2-tiny-sharded", "gpt2-tiny", "gpt2", 2001),
    ("gpt2-tiny-bf16", "gpt2-tiny-bf16", "gpt2", 2002),
    ("gpt2-default", "gpt2-default", "gpt2", 2003),
    ("bert-tiny-cls", "bert-tiny-cls", "bert-cls", 2005),
    ("bert-tiny-mlm", "bert-tiny-mlm", "bert-mlm", 2006),
]
GENERATE = {"gpt2-tiny": "gpt2-tiny", "gpt2-tiny-sharded": "gpt2-tiny", "gpt2-tiny-bf16": "gpt2-tiny-bf16",
            "gpt2-default": "gpt2-default"}


def log(*a):
    print(*a, flush=True)


def classes(kind):
    import transformers as T
    return {"gpt2": T.GPT2LMHeadModel, "bert-cls": T.BertForSequenceClassification,
            "bert-mlm": T.BertForMaskedLM}[kind]


# ----------------------------------------------------------------------------- weights

def file_tensors(d):
    """{stored name: float32/int64 numpy array} over every safetensors file of d."""
    idx = os.path.join(d, "model.safetensors.index.json")
    if os.path.exists(idx):
        files = sorted(set(json.load(open(idx))["weight_map"].values()))
    else:
        files = ["model.safetensors"]
    out = {}
    for f in files:
        _, ts = st_io.read_safetensors(os.path.join(d, f))
        out.update({k: arr for k, (_, _, arr) in ts.items()})
    return out


def hf_name(name, keys):
    n = name.replace("LayerNorm.gamma", "LayerNorm.weight").replace("LayerNorm.beta", "LayerNorm.bias")
    for c in (n, "transformer." + n, "bert." + n):
        if c in keys:
            return c
    return None


TIES = [("lm_head.weight", "transformer.wte.weight"),
        ("cls.predictions.decoder.weight", "bert.embeddings.word_embeddings.weight"),
        ("cls.predictions.decoder.bias", "cls.predictions.bias")]


def verify_weights(model, ft):
    """Compares every model parameter with the file (exactly, in float64)."""
    msd = model.state_dict()
    params = {n for n, _ in model.named_parameters(remove_duplicate=False)}
    covered, bad, unused = set(), [], []
    for name, arr in ft.items():
        k = hf_name(name, msd)
        if k is None:
            unused.append(name)
            continue
        if arr.dtype == np.int64:
            continue
        got = msd[k].detach().cpu().double().numpy()
        want = arr.astype(np.float64)
        if got.shape != want.shape or not np.array_equal(got, want):
            bad.append(k)
        covered.add(k)
    for a, b in TIES:
        if a in msd and a not in covered and b in msd:
            if not torch.equal(msd[a].detach().double(), msd[b].detach().double()):
                bad.append(a + " (tied to " + b + ")")
            covered.add(a)
    uncovered = sorted(p for p in params if p not in covered)
    return {"ok": not bad and not uncovered, "mismatched": bad, "uncovered_params": uncovered,
            "file_tensors_unused": unused}


def from_pretrained(cls, d, dtype):
    """cls.from_pretrained(attn_implementation="eager") in dtype, with loading info,
    across transformers 5 (dtype=) and 4.x (torch_dtype=)."""
    last = None
    for dkey in ("dtype", "torch_dtype"):
        for want_info in (True, False):
            kw = {dkey: dtype, "attn_implementation": "eager"}
            if want_info:
                kw["output_loading_info"] = True
            try:
                r = cls.from_pretrained(d, **kw)
            except TypeError as e:
                last = e
                continue
            m, info = r if want_info else (r, {})
            info = {k: sorted(map(str, v)) if isinstance(v, (list, set, tuple)) else str(v)
                    for k, v in dict(info or {}).items()}
            info["dtype_kwarg"] = dkey
            if next(m.parameters()).dtype != dtype:
                info["cast_after_load"] = str(next(m.parameters()).dtype)
                m = m.to(dtype)
            return m.eval(), info
    raise last


def manual_load(cls, d, dtype, ft):
    from transformers import AutoConfig
    cfg = AutoConfig.from_pretrained(d)
    try:
        m = cls._from_config(cfg, attn_implementation="eager")
    except Exception:  # noqa: BLE001
        try:
            cfg._attn_implementation = "eager"
        except Exception:  # noqa: BLE001
            pass
        m = cls(cfg)
    m = m.to(dtype).eval()
    msd = m.state_dict()
    sd = {}
    for name, arr in ft.items():
        k = hf_name(name, msd)
        if k is not None and arr.dtype != np.int64:
            sd[k] = torch.from_numpy(arr.astype(np.float32)).to(dtype)
    res = m.load_state_dict(sd, strict=False)
    with torch.no_grad():
        for a, b in TIES:
            if a in msd and a not in sd and b in sd:
                p = m.get_parameter(a) if hasattr(m, "get_parameter") else dict(m.named_parameters())[a]
                p.copy_(sd[b])
    return m, {"missing_keys": sorted(res.missing_keys), "unexpected_keys": sorted(res.unexpected_keys)}


def load_model(cls, d, dtype, ft):
    rec = {}
    try:
        m, info = from_pretrained(cls, d, dtype)
        rec["from_pretrained_info"] = info
        v = verify_weights(m, ft)
        rec["from_pretrained_weights"] = v
        if v["ok"]:
            rec["load_path"] = "from_pretrained"
            return m, rec
        log("    from_pretrained loaded different weights: %s" % json.dumps(v)[:400])
    except Exception as e:  # noqa: BLE001
        rec["from_pretrained_error"] = "%s: %s" % (type(e).__name__, e)
        log("    from_pretrained failed: %s" % rec["from_pretrained_error"][:400])
        traceback.print_exc(limit=3)
    m, info = manual_load(cls, d, dtype, ft)
    rec["manual_info"] = info
    rec["manual_weights"] = verify_weights(m, ft)
    rec["load_path"] = "manual load_state_dict"
    return m, rec


# ----------------------------------------------------------------------------- hooks

class Recorder:
    """Forward (pre-)hooks on submodules named by path; a path that does not
    resolve is listed in .missing instead of failing the run."""

    def __init__(self, root):
        self.root = root
        self.acts = {}
        self.handles = []
        self.missing = []

    def _mod(self, path, key):
        try:
            return self.root.get_submodule(path)
        except AttributeError:
            self.missing.append("%s (%s)" % (key, path))
            return None

    def out(self, path, key, fn=None):
        m = self._mod(path, key)
        if m is None:
            return

        def hook(mod, args, output):
            o = output[0] if isinstance(output, (tuple, list)) else output
            self.acts[key] = (fn(o) if fn else o).detach()
        self.handles.append(m.register_forward_hook(hook))

    def inp(self, path, key, fn=None, kw="hidden_states"):
        m = self._mod(path, key)
        if m is None:
            return

        def hook(mod, args, kwargs):
            x = args[0] if args else kwargs.get(kw)
            if x is not None:
                self.acts[key] = (fn(x) if fn else x).detach()
        self.handles.append(m.register_forward_pre_hook(hook, with_kwargs=True))

    def close(self):
        for h in self.handles:
            h.remove()
        self.handles = []


def heads(H):
    return lambda x: x.reshape(x.shape[0], x.shape[1], H, -1)


def gpt2_hooks(rec, H, D, L):
    rec.out("transformer.wte", "hook_embed")
    rec.out("transformer.wpe", "hook_pos_embed")
    for i in range(L):
        p, m = "blocks.%d." % i, "transformer.h.%d" % i
        rec.inp(m, p + "hook_resid_pre")
        rec.out(m + ".ln_1", p + "ln1.hook_normalized")
        for j, nm in enumerate("qkv"):
            rec.out(m + ".attn.c_attn", p + "attn.hook_" + nm, (lambda j: lambda o: heads(H)(o[..., j * D:(j + 1) * D]))(j))
        rec.inp(m + ".attn.c_proj", p + "attn.hook_z", heads(H), kw="x")
        rec.out(m + ".attn.c_proj", p + "hook_attn_out")
        rec.inp(m + ".ln_2", p + "hook_resid_mid", kw="input")
        rec.out(m + ".ln_2", p + "ln2.hook_normalized")
        rec.out(m + ".mlp.c_fc", p + "mlp.hook_pre")
        rec.out(m + ".mlp.act", p + "mlp.hook_post")
        rec.out(m + ".mlp.c_proj", p + "hook_mlp_out")
        rec.out(m, p + "hook_resid_post")
    rec.out("transformer.ln_f", "ln_final.hook_normalized")


def bert_hooks(rec, H, L, head):
    e = "bert.embeddings."
    rec.out(e + "word_embeddings", "embed.hook_embed")
    rec.out(e + "position_embeddings", "embed.hook_pos_embed")
    rec.out(e + "token_type_embeddings", "embed.hook_token_type_embed")
    rec.out(e + "LayerNorm", "embed.ln.hook_normalized")
    for i in range(L):
        p, m = "blocks.%d." % i, "bert.encoder.layer.%d" % i
        rec.inp(m, p + "hook_resid_pre")
        rec.out(m + ".attention.self.query", p + "attn.hook_q", heads(H))
        rec.out(m + ".attention.self.key", p + "attn.hook_k", heads(H))
        rec.out(m + ".attention.self.value", p + "attn.hook_v", heads(H))
        rec.inp(m + ".attention.output.dense", p + "attn.hook_z", heads(H), kw="input")
        rec.out(m + ".attention.output.dense", p + "hook_attn_out")
        rec.inp(m + ".attention.output.LayerNorm", p + "hook_resid_mid", kw="input")
        rec.out(m + ".attention.output.LayerNorm", p + "ln1.hook_normalized")
        rec.out(m + ".intermediate.dense", p + "mlp.hook_pre")
        rec.out(m + ".intermediate", p + "mlp.hook_post")
        rec.out(m + ".output.dense", p + "hook_mlp_out")
        rec.out(m + ".output.LayerNorm", p + "ln2.hook_normalized")
        rec.out(m, p + "hook_resid_post")
    if head == "cls":
        rec.out("bert.pooler", "pooler.hook_out")
        rec.out("classifier", "classifier.hook_out")
    else:
        rec.out("cls.predictions.transform", "mlm.hook_transform")


# ----------------------------------------------------------------------------- comparison

def compare(hf, gold, rows=None):
    """rel = max|hf - golden| / max|golden| over finite golden entries; rows: bool
    [B,T] mask selecting valid positions of [B,T,...] arrays."""
    a = hf.detach().cpu().double().numpy() if torch.is_tensor(hf) else np.asarray(hf, np.float64)
    g = np.asarray(gold, np.float64)
    if a.shape != g.shape:
        try:
            a = np.broadcast_to(a, g.shape)
        except ValueError:
            return {"error": "shape %s vs golden %s" % (list(a.shape), list(g.shape))}
    if rows is not None:
        a, g = a[rows], g[rows]
    fin = np.isfinite(g)
    if not np.array_equal(np.isfinite(a), fin):
        return {"error": "finite masks differ"}
    d = float(np.abs(a - g)[fin].max()) if fin.any() else 0.0
    s = float(np.abs(g[fin]).max()) if fin.any() else 0.0
    return {"rel": d / s if s > 0 else d, "max_abs": d, "max_abs_golden": s}


def best_match(t, golden, skip=()):
    best = None
    for k in golden.files:
        if k in skip:
            continue
        g = golden[k]
        if g.dtype != np.float32 or tuple(g.shape) != tuple(t.shape):
            continue
        r = compare(t, g).get("rel")
        if r is not None and (best is None or r < best[1]):
            best = (k, r)
    return best


def regen_inputs(kind, cfg, seed):
    """The inputs as make_models.py builds them (for the cross-check only)."""
    n0, d0 = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
    import make_models  # sets 1 thread and deterministic algorithms at import: restored below
    torch.set_num_threads(n0)
    torch.use_deterministic_algorithms(d0)
    if kind == "gpt2":
        ids, mask = make_models.gpt2_inputs(cfg, seed)
        return {"input_ids": ids.numpy(), "attention_mask": mask.numpy()}
    ids, tt, mask = make_models.bert_inputs(cfg, seed, cls_ids=(kind == "bert-cls"))
    return {"input_ids": ids.numpy(), "token_type_ids": tt.numpy(), "attention_mask": mask.numpy()}


def run_one(model, kind, golden, cfg, tol):
    H = cfg.get("n_head") or cfg.get("num_attention_heads")
    L = cfg.get("n_layer") or cfg.get("num_hidden_layers")
    ids = torch.from_numpy(golden["input_ids"])
    mask = torch.from_numpy(golden["attention_mask"])
    B, T = ids.shape
    pos = torch.arange(T).unsqueeze(0).expand(B, T)
    rec = Recorder(model)
    res = {"attn_implementation": str(getattr(model.config, "_attn_implementation", "?"))}
    try:
        if kind == "gpt2":
            gpt2_hooks(rec, H, cfg["n_embd"], L)
            kw = dict(input_ids=ids, attention_mask=mask, position_ids=pos, use_cache=False)
            lkey = "unembed.hook_out"
        else:
            bert_hooks(rec, H, L, "cls" if kind == "bert-cls" else "mlm")
            kw = dict(input_ids=ids, attention_mask=mask, token_type_ids=torch.from_numpy(golden["token_type_ids"]),
                      position_ids=pos)
            lkey = "classifier.hook_out" if kind == "bert-cls" else "unembed.hook_out"
        with torch.no_grad():
            out = model(output_hidden_states=True, output_attentions=True, return_dict=True, **kw)
    finally:
        rec.close()
    if rec.missing:
        res["hook_modules_missing"] = rec.missing
    valid = golden["attention_mask"].astype(bool)
    res["logits"] = compare(out.logits, golden[lkey])
    if out.logits.dim() == 3:
        res["logits_valid_rows"] = compare(out.logits, golden[lkey], rows=valid)
    hooks = {}
    for k, t in rec.acts.items():
        if k in golden.files:
            hooks[k] = compare(t, golden[k])
        else:
            hooks[k] = {"error": "no golden key"}
    atts = getattr(out, "attentions", None)
    if atts:
        for i, a in enumerate(atts):
            hooks["blocks.%d.attn.hook_pattern" % i] = compare(a, golden["blocks.%d.attn.hook_pattern" % i])
    else:
        res["attentions"] = "not returned"
    res["hooks"] = hooks
    hs = getattr(out, "hidden_states", None)
    hsr = []
    if hs is not None:
        if kind == "gpt2":
            want = ["blocks.%d.hook_resid_pre" % i for i in range(L)] + ["ln_final.hook_normalized"]
        else:
            want = ["embed.ln.hook_normalized"] + ["blocks.%d.hook_resid_post" % i for i in range(L)]
        for j, h in enumerate(hs):
            r = {"index": j, "expected": want[j] if j < len(want) else None}
            if r["expected"]:
                r.update(compare(h, golden[r["expected"]]))
            if r.get("rel") is None or r["rel"] > tol:
                bm = best_match(h, golden)
                r["best_match"] = bm[0] if bm else None
                r["best_match_rel"] = bm[1] if bm else None
            hsr.append(r)
        res["hidden_states"] = {"count": len(hs), "expected_count": L + 1, "each": hsr}
    else:
        res["hidden_states"] = "not returned"
    compared = [k for k in golden.files if k in hooks]
    res["golden_keys_not_compared"] = [k for k in golden.files if k not in hooks and k != lkey
                                       and k not in ("input_ids", "attention_mask", "token_type_ids")]
    worst = max(((k, v["rel"]) for k, v in hooks.items() if "rel" in v), key=lambda kv: kv[1], default=(None, None))
    errs = [k for k, v in hooks.items() if "error" in v]
    res["hooks_compared"] = len(compared)
    res["worst_hook"] = {"key": worst[0], "rel": worst[1]}
    hs_ok = all(r.get("rel") is not None and r["rel"] <= tol for r in hsr) if hsr else None
    res["hidden_states_ok"] = hs_ok
    res["numerics_ok"] = bool(res["logits"].get("rel") is not None and res["logits"]["rel"] <= tol
                              and (worst[1] is None or worst[1] <= tol) and not errs)
    if errs:
        res["hook_errors"] = errs
    return res


def run_generate(model, gen, tol):
    res = {"prompts": gen["prompts"], "golden": gen["greedy"], "hf": [], "top5_ids_equal": [], "top5_logits_max_abs": []}
    with torch.no_grad():
        for pr, want, top in zip(gen["prompts"], gen["greedy"], gen["first_step_logits_top5"]):
            ids = list(pr)
            for step in range(gen["max_new_tokens"]):
                lg = model(input_ids=torch.tensor([ids]), use_cache=False).logits[0, -1]
                if step == 0:
                    v, ix = torch.topk(lg, 5)
                    res["top5_ids_equal"].append([int(x) for x in ix] == top["ids"])
                    res["top5_logits_max_abs"].append(float(np.abs(v.double().numpy() - np.array(top["logits"])).max()))
                ids.append(int(torch.argmax(lg)))
            res["hf"].append(ids[len(pr):])
    res["ok"] = res["hf"] == res["golden"] and all(res["top5_ids_equal"]) and max(res["top5_logits_max_abs"]) < 1e-3
    return res


def fmt(r):
    return "-" if r is None else ("%.2e" % r)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    ap.add_argument("--out", required=True, metavar="FILE.json")
    ap.add_argument("--tol", type=float, default=1e-4, help="max rel error for ok (default 1e-4)")
    ap.add_argument("--models", default="", help="comma list of model dirs (default: all)")
    ap.add_argument("--dtypes", default="float64,float32")
    ap.add_argument("--threads", type=int, default=4)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    t0 = time.time()
    report = {"torch": torch.__version__, "numpy": np.__version__, "tol": a.tol, "models": {}}
    try:
        import transformers
        report["transformers"] = transformers.__version__
        log("transformers %s, torch %s" % (transformers.__version__, torch.__version__))
    except Exception as e:  # noqa: BLE001
        report["transformers"] = "unavailable: %s" % e
        log("transformers unavailable: %s" % e)
    os.makedirs(os.path.dirname(os.path.abspath(a.out)) or ".", exist_ok=True)

    def save():
        with open(a.out + ".tmp", "w") as f:
            json.dump(report, f, indent=1, default=str)
        os.replace(a.out + ".tmp", a.out)

    only = [x for x in a.models.split(",") if x]
    dtypes = [getattr(torch, x) for x in a.dtypes.split(",") if x]
    summary = []
    for mdir, gname, kind, seed in MODELS:
        if only and mdir not in only:
            continue
        d = os.path.join(TESTDATA, "models", mdir)
        entry = report["models"].setdefault(mdir, {"golden": gname + ".npz", "kind": kind})
        log("== %s (%s, golden %s.npz)" % (mdir, kind, gname))
        try:
            golden = np.load(os.path.join(TESTDATA, "golden", gname + ".npz"))
            cfg = json.load(open(os.path.join(d, "config.json")))
            ft = file_tensors(d)
        except Exception as e:  # noqa: BLE001
            entry["error"] = "%s: %s" % (type(e).__name__, e)
            log("  ERROR %s" % entry["error"])
            save()
            continue
        try:
            regen = regen_inputs(kind, cfg, seed)
            entry["inputs_regenerated_equal"] = all(np.array_equal(regen[k], golden[k]) for k in regen)
        except Exception as e:  # noqa: BLE001
            entry["inputs_regenerated_equal"] = "error: %s: %s" % (type(e).__name__, e)
        log("  inputs from the npz; regenerated with make_models.py equal: %s" % entry["inputs_regenerated_equal"])
        for dt in dtypes:
            dn = str(dt).replace("torch.", "")
            r = entry.setdefault(dn, {})
            try:
                model, lrec = load_model(classes(kind), d, dt, ft)
                r.update(lrec)
                r.update(run_one(model, kind, golden, cfg, a.tol))
                if mdir in GENERATE:
                    gen = json.load(open(os.path.join(TESTDATA, "golden", GENERATE[mdir] + "_generate.json")))
                    r["generate"] = run_generate(model, gen, a.tol)
                    r["numerics_ok"] = r["numerics_ok"] and r["generate"]["ok"]
                r["hf_loads_file"] = r["load_path"] == "from_pretrained"
                r["ok"] = r["numerics_ok"] and r["hf_loads_file"]
                wh = r["worst_hook"]
                line = ("  %-8s logits rel %s (valid rows %s)  worst of %d hooks %s %s  hidden_states ok=%s"
                        "  weights via %s%s  numerics_ok=%s ok=%s"
                        % (dn, fmt(r["logits"].get("rel")), fmt(r.get("logits_valid_rows", {}).get("rel")),
                           r["hooks_compared"], fmt(wh["rel"]), wh["key"], r["hidden_states_ok"], r["load_path"],
                           ("  generate ok=%s" % r["generate"]["ok"]) if "generate" in r else "",
                           r["numerics_ok"], r["ok"]))
                log(line)
                if r.get("hook_modules_missing"):
                    log("    modules not found (not compared): %s" % r["hook_modules_missing"])
                if r.get("hook_errors"):
                    log("    hook errors: %s" % r["hook_errors"])
                summary.append({"model": mdir, "dtype": dn, "logits_rel": r["logits"].get("rel"),
                                "worst_hook_rel": wh["rel"], "worst_hook": wh["key"], "hooks_compared": r["hooks_compared"],
                                "load_path": r["load_path"], "numerics_ok": r["numerics_ok"], "ok": r["ok"]})
                del model
            except Exception as e:  # noqa: BLE001
                r["error"] = "%s: %s" % (type(e).__name__, e)
                r["traceback"] = traceback.format_exc(limit=6)
                log("  %s ERROR %s" % (dn, r["error"]))
                traceback.print_exc(limit=6)
                summary.append({"model": mdir, "dtype": dn, "error": r["error"], "ok": False})
            save()
    report["summary"] = summary
    report["ok"] = bool(summary) and all(s.get("ok") for s in summary)
    report["seconds"] = round(time.time() - t0, 1)
    save()
    log("\n%-18s %-8s %10s %10s  %-36s %-9s %s" % ("model", "dtype", "logits", "worst", "worst hook", "numerics", "ok"))
    for s in summary:
        if "error" in s:
            log("%-18s %-8s ERROR %s" % (s["model"], s["dtype"], s["error"][:100]))
        else:
            log("%-18s %-8s %10s %10s  %-36s %-9s %s" % (s["model"], s["dtype"], fmt(s["logits_rel"]),
                                                         fmt(s["worst_hook_rel"]), s["worst_hook"], s["numerics_ok"], s["ok"]))
    log("all ok: %s  (%.1f s)  -> %s" % (report["ok"], report["seconds"], a.out))
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
