# PyTorch golden files for interventions and gradients, on the tiny models that
# make_models.py wrote (read back from their committed safetensors files):
#   testdata/golden/interventions.npz + interventions.json
#       the final output of gpt2-tiny / bert-tiny-cls with activation edits applied
#       inside the forward at TransformerLens-named hook points (zero, set, scale,
#       add a steering vector, patch from another prompt, mean over a baseline corpus).
#   testdata/golden/gpt2-tiny_grad.npz, bert-tiny-cls_grad.npz + grads.json
#       the gradient of a scalar metric with respect to every hook activation
#       (except *.hook_scale), with the activations themselves.
#
# Rerun from the repo root with Debian's PyTorch (torch 1.13, numpy 1.24):
#     /usr/bin/python3 testdata/gen/make_interventions.py
# Deterministic (fixed seeds, single-threaded torch, fixed zip timestamps): a rerun
# gives byte-identical files. Everything is computed in float64 with the
# TransformerLens-style forward of ref_models.py (tl_*_forward with `edits`) and
# stored as float32. The script checks itself (see testdata/README.md):
#   - the clean float64 run matches the HF-style float32 forward at every hook;
#   - every edit touches exactly the selected box of the activation;
#   - equivalent edits at other hooks give the same output (z/result/pattern
#     linearity, q vs attn_scores, resid_post vs the next resid_pre, full
#     resid_pre patch == the source run);
#   - causality (GPT-2): logits before the first edited position are unchanged;
#   - a float32 run of each case agrees with the stored float64 result;
#   - gradients agree with central finite differences (float64, ~1e-6 relative)
#     on random coordinates of every hook, and obey the structural identities.

import json
import os
import sys

sys.dont_write_bytecode = True  # keep testdata/gen free of __pycache__
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import numpy as np  # noqa: E402
import torch  # noqa: E402

import make_models as M  # noqa: E402  (loaders and checks only; its main() is not run)
import ref_models as R  # noqa: E402
import st_io  # noqa: E402

torch.set_num_threads(1)
torch.use_deterministic_algorithms(True)

ROOT = os.path.dirname(HERE)  # testdata/
MODELS = os.path.join(ROOT, "models")
GOLDEN = os.path.join(ROOT, "golden")

# npz keys may not contain '/' (the Go npz reader, weights/npy, rejects it), so the
# parts of a key are joined with ':'.
SEP = ":"


def key(*parts):
    return SEP.join(parts)


def f32(t):
    return np.ascontiguousarray(t.detach().to(torch.float32).numpy())


# ----------------------------------------------------------------------------- models

class Model:
    def __init__(self, name):
        self.name = name
        d = os.path.join(MODELS, name)
        self.cfg = json.load(open(os.path.join(d, "config.json")))
        meta, parsed = st_io.read_safetensors(os.path.join(d, "model.safetensors"))
        assert meta == {"format": "pt"}
        self.arch = self.cfg["model_type"]
        if self.arch == "gpt2":
            self.sd32 = M.gpt2_load(parsed, self.cfg)  # strips transformer., drops buffers / tied lm_head
            self.out_hook = "unembed.hook_out"
            self.V = self.cfg["vocab_size"]
        else:
            self.sd32 = M.bert_load(parsed, self.cfg)  # gamma/beta -> weight/bias, drops position_ids
            self.out_hook = "classifier.hook_out"
        self.sd64 = M.to64(self.sd32)
        self.n_layer = self.cfg.get("n_layer", self.cfg.get("num_hidden_layers"))

    def run(self, ids, edits=None, dtype=torch.float64, sd=None):
        """TL-style forward of one unpadded sequence ids [1,T]; returns the hook dict."""
        if sd is None:
            sd = self.sd64 if dtype == torch.float64 else self.sd32
        mask = torch.ones_like(ids)
        if self.arch == "gpt2":
            return R.tl_gpt2_forward(sd, self.cfg, ids, mask, edits=edits)
        return R.tl_bert_forward(sd, self.cfg, ids, torch.zeros_like(ids), mask, "cls", edits=edits)

    def run_hf32(self, ids, hooks):
        mask = torch.ones_like(ids)
        if self.arch == "gpt2":
            return R.hf_gpt2_forward(self.sd32, self.cfg, ids, mask, hooks=hooks)[0]
        return R.hf_bert_forward(self.sd32, self.cfg, ids, torch.zeros_like(ids), mask, "cls", hooks=hooks)[0]

    def random_ids(self, g, T):
        if self.arch == "gpt2":  # random ids below eos, as make_models does
            return torch.randint(0, self.V - 1, (1, T), generator=g)
        # real bert-base-uncased ids: [CLS]=101 w... [SEP]=102, w >= 1996
        w = torch.randint(1996, self.cfg["vocab_size"], (T - 2,), generator=g)
        return torch.cat([torch.tensor([101]), w, torch.tensor([102])]).view(1, T)


