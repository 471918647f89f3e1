"""PyTorch / Hugging Face GPU anchors for fx's CUDA backend, on the same weights as fx.

Writes the random test weights (CPU torch, no transformers needed):

    python3 bench/gpu/torch_gpu_bench.py --make-gpt2 DIR   # GPT-2 small shape (bench/torch_cpu_forward.make)
    python3 bench/gpu/torch_gpu_bench.py --make-bert DIR   # BERT-base BertForSequenceClassification

and times, on cuda:0 (needs transformers >= 4.5x, v5 preferred, offline):

    python3 bench/gpu/torch_gpu_bench.py --run --gpt2 DIR [--bert DIR] --out FILE.json \\
        [--compile] [--budget SECONDS]

The make and run flags combine in one call: `--make-gpt2 D --run` runs on D. An
existing DIR with a model.safetensors is kept unless --force.

What --run measures (every time is the median over reps of CUDA events around
one call, after warm-up; each rep's events enclose only that call):
  * ceilings: device-to-device copy of 1 GiB (bytes read + written / time) and an
    8192^3 bf16 matmul;
  * GPT-2 small (GPT2LMHeadModel, use_cache=False, logits of every position) at
    B=1,T=128 and B=8,T=512; one decode step with the KV cache after a 128-token
    prefill (DynamicCache.crop(128) after each rep, outside the timed window, so
    every rep is the step 128 -> 129); 32 greedy decode steps after the prefill
    (wall clock, synchronized, ms per step) -- each with attn=sdpa (HF's default)
    and attn=eager, in fp32 with TF32 off ("fp32"), fp32 with TF32 on ("tf32")
    and bf16 autocast ("bf16amp");
  * BERT-base BertForSequenceClassification at B=32,T=128, same precisions;
  * torch.matmul x[M,K] @ w[K,N] at GPT-2 shapes in fp32, tf32, bf16 (plus the
    lm_head layout x @ w[N,K]^T), random normal inputs, several input sets rotated
    when one set fits in L2;
  * with --compile: torch.compile (mode default, dynamic=False) of the GPT-2
    forward and decode step; the first call (compile) is reported separately.
Exit status 1 when any row failed (its row says "error: ..."), else 0.
Sections run in that order, each in its own try/except; a section or case that
would start after --budget seconds is skipped and listed as skipped. The JSON
(a list of rows {"bench", "ms", "tflops"?, "note"?} after a header row) is
rewritten after every row, so a killed run keeps what it measured.

Row names ({P} = fp32 | tf32 | bf16amp, {A} = sdpa | eager as the model reports it):
  header (torch, cuda, transformers, device, sm_count, mem_gib, tf32_check_rel_err, ...)
  CopyD2D/bytes=1GiB (+ gbps)              MatMulPeak/bf16/8192^3
  GPT2SmallForward/B=1,T=128/{P}/attn={A}  GPT2SmallForward/B=8,T=512/{P}/attn={A}
  GPT2SmallDecodeStep/cache=128/{P}/attn={A}
  GPT2SmallDecode32/cache=128/{P}/attn={A} (ms per step)
  BERTBaseCls/B=32,T=128/{P}/attn={A}
  MatMul/M={1,128,512,4096},K=768,N=2304/{fp32,tf32,bf16} (also K,N = 768,3072 3072,768
      768,50257 and "768,50257,transW"; + ms_back_to_back)
  with --compile: GPT2SmallCompile/B=1,T=128/{fp32,bf16amp}/attn=sdpa (ms = first call),
      GPT2SmallForward/.../attn=sdpa/compile, GPT2SmallCompile/step,cache=128/...,
      GPT2SmallDecodeStep/cache=128/{fp32,bf16amp}/attn=sdpa/compile
  on failure: NAME with "ms": null and "note": "error: ..." (also section:NAME,
      GPT2Small/attn={A}/load, BERTBaseCls/attn={A}/load); last row "skipped" when
      the budget cut something.

--device cpu --smoke runs the ceiling and matmul sections on tiny sizes with
wall-clock timing: a syntax/logic smoke test for machines without a GPU.
"""
import argparse
import json
import math
import os
import platform
import statistics
import struct
import sys
import time
import traceback

sys.dont_write_bytecode = True  # keep bench/ and testdata/gen free of __pycache__
HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "bench"))
sys.path.insert(0, os.path.join(ROOT, "testdata", "gen"))

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import torch  # noqa: E402

GPT2_VOCAB = 50257
BERT_VOCAB = 30522
L2_BYTES = 50 * 2**20  # H100 L2; H200 is the same


def log(*a):
    print(*a, flush=True)


# ----------------------------------------------------------------------------- weights

