"""Puts fx's GPU benchmark times beside PyTorch's on the same card.

    python3 bench/gpu/table.py FXBENCH.txt TORCH.json [DEVICE.txt] > table.md

FXBENCH.txt is the output of engine/gpu's benchmarks (`gpu.test -test.bench .`,
as bench/gpu/run.sh runs them); TORCH.json is bench/gpu/torch_gpu_bench.py's.
Each row compares fx with PyTorch at the same precision: FP32 (TF32 off on
both), TF32 tensor cores (PyTorch's allow_tf32; fx's cuda-tf32) or BF16
tensor cores (fx's cuda-bf16: BF16 matmul operands, FP32 everything else;
beside PyTorch's bf16 matmul for the matmul rows and its bf16 autocast,
"bf16amp", for the model rows). The anchor
for the model rows is transformers' GPT2LMHeadModel / BertForSequenceClassification
in eager mode with its default attention (sdpa) and, where measured, the same
model under torch.compile. "fx/torch" is fx's time over PyTorch's: below 1 is
faster. For matmuls, "% of torch" is fx's throughput as a share of cuBLAS's.
"""
import json
import re
import sys


def parse_fx(path):
    """Returns {benchmark name without the -GOMAXPROCS suffix: {unit: value}}."""
    out = {}
    tag = ""
    for line in open(path, errors="replace"):
        m = re.match(r"=== time to certificate \((\w+)\)$", line.strip())
        if m:
            tag = "/" + m.group(1)
        if not line.startswith("Benchmark"):
            continue
        parts = line.split()
        name = re.sub(r"-\d+$", "", parts[0])
        if name == "BenchmarkTimeToCertificate":
            name += tag
        vals = {}
        # after the name: iterations, then value/unit pairs
        for v, unit in zip(parts[2::2], parts[3::2]):
            try:
                vals[unit] = float(v)
            except ValueError:
                pass
        out[name] = vals
    return out


def parse_torch(path):
    try:
        rows = json.load(open(path))
    except (OSError, ValueError) as e:
        print("<!-- torch results unreadable: %s -->" % e)
        return {}, {}
    header = next((r for r in rows if r.get("bench") == "header"), {})
    return {r["bench"]: r for r in rows if r.get("bench") != "header"}, header


def fmt(x, digits=3):
    if x is None:
        return "—"
    if x >= 100:
        return "%.0f" % x
    if x >= 10:
        return "%.1f" % x
    return ("%." + str(digits) + "g") % x


def torch_ms(torch, name):
    r = torch.get(name)
    if r is None or r.get("ms") is None:
        return None
    return float(r["ms"])