# ----------------------------------------------------------------------------- sites

def axis_names(hook):
    """Axes after the batch axis, as the Go side names them (transformer/site.go)."""
    if hook.endswith(("attn.hook_attn_scores", "attn.hook_pattern")):
        return ["head", "pos", "src"]
    if hook.endswith(("attn.hook_q", "attn.hook_k", "attn.hook_v", "attn.hook_z", "attn.hook_result")):
        return ["pos", "head", "i"]
    if hook in ("pooler.hook_out", "classifier.hook_out"):
        return ["i"]
    return ["pos", "i"]


def parse_site(site):
    """'HOOK[pos=P,head=H,src=S,i=I]' -> (hook, {axis: spec string})."""
    hook, _, rest = site.partition("[")
    sels = {}
    if rest:
        assert rest.endswith("]"), site
        for part in rest[:-1].split(","):
            k, v = part.split("=")
            k = {"dest": "pos", "neuron": "i"}.get(k.strip(), k.strip())
            assert k in ("pos", "head", "src", "i") and k not in sels, site
            sels[k] = v.strip()
    return hook.strip(), sels


def resolve(spec, n):
    """Go's Span.resolve: an index (negative from the end) or a half-open range a:b."""
    def absolute(i):
        return i + n if i < 0 else i

    if spec is None or spec == "*":
        lo, hi = 0, n
    elif ":" in spec:
        a, b = spec.split(":")
        lo = absolute(int(a)) if a else 0
        hi = absolute(int(b)) if b else n
    else:
        lo = absolute(int(spec))
        hi = lo + 1
    assert 0 <= lo < hi <= n, (spec, n)
    return lo, hi


def site_box(site, shape):
    """(hook, axes, [(lo,hi)] per axis after batch) for an activation of shape [1, ...]."""
    hook, sels = parse_site(site)
    axes = axis_names(hook)
    assert len(axes) == len(shape) - 1, (site, shape)
    for a in sels:
        assert a in axes, "hook %s has no %s axis" % (hook, a)
    return hook, axes, [resolve(sels.get(a), n) for a, n in zip(axes, shape[1:])]


def make_edit(site, mode, value=None, vec=None, src_act=None, log=None):
    """fn(x) -> edited copy of x, as transformer/intervene.go applies the modes:
    zero; scale/set by a scalar; add a vector along the last axis; patch from the
    same hook's activation in another run; mean: a per-position vector (the
    activation's shape without batch and pos), broadcast over the selected positions."""
    hook, _ = parse_site(site)

    def fn(x):
        _, axes, box = site_box(site, tuple(x.shape))
        idx = (slice(None),) + tuple(slice(lo, hi) for lo, hi in box)
        y = x.clone()
        if mode == "zero":
            y[idx] = 0.0
        elif mode == "scale":
            y[idx] = y[idx] * value
        elif mode == "set":
            y[idx] = value
        elif mode == "add":
            y[idx] = y[idx] + vec.to(x.dtype)[idx[-1]]
        elif mode == "patch":
            assert src_act.shape == x.shape
            y[idx] = src_act.to(x.dtype)[idx]
        elif mode == "mean":
            assert axes[0] == "pos" and tuple(vec.shape) == tuple(x.shape[2:])
            y[idx] = vec.to(x.dtype)[idx[2:]]
        else:
            raise ValueError(mode)
        if log is not None:
            log.append((site, mode, x, y, box))
        return y

    return hook, fn