def make_gpt2(d, force=False):
    if os.path.exists(os.path.join(d, "model.safetensors")) and not force:
        log("make-gpt2: %s exists, kept (--force to rewrite)" % d)
        return
    import torch_cpu_forward  # bench/torch_cpu_forward.py
    t0 = time.time()
    torch_cpu_forward.make(d)
    log("make-gpt2: wrote %s in %.1f s" % (d, time.time() - t0))


BERT_BASE = {
    "architectures": ["BertForSequenceClassification"],
    "attention_probs_dropout_prob": 0.1,
    "classifier_dropout": None,
    "hidden_act": "gelu",
    "hidden_dropout_prob": 0.1,
    "hidden_size": 768,
    "id2label": {"0": "LABEL_0", "1": "LABEL_1"},
    "initializer_range": 0.02,
    "intermediate_size": 3072,
    "label2id": {"LABEL_0": 0, "LABEL_1": 1},
    "layer_norm_eps": 1e-12,
    "max_position_embeddings": 512,
    "model_type": "bert",
    "num_attention_heads": 12,
    "num_hidden_layers": 12,
    "pad_token_id": 0,
    "position_embedding_type": "absolute",
    "torch_dtype": "float32",
    "type_vocab_size": 2,
    "use_cache": True,
    "vocab_size": BERT_VOCAB,
}


def bert_tensors(cfg, seed=2):
    """BertForSequenceClassification state_dict (HF names and order): N(0, 0.02)
    matrices and embeddings, LayerNorm ones/zeros, biases zero."""
    g = torch.Generator().manual_seed(seed)
    D, I, L = cfg["hidden_size"], cfg["intermediate_size"], cfg["num_hidden_layers"]
    V, P, TV = cfg["vocab_size"], cfg["max_position_embeddings"], cfg["type_vocab_size"]
    nl = len(cfg["id2label"])

    def n(*shape):
        return torch.randn(*shape, generator=g) * 0.02

    e = "bert.embeddings."
    ts = [(e + "word_embeddings.weight", n(V, D)), (e + "position_embeddings.weight", n(P, D)),
          (e + "token_type_embeddings.weight", n(TV, D)),
          (e + "LayerNorm.weight", torch.ones(D)), (e + "LayerNorm.bias", torch.zeros(D))]
    for i in range(L):
        p = "bert.encoder.layer.%d." % i
        for nm in ("query", "key", "value"):
            ts += [(p + "attention.self.%s.weight" % nm, n(D, D)), (p + "attention.self.%s.bias" % nm, torch.zeros(D))]
        ts += [(p + "attention.output.dense.weight", n(D, D)), (p + "attention.output.dense.bias", torch.zeros(D)),
               (p + "attention.output.LayerNorm.weight", torch.ones(D)),
               (p + "attention.output.LayerNorm.bias", torch.zeros(D)),
               (p + "intermediate.dense.weight", n(I, D)), (p + "intermediate.dense.bias", torch.zeros(I)),
               (p + "output.dense.weight", n(D, I)), (p + "output.dense.bias", torch.zeros(D)),
               (p + "output.LayerNorm.weight", torch.ones(D)), (p + "output.LayerNorm.bias", torch.zeros(D))]
    ts += [("bert.pooler.dense.weight", n(D, D)), ("bert.pooler.dense.bias", torch.zeros(D)),
           ("classifier.weight", n(nl, D)), ("classifier.bias", torch.zeros(nl))]
    return ts


def make_bert(d, force=False, cfg=None):
    if os.path.exists(os.path.join(d, "model.safetensors")) and not force:
        log("make-bert: %s exists, kept (--force to rewrite)" % d)
        return
    from st_io import write_safetensors  # testdata/gen/st_io.py
    cfg = dict(cfg or BERT_BASE)
    t0 = time.time()
    ts = bert_tensors(cfg)
    os.makedirs(d, exist_ok=True)
    write_safetensors(os.path.join(d, "model.safetensors"), [(k, t, "F32") for k, t in ts])
    with open(os.path.join(d, "config.json"), "w") as f:
        f.write(json.dumps(cfg, indent=2, sort_keys=True) + "\n")
    log("make-bert: wrote %s (%d tensors, %.1f M params) in %.1f s"
        % (d, len(ts), sum(t.numel() for _, t in ts) / 1e6, time.time() - t0))


_READ_CACHE = {}


def read_tensor(path, name):
    """One F32 tensor from a safetensors file, by seeking (no full read); cached."""
    key = (os.path.abspath(path), name)
    if key not in _READ_CACHE:
        _READ_CACHE[key] = _read_tensor(path, name)
    return _READ_CACHE[key]