def main():
    fx = parse_fx(sys.argv[1])
    torch, header = parse_torch(sys.argv[2])
    device = ""
    if len(sys.argv) > 3:
        try:
            device = open(sys.argv[3], errors="replace").read()
        except OSError:
            pass
    card = header.get("device") or next((l for l in device.splitlines() if "NVIDIA" in l and "Driver" not in l), "?")
    print("## fx CUDA vs PyTorch on %s" % card)
    print()
    print("torch %s (CUDA %s), transformers %s; %s" % (header.get("torch", "?"), header.get("cuda", "?"),
                                                      header.get("transformers", "?"), header.get("date", "")))
    for k in ("CopyD2D/bytes=1GiB", "MatMulPeak/bf16/8192^3"):
        r = torch.get(k)
        if r:
            print("- %s: %s ms%s" % (k, fmt(r.get("ms")), "".join(
                ", %s %s" % (f, fmt(r[f])) for f in ("gbps", "tflops") if r.get(f) is not None)))
    print()

    print("### Model")
    print()
    print("| bench | precision | fx ms | torch eager ms | fx/torch | torch.compile ms | fx/compile |")
    print("|---|---|---|---|---|---|---|")
    model_rows = [
        ("GPT2SmallForward/%s/B=1,T=128", "GPT2SmallForward/B=1,T=128/%s/attn=sdpa", "ms/op"),
        ("GPT2SmallForward/%s/B=8,T=512", "GPT2SmallForward/B=8,T=512/%s/attn=sdpa", "ms/op"),
        ("GPT2SmallDecodeStep/%s/eager/cache=128", "GPT2SmallDecodeStep/cache=128/%s/attn=sdpa", "ms/step"),
        ("GPT2SmallDecodeStep/%s/graph/cache=128", "GPT2SmallDecodeStep/cache=128/%s/attn=sdpa", "ms/step"),
        ("BERTBaseClassify/%s/B=32,T=128", "BERTBaseCls/B=32,T=128/%s/attn=sdpa", "ms/op"),
    ]
    for fxname, tname, unit in model_rows:
        for prec in ("fp32", "tf32", "bf16"):
            f = fx.get("Benchmark" + fxname % prec, {}).get(unit)
            if f is None and prec == "bf16":
                continue  # a log from before BF16 mode
            tprec = "bf16amp" if prec == "bf16" else prec  # fx's BF16 products beside torch's bf16 autocast
            t = torch_ms(torch, tname % tprec)
            c = torch_ms(torch, tname % tprec + "/compile")
            extra = ""
            if unit == "ms/step":
                r = fx.get("Benchmark" + fxname % prec, {})
                if r.get("launches/step") is not None:
                    extra = " (%d launches" % r["launches/step"]
                    if r.get("capture-ms") is not None:
                        extra += ", capture %s ms" % fmt(r["capture-ms"])
                    extra += ")"
            print("| %s%s | %s | %s | %s | %s | %s | %s |" % (
                fxname.replace("/%s", ""), extra, prec, fmt(f), fmt(t),
                fmt(f / t) if f and t else "—", fmt(c), fmt(f / c) if f and c else "—"))
    print()

    print("### MatMul (x[M,K]·w[K,N] + bias; transW: x·w[N,K]ᵀ)")
    print()
    print("| M | K×N | precision | fx ms | fx TFLOP/s | cuBLAS ms | cuBLAS TFLOP/s | % of torch |")
    print("|---|---|---|---|---|---|---|---|")
    for name in sorted(k for k in fx if k.startswith("BenchmarkMatMul/")):
        m = re.match(r"BenchmarkMatMul/(\w+)/M=(\d+),K=(\d+),N=(\d+)(,transW)?", name)
        if not m:
            continue
        prec, M, K, N, tw = m.groups()
        f = fx[name]
        t = torch.get("MatMul/M=%s,K=%s,N=%s%s/%s" % (M, K, N, tw or "", prec), {})
        tms = t.get("ms")
        fms = f.get("ms/op")
        print("| %s | %s×%s%s | %s | %s | %s | %s | %s | %s |" % (
            M, K, N, tw or "", prec, fmt(fms), fmt(f.get("TFLOP/s")), fmt(tms), fmt(t.get("tflops")),
            "%.0f%%" % (100 * tms / fms) if tms and fms else "—"))
    ops = sorted(k for k in fx if k.startswith("BenchmarkOps/"))
    if ops:
        copy = torch.get("CopyD2D/bytes=1GiB", {}).get("gbps")
        print()
        print("### Ops (every op but MatMul, GPT-2-small shapes; bandwidth: the least bytes an op moves over its time)")
        print()
        print("| op | tokens | fx ms | GB/s | of torch's D2D copy |")
        print("|---|---|---|---|---|")
        for name in ops:
            m = re.match(r"BenchmarkOps/(.+)/B=(\d+),T=(\d+)$", name)
            if not m:
                continue
            op, B, T = m.groups()
            f = fx[name]
            gbps = f.get("GB/s")
            print("| %s | %s×%s | %s | %s | %s |" % (op, B, T, fmt(f.get("ms/op")), fmt(gbps),
                                                   "%.0f%%" % (100 * gbps / copy) if gbps and copy else "—"))
    ttc = [(k, v) for k, v in fx.items() if k.startswith("BenchmarkTimeToCertificate/")]
    if ttc:
        print()
        print("### CCA time to certificate (small prompt-injection, ~147-token incident, all 12 layers)")
        print()
        print("| backend | search s | forwards | backward passes | fix set | MB to host | MB from host |")
        print("|---|---|---|---|---|---|---|")
        for k, v in sorted(ttc):
            print("| %s | %s | %s | %s | %s | %s | %s |" % (
                k.split("/")[-1], fmt(v.get("search-s")), fmt(v.get("forwards")), fmt(v.get("backward")),
                fmt(v.get("fix-set")), fmt(v.get("MB-to-host")), fmt(v.get("MB-from-host"))))
    failed = [k for k, r in torch.items() if r.get("ms") is None and "error" in str(r.get("note", ""))]
    if failed:
        print()
        print("PyTorch rows that failed: " + ", ".join(failed))


if __name__ == "__main__":
    main()