def build_edits(ivs, log=None):
    edits = {}
    for iv in ivs:
        hook, fn = make_edit(log=log, **iv)
        if hook in edits:  # several sites on one hook: apply in order
            prev = edits[hook]
            edits[hook] = (lambda f, g: (lambda x: g(f(x))))(prev, fn)
        else:
            edits[hook] = fn
    return edits


def check_edit_log(log):
    """Each edit changed exactly its box (explicit per-axis masks), as its mode says."""
    for site, mode, x, y, box in log:
        x, y = x.detach(), y.detach()
        mask = torch.ones(x.shape[1:], dtype=torch.bool)
        for ax, (lo, hi) in enumerate(box):
            m = torch.zeros(x.shape[ax + 1], dtype=torch.bool)
            m[lo:hi] = True
            mask &= m.view([-1 if a == ax else 1 for a in range(len(box))])
        mask = mask.unsqueeze(0).expand_as(x)
        assert torch.equal(x[~mask], y[~mask]), (site, "changed outside its box")
        n = 1
        for lo, hi in box:
            n *= hi - lo
        assert int(mask.sum()) == n
        if mode == "zero":
            assert bool((y[mask] == 0).all()), site
        elif mode == "scale":
            assert not torch.equal(x[mask], y[mask]), site


# ----------------------------------------------------------------------------- interventions

CASES = [
    # (case, only for arch or None, [(site, mode, value or None, source kind or None)], description)
    ("a", None, [("blocks.1.mlp.hook_post[pos=3,i=17]", "zero", None, None)], "zero one MLP neuron at one position"),
    ("b", None, [("blocks.0.attn.hook_z[head=2]", "patch", None, "patch")],
     "patch head 2's z at every position from the run of patch_source_ids"),
    ("c", None, [("blocks.0.hook_resid_post", "add", None, "steer")], "add the steering vector at every position"),
    ("d", None, [("blocks.1.attn.hook_pattern[head=1]", "scale", 0.5, None)], "scale head 1's attention pattern by 0.5"),
    ("e", None, [("blocks.0.hook_resid_mid[pos=-1,i=0:10]", "set", 1.5, None)],
     "set the first 10 residual dims at the last position to 1.5"),
    ("f", None, [("blocks.1.mlp.hook_post[pos=2]", "mean", None, "mean")],
     "replace position 2 with the mean of blocks.1.mlp.hook_post over every token of the baseline corpus"),
    ("g", None, [("blocks.1.attn.hook_q[pos=1:4,head=0]", "scale", 2.0, None)],
     "scale head 0's queries at positions 1..3 by 2"),
    ("h", "gpt2", [("blocks.1.mlp.hook_post[pos=3,i=17]", "zero", None, None),
                   ("blocks.0.hook_resid_post", "add", None, "steer")], "cases a and c together"),
    # BERT's classifier reads only position 0 of the last block, so a, f and g (last
    # block, positions != 0) leave its logits exactly unchanged; these variants reach it.
    ("a0", "bert", [("blocks.1.mlp.hook_post[pos=0,i=17]", "zero", None, None)], "as a, at position 0 ([CLS])"),
    ("f0", "bert", [("blocks.1.mlp.hook_post[pos=0]", "mean", None, "mean")], "as f, at position 0 ([CLS])"),
    ("g0", "bert", [("blocks.1.attn.hook_q[pos=0:4,head=0]", "scale", 2.0, None)], "as g, positions 0..3"),
]