def _read_tensor(path, name):
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        h = json.loads(f.read(n))
        info = h[name]
        assert info["dtype"] == "F32", info
        b, e = info["data_offsets"]
        f.seek(8 + n + b)
        buf = bytearray(f.read(e - b))
    return torch.frombuffer(buf, dtype=torch.float32).reshape(info["shape"])


def hf_from_pretrained(cls, d, dtype, **kw):
    """cls.from_pretrained with loading info, across transformers 5 (dtype=) and
    4.x (torch_dtype=); info is {} where output_loading_info is refused."""
    last = None
    for dkey in ("dtype", "torch_dtype"):
        for info in (True, False):
            try:
                r = cls.from_pretrained(d, **{dkey: dtype}, output_loading_info=info, **kw) if info else \
                    cls.from_pretrained(d, **{dkey: dtype}, **kw)
            except TypeError as e:
                last = e
                continue
            m, li = r if info else (r, {})
            if next(m.parameters()).dtype != dtype:
                m = m.to(dtype)
            return m, dict(li or {})
    raise last


# ----------------------------------------------------------------------------- runner

class Runner:
    def __init__(self, args):
        self.a = args
        self.dev = torch.device(args.device)
        self.cuda = self.dev.type == "cuda"
        self.t0 = time.time()
        self.rows = []
        self.skipped = []
        self.vocab = GPT2_VOCAB
        # model shapes; --smoke shrinks them for a CPU run of tiny models
        self.fwd_shapes = ((1, 16), (2, 32)) if args.smoke else ((1, 128), (8, 512))
        self.prompt_len = 16 if args.smoke else 128
        self.bert_shape = (4, 16) if args.smoke else (32, 128)

    # --- bookkeeping
    def left(self):
        return self.a.budget - (time.time() - self.t0)

    def have(self, need, what):
        if self.left() < need:
            log("  skip %s: %.0f s left of the budget, needs ~%.0f" % (what, self.left(), need))
            self.skipped.append(what)
            return False
        return True

    def add(self, bench, ms, tflops=None, note=None, **extra):
        row = {"bench": bench, "ms": None if ms is None else round(float(ms), 5)}
        if tflops is not None:
            row["tflops"] = round(float(tflops), 3)
        if note:
            row["note"] = note
        row.update(extra)
        self.rows.append(row)
        log("  %-58s %10s ms %s%s" % (bench, "-" if ms is None else "%.4f" % ms,
                                      "" if tflops is None else "%8.2f TFLOP/s " % tflops, note or ""))
        self.save()

    def err(self, bench, e):
        msg = "%s: %s" % (type(e).__name__, str(e).strip().splitlines()[0][:300] if str(e).strip() else "")
        log("  ERROR %s: %s" % (bench, msg))
        traceback.print_exc(limit=4)
        sys.stdout.flush()
        self.add(bench, None, note="error: " + msg)

    def save(self):
        if not self.a.out:
            return
        rows = list(self.rows)
        if self.skipped:
            rows.append({"bench": "skipped", "ms": None, "note": "; ".join(self.skipped)})
        tmp = self.a.out + ".tmp"
        with open(tmp, "w") as f:
            json.dump(rows, f, indent=1)
        os.replace(tmp, self.a.out)

    def sync(self):
        if self.cuda:
            torch.cuda.synchronize()

    # --- timing
    def reps_for(self, est_ms):
        if est_ms < 2.0:
            return self.a.reps_small
        if est_ms < 60.0:
            return self.a.reps_big
        return max(5, self.a.reps_big // 3)

    def time_fn(self, fn, after=None, reps=None, warmup=None, stream=False):
        """Median and min ms of fn(i) over reps, and the reps; after(i) runs
        after each rep's end event (not timed). Warm-up calls first; one more
        synchronized call gives the estimate that picks reps when reps is None.
        stream=True: also returns the mean ms of the same reps run back to back
        between a single pair of events (throughput, launch gaps hidden)."""
        warmup = self.a.warmup if warmup is None else warmup
        for i in range(warmup):
            fn(i)
            if after:
                after(i)
        self.sync()
        t = time.perf_counter()
        fn(warmup)
        self.sync()
        est = (time.perf_counter() - t) * 1e3
        if after:
            after(warmup)
        reps = reps or self.reps_for(est)
        ts = []
        if self.cuda:
            ev = [(torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)) for _ in range(reps)]
            self.sync()
            for i in range(reps):
                ev[i][0].record()
                fn(i)
                ev[i][1].record()
                if after:
                    after(i)
            self.sync()
            ts = [s.elapsed_time(e) for s, e in ev]
        else:
            for i in range(reps):
                t = time.perf_counter()
                fn(i)
                ts.append((time.perf_counter() - t) * 1e3)
                if after:
                    after(i)
        if not stream:
            return statistics.median(ts), min(ts), reps
        if self.cuda:
            s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            self.sync()
            s.record()
            for i in range(reps):
                fn(i)
            e.record()
            self.sync()
            back = s.elapsed_time(e) / reps
        else:
            t = time.perf_counter()
            for i in range(reps):
                fn(i)
            back = (time.perf_counter() - t) * 1e3 / reps
        return statistics.median(ts), min(ts), reps, back

    # --- precision
    def set_tf32(self, on):
        """Legacy flags first (what the brief asks); the new fp32_precision API
        only when the legacy setters refuse."""
        try:
            torch.backends.cuda.matmul.allow_tf32 = on
            torch.backends.cudnn.allow_tf32 = on
        except Exception as e:  # noqa: BLE001
            log("  legacy allow_tf32 refused (%s); using fp32_precision" % e)
            mode = "tf32" if on else "ieee"
            torch.backends.cuda.matmul.fp32_precision = mode
            torch.backends.cudnn.conv.fp32_precision = mode

    def prec_ctx(self, prec):
        """Sets the TF32 flags for prec and returns the autocast context."""
        import contextlib
        self.set_tf32(prec == "tf32")
        if prec == "bf16amp":
            return torch.autocast(self.dev.type, dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def tf32_check(self):
        """Relative error of a 1024^3 fp32 matmul vs float64 with TF32 off and on:
        shows which mode the flags really select (~1e-6 off, ~1e-3 on)."""
        n = 256 if self.a.smoke else 1024
        g = torch.Generator(device="cpu").manual_seed(0)
        a = torch.randn(n, n, generator=g).to(self.dev)
        b = torch.randn(n, n, generator=g).to(self.dev)
        ref = a.double() @ b.double()
        out = {}
        for on in (False, True):
            self.set_tf32(on)
            c = a @ b
            out["on" if on else "off"] = float(((c.double() - ref).abs().max() / ref.abs().max()).item())
        self.set_tf32(False)
        return out

    # --- sections
    def header(self):
        h = {"bench": "header", "ms": None, "torch": torch.__version__, "cuda": torch.version.cuda,
             "python": platform.python_version(), "device_type": self.dev.type, "budget_s": self.a.budget,
             "argv": sys.argv[1:]}
        try:
            import transformers
            h["transformers"] = transformers.__version__
        except Exception as e:  # noqa: BLE001
            h["transformers"] = "unavailable: %s" % e
        if self.cuda:
            p = torch.cuda.get_device_properties(self.dev)
            h.update(device=torch.cuda.get_device_name(self.dev), sm_count=p.multi_processor_count,
                     mem_gib=round(p.total_memory / 2**30, 1), capability="%d.%d" % (p.major, p.minor),
                     cudnn=torch.backends.cudnn.version())
        else:
            h.update(device=platform.processor() or "cpu", threads=torch.get_num_threads())
        try:
            h["tf32_check_rel_err"] = self.tf32_check()
        except Exception as e:  # noqa: BLE001
            h["tf32_check_rel_err"] = "error: %s" % e
        self.rows.append(h)
        log("header: %s" % json.dumps(h))
        self.save()

    def ceilings(self):
        log("== ceilings")
        nbytes = (2**20 if self.a.smoke else 2**30)
        name = "CopyD2D/bytes=%s" % ("1MiB" if self.a.smoke else "1GiB")
        try:
            x = torch.empty(nbytes // 4, dtype=torch.float32, device=self.dev).normal_()
            y = torch.empty_like(x)
            med, mn, reps = self.time_fn(lambda i: y.copy_(x), reps=20)
            gbps = 2 * nbytes / (med * 1e-3) / 1e9
            self.add(name, med, note="%.0f GB/s read+written (best %.0f); reps=%d" % (gbps, 2 * nbytes / (mn * 1e-3) / 1e9, reps),
                     gbps=round(gbps, 1))
            del x, y
        except Exception as e:  # noqa: BLE001
            self.err(name, e)
        n = 512 if self.a.smoke else 8192
        dt = torch.bfloat16 if self.cuda else torch.float32
        name = "MatMulPeak/%s/%d^3" % ("bf16" if self.cuda else "fp32", n)
        try:
            a = torch.randn(n, n, device=self.dev, dtype=dt)
            b = torch.randn(n, n, device=self.dev, dtype=dt)
            c = torch.empty(n, n, device=self.dev, dtype=dt)
            med, mn, reps = self.time_fn(lambda i: torch.matmul(a, b, out=c), reps=20)
            self.add(name, med, tflops=2 * n**3 / (med * 1e-3) / 1e12,
                     note="best %.1f TFLOP/s; reps=%d" % (2 * n**3 / (mn * 1e-3) / 1e12, reps))
            del a, b, c
        except Exception as e:  # noqa: BLE001
            self.err(name, e)
        self.free()

    def free(self):
        import gc
        gc.collect()
        if self.cuda:
            torch.cuda.empty_cache()

    def matmuls(self):
        log("== matmul (torch.matmul, cuBLAS)")
        Ms = (1, 4, 16) if self.a.smoke else (1, 128, 512, 4096)
        shapes = ((768, 2304), (768, 3072), (3072, 768), (768, 50257))
        if self.a.smoke:
            shapes = ((64, 192), (64, 256), (256, 64), (64, 4001))
        precs = ("fp32", "tf32", "bf16") if self.cuda else ("fp32",)
        for prec in precs:
            for M in Ms:
                for K, N in shapes:
                    for trans in ((False, True) if N == shapes[-1][1] else (False,)):
                        name = "MatMul/M=%d,K=%d,N=%d%s/%s" % (M, K, N, ",transW" if trans else "", prec)
                        if not self.have(1.0, name):
                            continue
                        try:
                            self.one_matmul(name, M, K, N, trans, prec)
                        except Exception as e:  # noqa: BLE001
                            self.err(name, e)
                        self.free()

    def one_matmul(self, name, M, K, N, trans, prec):
        dt = torch.bfloat16 if prec == "bf16" else torch.float32
        self.set_tf32(prec == "tf32")
        esz = 2 if dt == torch.bfloat16 else 4
        set_bytes = (M * K + K * N + M * N) * esz
        nsets = 1 if set_bytes > L2_BYTES else min(16, max(2, math.ceil(3 * L2_BYTES / set_bytes)))
        xs = [torch.randn(M, K, device=self.dev, dtype=dt) for _ in range(nsets)]
        ws = [torch.randn(N, K, device=self.dev, dtype=dt) if trans else torch.randn(K, N, device=self.dev, dtype=dt)
              for _ in range(nsets)]
        outs = [torch.empty(M, N, device=self.dev, dtype=dt) for _ in range(nsets)]
        if trans:
            fn = lambda i: torch.matmul(xs[i % nsets], ws[i % nsets].t(), out=outs[i % nsets])  # noqa: E731
        else:
            fn = lambda i: torch.matmul(xs[i % nsets], ws[i % nsets], out=outs[i % nsets])  # noqa: E731
        med, mn, reps, back = self.time_fn(fn, stream=True)
        self.add(name, med, tflops=2 * M * K * N / (med * 1e-3) / 1e12,
                 note="sets=%d reps=%d best=%.4f; back-to-back %.4f ms = %.2f TFLOP/s"
                 % (nsets, reps, mn, back, 2 * M * K * N / (back * 1e-3) / 1e12),
                 ms_back_to_back=round(back, 5))
        self.set_tf32(False)

    # --- models
    def load(self, cls, d, attn):
        t = time.time()
        m, info = hf_from_pretrained(cls, d, torch.float32, use_safetensors=True, attn_implementation=attn)
        m = m.to(self.dev).eval()
        impl = getattr(m.config, "_attn_implementation", attn)
        miss = [k for k in info.get("missing_keys", []) if "lm_head" not in k]
        log("  loaded %s from %s in %.1f s, attn=%s, missing=%s unexpected=%d mismatched=%s"
            % (cls.__name__, d, time.time() - t, impl, miss, len(info.get("unexpected_keys", [])),
               info.get("mismatched_keys", [])))
        if miss or info.get("mismatched_keys"):
            raise RuntimeError("weights did not load: missing %s mismatched %s" % (miss, info.get("mismatched_keys")))
        return m, impl

    def check_weight(self, model_param, path, name):
        """Guards against from_pretrained silently random-initialising a tensor."""
        try:
            ref = read_tensor(path, name)
        except KeyError:
            ref = read_tensor(path, "transformer." + name)
        got = model_param.detach().float().cpu()
        if got.shape != ref.shape:
            got = got.t()
        if not torch.equal(got, ref):
            raise RuntimeError("weight %s differs from the file" % name)

    def gpt2_ids(self, B, T):
        i = torch.arange(T).view(1, T)
        b = torch.arange(B).view(B, 1)
        return ((i * 7919 + b * 31) % self.vocab).to(self.dev)

    def gpt2(self):
        from transformers import GPT2LMHeadModel
        d = self.a.gpt2
        cfg = json.load(open(os.path.join(d, "config.json")))
        D, L, V = cfg["n_embd"], cfg["n_layer"], cfg["vocab_size"]
        self.vocab = V
        inner = cfg.get("n_inner") or 4 * D
        mm_params = L * (D * 3 * D + D * D + 2 * D * inner) + D * V
        H = cfg["n_head"]
        for attn in self.a.attn:
            if not self.have(10, "GPT2 attn=%s (all)" % attn):
                continue
            tag = "GPT2Small/attn=%s" % attn
            try:
                model, impl = self.load(GPT2LMHeadModel, d, attn)
                f = os.path.join(d, "model.safetensors")
                self.check_weight(model.transformer.wte.weight, f, "wte.weight")
                self.check_weight(model.transformer.h[L - 1].attn.c_attn.weight, f, "h.%d.attn.c_attn.weight" % (L - 1))
                self.check_weight(model.lm_head.weight, f, "wte.weight")
            except Exception as e:  # noqa: BLE001
                self.err(tag + "/load", e)
                continue
            for prec in self.a.precs:
                self.gpt2_cases(model, impl, prec, mm_params, D, H, L)
            del model
            self.free()

    def gpt2_cases(self, model, impl, prec, mm_params, D, H, L):
        sfx = "/%s/attn=%s" % (prec, impl)
        for B, T in self.fwd_shapes:
            name = "GPT2SmallForward/B=%d,T=%d%s" % (B, T, sfx)
            if not self.have(3, name):
                continue
            try:
                ids = self.gpt2_ids(B, T)
                flops = 2 * B * T * mm_params + 4 * B * T * T * D  # matmuls incl. lm_head; full (non-causal) QK^T and PV
                with torch.inference_mode(), self.prec_ctx(prec):
                    med, mn, reps = self.time_fn(lambda i: model(input_ids=ids, use_cache=False))
                self.add(name, med, tflops=flops / (med * 1e-3) / 1e12,
                         note="reps=%d best=%.4f; %.0f tok/s" % (reps, mn, B * T / (med * 1e-3)))
            except Exception as e:  # noqa: BLE001
                self.err(name, e)
            self.set_tf32(False)
        name = "GPT2SmallDecodeStep/cache=%d%s" % (self.prompt_len, sfx)
        if self.have(3, name):
            try:
                self.decode_step(model, prec, name)
            except Exception as e:  # noqa: BLE001
                self.err(name, e)
            self.set_tf32(False)
        name = "GPT2SmallDecode32/cache=%d%s" % (self.prompt_len, sfx)
        if self.have(5, name):
            try:
                self.decode_loop(model, prec, name, steps=32)
            except Exception as e:  # noqa: BLE001
                self.err(name, e)
            self.set_tf32(False)
        self.free()

    def prefill(self, model, prompt):
        out = model(input_ids=prompt, use_cache=True)
        return out.logits[:, -1:].argmax(-1), out.past_key_values

    def decode_step(self, model, prec, name, m=None):
        m = m or model
        P = self.prompt_len
        prompt = self.gpt2_ids(1, P)
        with torch.inference_mode(), self.prec_ctx(prec):
            nxt, base = self.prefill(model, prompt)
            cur = [base]
            if hasattr(base, "crop"):
                how = "%s.crop(%d)" % (type(base).__name__, P)

                def after(i):
                    base.crop(P)
            else:  # no crop(): a fresh deep copy of the prefill cache per rep, made outside the timed window
                import copy
                how = "copy.deepcopy of the %s" % type(base).__name__
                base_copy = copy.deepcopy(base)
                cur[0] = copy.deepcopy(base_copy)

                def after(i):
                    cur[0] = copy.deepcopy(base_copy)

            def fn(i):
                m(input_ids=nxt, past_key_values=cur[0], use_cache=True)

            med, mn, reps = self.time_fn(fn, after=after)
            n = cur[0].get_seq_length() if hasattr(cur[0], "get_seq_length") else "?"
        self.add(name, med, note="step %d->%d then %s outside the timed window (len after=%s); "
                 "reps=%d best=%.4f" % (P, P + 1, how, n, reps, mn))

    def decode_loop(self, model, prec, name, steps, m=None):
        m = m or model
        prompt = self.gpt2_ids(1, self.prompt_len)
        per = []
        reps = max(2, self.a.reps_loop)
        with torch.inference_mode(), self.prec_ctx(prec):
            for r in range(reps + 1):  # first is warm-up
                nxt, past = self.prefill(model, prompt)
                self.sync()
                t = time.perf_counter()
                for _ in range(steps):
                    out = m(input_ids=nxt, past_key_values=past, use_cache=True)
                    nxt = out.logits[:, -1:].argmax(-1)
                    past = out.past_key_values
                self.sync()
                if r:
                    per.append((time.perf_counter() - t) * 1e3 / steps)
        self.add(name, statistics.median(per),
                 note="ms per step, %d greedy steps (argmax on device) from cache %d, wall clock; reps=%d best=%.4f"
                 % (steps, self.prompt_len, reps, min(per)))

    def bert(self):
        from transformers import BertForSequenceClassification
        d = self.a.bert
        cfg = json.load(open(os.path.join(d, "config.json")))
        D, L, I, V = cfg["hidden_size"], cfg["num_hidden_layers"], cfg["intermediate_size"], cfg["vocab_size"]
        B, T = self.bert_shape
        flops = 2 * B * T * L * (4 * D * D + 2 * D * I) + 4 * B * L * T * T * D + 2 * B * (D * D + 2 * D)
        i = torch.arange(T).view(1, T)
        b = torch.arange(B).view(B, 1)
        ids = ((i * 7919 + b * 31) % V).to(self.dev)
        tt = torch.zeros(B, T, dtype=torch.long, device=self.dev)
        mask = torch.ones(B, T, dtype=torch.long, device=self.dev)
        for attn in self.a.attn:
            if not self.have(8, "BERT attn=%s (all)" % attn):
                continue
            try:
                model, impl = self.load(BertForSequenceClassification, d, attn)
                self.check_weight(model.bert.embeddings.word_embeddings.weight, os.path.join(d, "model.safetensors"),
                                  "bert.embeddings.word_embeddings.weight")
            except Exception as e:  # noqa: BLE001
                self.err("BERTBaseCls/attn=%s/load" % attn, e)
                continue
            for prec in self.a.precs:
                name = "BERTBaseCls/B=%d,T=%d/%s/attn=%s" % (B, T, prec, impl)
                if not self.have(3, name):
                    continue
                try:
                    with torch.inference_mode(), self.prec_ctx(prec):
                        med, mn, reps = self.time_fn(
                            lambda i: model(input_ids=ids, token_type_ids=tt, attention_mask=mask))
                    self.add(name, med, tflops=flops / (med * 1e-3) / 1e12,
                             note="reps=%d best=%.4f; %.0f seq/s" % (reps, mn, B / (med * 1e-3)))
                except Exception as e:  # noqa: BLE001
                    self.err(name, e)
                self.set_tf32(False)
            del model
            self.free()

    def compiled(self):
        from transformers import GPT2LMHeadModel
        log("== torch.compile (mode default, dynamic=False)")
        try:
            model, impl = self.load(GPT2LMHeadModel, self.a.gpt2, "sdpa")
        except Exception as e:  # noqa: BLE001
            self.err("GPT2SmallCompile/load", e)
            return
        cm = torch.compile(model, dynamic=False)
        P = self.prompt_len
        (B1, T1), (B2, T2) = self.fwd_shapes
        cases = [("fp32", "fwd", B1, T1), ("fp32", "fwd", B2, T2), ("fp32", "step", 1, P),
                 ("bf16amp", "fwd", B1, T1), ("bf16amp", "fwd", B2, T2), ("bf16amp", "step", 1, P)]
        for prec, kind, B, T in cases:
            label = ("B=%d,T=%d" % (B, T)) if kind == "fwd" else "step,cache=%d" % P
            cname = "GPT2SmallCompile/%s/%s/attn=%s" % (label, prec, impl)
            if not self.have(self.a.compile_min_left, cname):
                continue
            try:
                with torch.inference_mode(), self.prec_ctx(prec):
                    if kind == "fwd":
                        ids = self.gpt2_ids(B, T)
                        self.sync()
                        t = time.perf_counter()
                        cm(input_ids=ids, use_cache=False)
                        self.sync()
                        cs = time.perf_counter() - t
                        self.add(cname, cs * 1e3, note="first call of the compiled forward (compile + run), ms")
                        name = "GPT2SmallForward/B=%d,T=%d/%s/attn=%s/compile" % (B, T, prec, impl)
                        med, mn, reps = self.time_fn(lambda i: cm(input_ids=ids, use_cache=False))
                        self.add(name, med, note="reps=%d best=%.4f; compile %.1f s" % (reps, mn, cs))
                    else:
                        prompt = self.gpt2_ids(1, P)
                        nxt, past = self.prefill(model, prompt)
                        self.sync()
                        t = time.perf_counter()
                        cm(input_ids=nxt, past_key_values=past, use_cache=True)
                        self.sync()
                        cs = time.perf_counter() - t
                        past.crop(P)
                        self.add(cname, cs * 1e3, note="first call of the compiled decode step (compile + run), ms")
                        name = "GPT2SmallDecodeStep/cache=%d/%s/attn=%s/compile" % (P, prec, impl)
                        med, mn, reps = self.time_fn(
                            lambda i: cm(input_ids=nxt, past_key_values=past, use_cache=True),
                            after=lambda i: past.crop(P))
                        self.add(name, med, note="crop(%d) outside the timed window; reps=%d best=%.4f; compile %.1f s"
                                 % (P, reps, mn, cs))
            except Exception as e:  # noqa: BLE001
                self.err(cname, e)
            self.set_tf32(False)
        del cm, model
        try:
            torch._dynamo.reset()
        except Exception:  # noqa: BLE001
            pass
        self.free()

    # --- driver
    def run(self):
        self.header()
        sections = [("ceilings", self.ceilings, 5)]
        if self.a.gpt2:
            sections.append(("gpt2", self.gpt2, 10))
        if self.a.bert:
            sections.append(("bert", self.bert, 8))
        if not self.a.no_matmul:
            sections.append(("matmul", self.matmuls, 5))
        if self.a.compile and self.a.gpt2:
            sections.append(("compile", self.compiled, self.a.compile_min_left))
        for name, fn, need in sections:
            if not self.have(need, "section " + name):
                continue
            t = time.time()
            log("== section %s (%.0f s left)" % (name, self.left()))
            try:
                fn()
            except Exception as e:  # noqa: BLE001
                self.err("section:" + name, e)
            log("== section %s took %.1f s" % (name, time.time() - t))
        self.save()
        self.table()

    def table(self):
        log("\n%-62s %11s %9s  %s" % ("bench", "ms", "TFLOP/s", "note"))
        for r in self.rows:
            if r["bench"] == "header":
                continue
            ms = "-" if r.get("ms") is None else "%.4f" % r["ms"]
            tf = "" if r.get("tflops") is None else "%.2f" % r["tflops"]
            log("%-62s %11s %9s  %s" % (r["bench"], ms, tf, r.get("note", "")))
        if self.skipped:
            log("skipped (budget): " + "; ".join(self.skipped))
        log("total %.1f s; JSON: %s" % (time.time() - self.t0, self.a.out))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    ap.add_argument("--make-gpt2", metavar="DIR")
    ap.add_argument("--make-bert", metavar="DIR")
    ap.add_argument("--force", action="store_true", help="rewrite existing weights")
    ap.add_argument("--run", action="store_true")
    ap.add_argument("--gpt2", metavar="DIR", help="GPT-2 dir (default: --make-gpt2's)")
    ap.add_argument("--bert", metavar="DIR", help="BERT dir (default: --make-bert's)")
    ap.add_argument("--out", metavar="FILE.json")
    ap.add_argument("--compile", action="store_true")
    ap.add_argument("--compile-min-left", type=float, default=60.0,
                    help="start a compile case only with this many budget seconds left")
    ap.add_argument("--budget", type=float, default=150.0, help="seconds; later sections and cases are skipped")
    ap.add_argument("--device", default="cuda:0")
    ap.add_argument("--smoke", action="store_true", help="tiny ceiling/matmul sizes (CPU smoke test)")
    ap.add_argument("--no-matmul", action="store_true")
    ap.add_argument("--attn", default="sdpa,eager", help="comma list of HF attn_implementation values")
    ap.add_argument("--precs", default="fp32,tf32,bf16amp")
    ap.add_argument("--warmup", type=int, default=4)
    ap.add_argument("--reps-small", type=int, default=100, help="reps when one call takes < 2 ms")
    ap.add_argument("--reps-big", type=int, default=25)
    ap.add_argument("--reps-loop", type=int, default=3, help="reps of the 32-step decode loop")
    a = ap.parse_args()
    a.attn = [x for x in a.attn.split(",") if x]
    a.precs = [x for x in a.precs.split(",") if x]
    if not (a.make_gpt2 or a.make_bert or a.run):
        ap.error("nothing to do: give --make-gpt2, --make-bert and/or --run")
    for what, d, fn in (("make-gpt2", a.make_gpt2, make_gpt2), ("make-bert", a.make_bert, make_bert)):
        if d:
            try:
                fn(d, a.force)
            except Exception as e:  # noqa: BLE001
                log("ERROR %s: %s" % (what, e))
                traceback.print_exc()
    if a.run:
        a.gpt2 = a.gpt2 or a.make_gpt2
        a.bert = a.bert or a.make_bert
        if a.device.startswith("cuda") and not torch.cuda.is_available():
            ap.error("--device %s but torch.cuda.is_available() is False" % a.device)
        if a.out:
            os.makedirs(os.path.dirname(os.path.abspath(a.out)), exist_ok=True)
        torch.manual_seed(0)
        r = Runner(a)
        r.run()
        errors = [x["bench"] for x in r.rows if str(x.get("note", "")).startswith("error:")]
        if errors:
            log("%d rows failed: %s" % (len(errors), ", ".join(errors)))
            sys.exit(1)


if __name__ == "__main__":
    main()
