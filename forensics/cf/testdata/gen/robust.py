#!/usr/bin/python3
"""Writes ../robust_golden.json: numpy's values for forensics/cf's robust
statistics, AUROC and int8 quantisation, the oracle of robust_test.go.

    /usr/bin/python3 forensics/cf/testdata/gen/robust.py   # needs python3-numpy

Each case holds samples; numpy computes the median (np.median), the MAD
(median of |x - median|), the mean absolute deviation around the median,
the robust scale (1.4826 MAD, or 1.2533 mean AD when the MAD is 0) and the
robust z of some query values. AUROC is computed by brute force over every
(positive, negative) pair, ties counting one half. Quantisation rounds half
away from zero (numpy's np.round rounds half to even, so it is spelled
out).
"""
import json
import os

import numpy as np

MAD_SCALE = 1.482602218505602
MEANAD_SCALE = 1.2533141373155001


def robust(x):
    med = float(np.median(x))
    dev = np.abs(x - med)
    mad = float(np.median(dev))
    meanad = float(np.mean(dev))
    scale = MAD_SCALE * mad
    if not scale > 0:
        scale = MEANAD_SCALE * meanad
    floor = 1e-3 * abs(med) + 1e-6
    scale = max(scale, floor)
    return med, mad, meanad, scale


def main():
    rng = np.random.default_rng(20261126)
    cases = []
    specs = [
        ("normal 1001", rng.normal(0.3, 2.0, 1001)),
        ("normal 1000 with outliers", np.concatenate([rng.normal(-1.0, 0.5, 990), rng.normal(40, 5, 10)])),
        ("heavy tails 257", rng.standard_t(2, 257)),
        ("ties 64", rng.integers(0, 5, 64).astype(np.float64)),
        ("mostly constant 31", np.concatenate([np.full(20, 0.75), rng.normal(0.75, 1, 11)])),
        ("compression ratios 300", 0.6 + 0.05 * rng.random(300)),
    ]
    for name, x in specs:
        x = x.astype(np.float64)
        med, mad, meanad, scale = robust(x)
        queries = [float(v) for v in np.quantile(x, [0.0, 0.1, 0.5, 0.9, 1.0])] + [med + 10 * scale, -7.5]
        z = [(q - med) / scale for q in queries]
        cases.append({"name": name, "x": x.tolist(), "median": med, "mad": mad, "mean_ad": meanad,
                      "scale": scale, "queries": queries, "z": z})
    auroc = []
    for name, pos, neg in [
        ("separated", rng.normal(2, 1, 60), rng.normal(0, 1, 70)),
        ("overlapping", rng.normal(0.3, 1, 40), rng.normal(0, 1, 55)),
        ("ties", rng.integers(0, 4, 50).astype(np.float64), rng.integers(0, 3, 45).astype(np.float64)),
        ("inverted", rng.normal(-1, 1, 30), rng.normal(1, 1, 30)),
    ]:
        gt = (pos[:, None] > neg[None, :]).sum()
        eq = (pos[:, None] == neg[None, :]).sum()
        auroc.append({"name": name, "positives": pos.tolist(), "negatives": neg.tolist(),
                      "auroc": float((gt + 0.5 * eq) / (len(pos) * len(neg)))})
    quant = []
    for name, row in [
        ("normal 96", rng.normal(0, 1, 96).astype(np.float32)),
        ("outlier 64", np.concatenate([rng.normal(0, 0.1, 63), [12.5]]).astype(np.float32)),
        ("halves", np.array([0.5, 1.5, -0.5, -2.5, 127, -127], dtype=np.float32)),
    ]:
        amax = np.float32(np.max(np.abs(row)))
        inv = np.float32(127) / amax
        v = (row * inv).astype(np.float64)  # float32 product, as Go computes it
        codes = np.clip(np.sign(v) * np.floor(np.abs(v) + 0.5), -127, 127).astype(np.int64)
        quant.append({"name": name, "row": [float(r) for r in row], "scale": float(amax / np.float32(127)),
                      "codes": codes.tolist()})
    out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "robust_golden.json")
    with open(out, "w") as f:
        json.dump({"robust": cases, "auroc": auroc, "int8": quant}, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