T_PROMPT = 8
BASELINE_LENGTHS = (5, 7, 11)


def interventions_for(model, seed, arrays, cases_json):
    name = model.name
    g = torch.Generator().manual_seed(seed)
    ids = model.random_ids(g, T_PROMPT)
    src_ids = model.random_ids(g, T_PROMPT)
    while torch.equal(src_ids, ids):
        src_ids = model.random_ids(g, T_PROMPT)
    D = model.cfg.get("n_embd", model.cfg.get("hidden_size"))
    steer = torch.randn(D, generator=g, dtype=torch.float64)
    baseline = [model.random_ids(g, n) for n in BASELINE_LENGTHS]
    out_hook = model.out_hook

    # clean run; guard: the HF-style float32 forward agrees at every hook
    clean = model.run(ids)
    hf = {}
    model.run_hf32(ids, hf)
    worst = M.compare_hooks(hf, clean, name + " clean")
    print("  %s clean: HF f32 vs TL f64 max rel err %.2e" % (name, worst))
    src_run = model.run(src_ids)

    # baseline mean of blocks.1.mlp.hook_post over every token of every sequence
    mean_hook = "blocks.1.mlp.hook_post"
    acts = [model.run(b)[mean_hook][0] for b in baseline]  # [T_i, d_mlp] each
    total = sum(a.sum(0) for a in acts)
    mean = total / sum(a.shape[0] for a in acts)
    assert torch.allclose(mean, torch.cat(acts, 0).mean(0), rtol=0, atol=1e-13)

    arrays[key(name, "input_ids")] = ids.numpy()
    arrays[key(name, "patch_source_ids")] = src_ids.numpy()
    arrays[key(name, "steer")] = f32(steer)
    for j, b in enumerate(baseline):
        arrays[key(name, "baseline_%d" % j)] = b.numpy()
    arrays[key(name, "clean", "logits")] = f32(clean[out_hook])
    cases_json.append({"model": name, "case": "clean", "description": "no intervention",
                       "input_key": key(name, "input_ids"), "interventions": [],
                       "output_key": key(name, "clean", "logits"), "changes_output": False})

    clean_out = clean[out_hook]
    for case, only, ivs_spec, desc in CASES:
        if only is not None and only != model.arch:
            continue
        ivs, ivs_json = [], []
        for site, mode, value, kind in ivs_spec:
            iv = {"site": site, "mode": mode}
            j = {"site": site, "mode": mode, "value": value, "source": None}
            if value is not None:
                iv["value"] = value
            if kind == "steer":
                iv["vec"] = steer
                j["source"] = key(name, "steer")
            elif kind == "patch":
                hook, _ = parse_site(site)
                iv["src_act"] = src_run[hook]
                j["source"] = key(name, "patch_source_ids")
                j["source_act"] = key(name, case, "source_act")
                arrays[key(name, case, "source_act")] = f32(src_run[hook])
            elif kind == "mean":
                iv["vec"] = mean
                j["source"] = key(name, case, "mean")
                j["baseline"] = [key(name, "baseline_%d" % k) for k in range(len(baseline))]
                arrays[key(name, case, "mean")] = f32(mean)
            ivs.append(iv)
            ivs_json.append(j)
        log = []
        out = model.run(ids, build_edits(ivs, log))
        check_edit_log(log)
        assert len(log) == len(ivs)
        logits = out[out_hook]
        # guard: float32 run of the same edits agrees
        out32 = model.run(ids, build_edits(ivs), dtype=torch.float32)[out_hook]
        err32 = (out32.double() - logits).abs().max().item() / (1 + logits.abs().max().item())
        assert err32 < 2e-5, (name, case, err32)
        diff = (logits - clean_out).abs().max().item()
        # the last block's output at every position must move (a visible edit) ...
        last = "blocks.%d.hook_resid_post" % (model.n_layer - 1)
        assert (out[last] - clean[last]).abs().max().item() > 1e-3, (name, case, "edit has no effect")
        # ... and so must the final output, except where BERT's classifier cannot see it
        affects = diff > 0
        if model.arch == "bert" and case in ("a", "f", "g"):
            assert diff == 0.0, (name, case, diff)
        else:
            assert diff > 1e-3, (name, case, "intervention has no visible effect", diff)
        # guard (GPT-2): causal, positions before the first edited one are untouched
        if model.arch == "gpt2":
            first = min(box[axis_names(parse_site(site)[0]).index("pos")][0] for site, _, _, _, box in log)
            if first > 0:
                assert torch.allclose(logits[:, :first], clean_out[:, :first], rtol=0, atol=1e-12), (name, case)
        print("  %s case %s: max |logits - clean| %.4f (f32 vs f64 %.1e)" % (name, case, diff, err32))
        k = key(name, case, "logits")
        arrays[k] = f32(logits)
        cases_json.append({"model": name, "case": case, "description": desc,
                           "input_key": key(name, "input_ids"), "interventions": ivs_json, "output_key": k,
                           "changes_output": affects})

    equivalences(model, ids, src_ids, src_run, steer, arrays)


def equivalences(model, ids, src_ids, src_run, steer, arrays):
    """Equivalent edits at different hooks must give the same output: checks the
    head/pos/src axis conventions and the edit machinery independently of one site."""
    name, out_hook = model.name, model.out_hook

    last = "blocks.%d.hook_resid_post" % (model.n_layer - 1)

    def out(ivs):  # the last block's output at every position, and the final output
        o = model.run(ids, build_edits(ivs))
        return torch.cat([o[last].flatten(), o[out_hook].flatten()])

    def same(a, b, what, tol=1e-10):
        err = (a - b).abs().max().item()
        assert err < tol, (name, what, err)

    # b: z head 2 patch == result head 2 patch (result_h = z_h W_O_h)
    same(out([dict(site="blocks.0.attn.hook_z[head=2]", mode="patch", src_act=src_run["blocks.0.attn.hook_z"])]),
         out([dict(site="blocks.0.attn.hook_result[head=2]", mode="patch", src_act=src_run["blocks.0.attn.hook_result"])]),
         "z vs result patch")
    # c: resid_post of block 0 is resid_pre of block 1
    same(out([dict(site="blocks.0.hook_resid_post", mode="add", vec=steer)]),
         out([dict(site="blocks.1.hook_resid_pre", mode="add", vec=steer)]), "resid_post vs resid_pre")
    # d: pattern head 1 x0.5 == z head 1 x0.5 == result head 1 x0.5
    d = out([dict(site="blocks.1.attn.hook_pattern[head=1]", mode="scale", value=0.5)])
    same(d, out([dict(site="blocks.1.attn.hook_z[head=1]", mode="scale", value=0.5)]), "pattern vs z scale")
    same(d, out([dict(site="blocks.1.attn.hook_result[head=1]", mode="scale", value=0.5)]), "pattern vs result scale")
    # d': pattern destination rows 2..4 of head 1 == z at positions 2..4 of head 1 (pos = destination)
    same(out([dict(site="blocks.1.attn.hook_pattern[head=1,pos=2:5]", mode="scale", value=0.5)]),
         out([dict(site="blocks.1.attn.hook_z[pos=2:5,head=1]", mode="scale", value=0.5)]), "pattern pos is destination")
    # g: q rows 1..3 of head 0 x2 == attn_scores destination rows 1..3 of head 0 x2
    same(out([dict(site="blocks.1.attn.hook_q[pos=1:4,head=0]", mode="scale", value=2.0)]),
         out([dict(site="blocks.1.attn.hook_attn_scores[head=0,pos=1:4]", mode="scale", value=2.0)]), "q vs scores")
    # k of source position 1 of head 0 x2 == attn_scores src column 1 of head 0 x2
    same(out([dict(site="blocks.1.attn.hook_k[pos=1,head=0]", mode="scale", value=2.0)]),
         out([dict(site="blocks.1.attn.hook_attn_scores[head=0,src=1]", mode="scale", value=2.0)]), "k vs scores src")
    # a full resid_pre patch reproduces the source run
    same(out([dict(site="blocks.0.hook_resid_pre", mode="patch", src_act=src_run["blocks.0.hook_resid_pre"])]),
         torch.cat([src_run[last].flatten(), src_run[out_hook].flatten()]), "full patch == source run")
    # an identity edit everywhere leaves the run unchanged
    clean = model.run(ids)
    ident = model.run(ids, {k: (lambda x: x * 1.0) for k in clean})
    for k in clean:
        assert torch.equal(ident[k], clean[k]), (name, "identity edit changed", k)
    print("  %s: equivalence checks ok" % name)


# ----------------------------------------------------------------------------- gradients

def grads_for(model, seed):
    name = model.name
    g = torch.Generator().manual_seed(seed)
    ids = model.random_ids(g, T_PROMPT)
    sd = {k: v.clone().requires_grad_(True) for k, v in model.sd64.items()}  # so every hook is a graph node

    if model.arch == "gpt2":
        lg = model.run(ids, sd=sd)[model.out_hook][0, -1].detach()
        top = torch.topk(lg, 2).indices.tolist()
        A, B = int(top[0]), int(top[1])
        tokens = [A, B]

        def metric_of(out):
            lo = out["unembed.hook_out"]
            return lo[0, -1, A] - lo[0, -1, B]
        desc = "logits[0,-1,A] - logits[0,-1,B] with [A,B] = metric_tokens (the top-2 tokens at the last position)"
    else:
        tokens = None

        def metric_of(out):
            lo = out["classifier.hook_out"]
            return lo[0, 1] - lo[0, 0]
        desc = "classifier margin logits[0,1] - logits[0,0] (POSITIVE - NEGATIVE)"

    out = model.run(ids, sd=sd)
    metric = metric_of(out)
    names = [k for k in out if not k.endswith("hook_scale")]
    skipped = [k for k in out if k.endswith("hook_scale")]
    uniq = []
    for k in names:
        if all(out[k] is not u for u in uniq):
            uniq.append(out[k])
    gr = torch.autograd.grad(metric, uniq, allow_unused=False)
    grads = {}
    for k in names:
        grads[k] = next(gg for u, gg in zip(uniq, gr) if u is out[k])
        assert grads[k].shape == out[k].shape, k
    acts = {k: out[k].detach() for k in names}
    metric = metric.item()

    check_grads(model, ids, names, acts, grads, metric_of, metric, seed)

    arrays = {"input_ids": ids.numpy()}
    if model.arch == "bert":
        arrays["token_type_ids"] = torch.zeros_like(ids).numpy()
    arrays["metric"] = np.array(metric, dtype=np.float32)
    if tokens is not None:
        arrays["metric_tokens"] = np.array(tokens, dtype=np.int64)
    for k in names:
        arrays["act" + SEP + k] = f32(acts[k])
    for k in names:
        arrays["grad" + SEP + k] = f32(grads[k])
    fn = name + "_grad.npz"
    st_io.savez_deterministic(os.path.join(GOLDEN, fn), arrays)
    info = {"file": fn, "metric": desc, "metric_value": metric, "metric_tokens": tokens,
            "input_ids": ids[0].tolist(), "hooks": names, "skipped": skipped}
    return info, list(arrays)


def check_grads(model, ids, names, acts, grads, metric_of, metric, seed):
    """Central finite differences in float64 at random coordinates of every hook
    (perturbing the activation at its hook point), plus structural identities."""
    g = torch.Generator().manual_seed(seed + 1)
    h = 1e-5
    worst = 0.0
    n_checked = 0
    for k in names:
        x = acts[k]
        gmax = grads[k].abs().max().item()
        coords = [int(c) for c in torch.randint(0, x.numel(), (3,), generator=g)]
        # also the largest-gradient coordinate
        coords.append(int(grads[k].abs().flatten().argmax()))
        for c in coords:
            if torch.isinf(x.flatten()[c]):
                continue  # masked score, checked below

            def f(delta):
                def edit(t):
                    t = t.clone(memory_format=torch.contiguous_format)  # C order, as flatten()
                    t.view(-1)[c] += delta
                    return t
                return metric_of(model.run(ids, {k: edit})).item()
            fd = (f(h) - f(-h)) / (2 * h)
            an = grads[k].flatten()[c].item()
            err = abs(fd - an) / max(abs(an), 1e-2 * gmax, 1e-8)
            worst = max(worst, err)
            n_checked += 1
            assert err < 1e-6, (model.name, k, c, fd, an, err)
    # structural identities
    emb = "hook_embed" if model.arch == "gpt2" else "embed.hook_embed"
    pos = "hook_pos_embed" if model.arch == "gpt2" else "embed.hook_pos_embed"
    assert torch.equal(grads[emb], grads[pos])
    if model.arch == "bert":
        assert torch.equal(grads[emb], grads["embed.hook_token_type_embed"])
    L = model.n_layer
    for i in range(L):
        n = "blocks.%d." % i
        ga = grads[n + "hook_attn_out"]
        gres = grads[n + "attn.hook_result"]
        assert torch.equal(gres, ga.unsqueeze(2).expand_as(gres)), "result grad is attn_out's per head"
        sc = acts[n + "attn.hook_attn_scores"]
        assert bool((grads[n + "attn.hook_attn_scores"][torch.isinf(sc)] == 0).all()), "masked score grads are 0"
        if model.arch == "gpt2":
            assert bool(torch.isinf(sc).any())
    for i in range(L - 1):
        assert torch.equal(grads["blocks.%d.hook_resid_post" % i], grads["blocks.%d.hook_resid_pre" % (i + 1)])
    # the metric's own value from the float32 HF-style forward
    hf = {}
    model.run_hf32(ids, hf)
    assert abs(metric_of(hf) - metric) < 1e-4 * (1 + abs(metric))
    print("  %s grads: %d finite-difference checks, worst rel err %.1e, metric %.4f"
          % (model.name, n_checked, worst, metric))


# ----------------------------------------------------------------------------- main

def write_json(path, obj):
    with open(path, "w") as f:
        f.write(json.dumps(obj, indent=2) + "\n")


def main():
    gpt2 = Model("gpt2-tiny")
    bert = Model("bert-tiny-cls")

    arrays, cases = {}, []
    interventions_for(gpt2, 4001, arrays, cases)
    interventions_for(bert, 4005, arrays, cases)
    st_io.savez_deterministic(os.path.join(GOLDEN, "interventions.npz"), arrays)
    write_json(os.path.join(GOLDEN, "interventions.json"), cases)
    z = np.load(os.path.join(GOLDEN, "interventions.npz"))
    assert list(z.files) == list(arrays)
    for c in cases:
        assert c["output_key"] in z.files and c["input_key"] in z.files
        for iv in c["interventions"]:
            for f in ("source", "source_act"):
                assert iv.get(f) is None or iv[f] in z.files
            for b in iv.get("baseline", []):
                assert b in z.files

    info = {}
    for model, seed in ((gpt2, 5001), (bert, 5005)):
        info[model.name], ks = grads_for(model, seed)
        z = np.load(os.path.join(GOLDEN, info[model.name]["file"]))
        assert list(z.files) == ks
        for k in ks:
            assert z[k].dtype in (np.float32, np.int64), (k, z[k].dtype)
    write_json(os.path.join(GOLDEN, "grads.json"), info)
    print("ok")


if __name__ == "__main__":
    main()
