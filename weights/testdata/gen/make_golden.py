#!/usr/bin/python3
"""Writes the golden files that golden_test.go reads.

Run from the repository root with Debian's numpy (no other packages):

    /usr/bin/python3 weights/testdata/gen/make_golden.py

half.safetensors is written by hand (8-byte length, JSON header padded with
spaces to a multiple of 8, data) and holds:

    f32   F32  [3]      plain float32 values
    f16   F16  [N]      chosen and random half bit patterns
    bf16  BF16 [2, M]   chosen and random bfloat16 bit patterns

half_f16.npy and half_bf16.npy hold the float32 values of f16 and bf16 as
numpy computes them: astype(float32) for float16, and the bits shifted left
by 16 for bfloat16 (which is what bfloat16 means).

f16_rounding.npz holds float32 inputs ("input") and the float16 bit patterns
numpy rounds them to ("bits", as int64), to check Go's float32 -> F16
rounding.

Signalling NaNs are left out: converting them may quiet them, depending on
whether numpy uses the CPU's conversion instructions.
"""
import json
import os
import struct

import numpy as np

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")


def main():
    rng = np.random.default_rng(20240601)

    f16_chosen = [
        0x0000, 0x8000,          # +0, -0
        0x0001, 0x8001,          # smallest subnormal, 2^-24
        0x03FF, 0x0200,          # largest subnormal, a middle one
        0x0400,                  # smallest normal, 2^-14
        0x3C00, 0xBC00,          # 1, -1
        0x3555,                  # ~1/3
        0x7BFF, 0xFBFF,          # 65504, -65504
        0x7C00, 0xFC00,          # +inf, -inf
        0x7E00, 0xFE00, 0x7E01,  # quiet NaNs
    ]
    f16_random = rng.integers(0, 1 << 16, size=47, dtype=np.uint16)
    # Drop signalling NaNs: exponent all ones, mantissa non-zero, quiet bit clear.
    exp = (f16_random >> 10) & 0x1F
    mant = f16_random & 0x3FF
    f16_random = f16_random[~((exp == 0x1F) & (mant != 0) & ((mant & 0x200) == 0))]
    f16 = np.concatenate([np.array(f16_chosen, dtype=np.uint16), f16_random])

    bf16_chosen = [
        0x0000, 0x8000,          # +0, -0
        0x3F80, 0xBF80,          # 1, -1
        0x0001,                  # smallest subnormal
        0x0080,                  # smallest normal
        0x7F7F,                  # largest finite
        0x7F80, 0xFF80,          # +inf, -inf
        0x7FC0, 0xFFC1,          # quiet NaNs
        0x4049,                  # ~pi
    ]
    bf16_random = rng.integers(0, 1 << 16, size=40, dtype=np.uint16)
    exp = (bf16_random >> 7) & 0xFF
    mant = bf16_random & 0x7F
    bf16_random = bf16_random[~((exp == 0xFF) & (mant != 0) & ((mant & 0x40) == 0))]
    bf16 = np.concatenate([np.array(bf16_chosen, dtype=np.uint16), bf16_random])
    if len(bf16) % 2:
        bf16 = bf16[:-1]

    f32 = np.array([1.5, -0.25, 1e-40], dtype=np.float32)

    # Data region: f32, then f16, then bf16 (not name order, on purpose).
    blobs = [
        ("f32", "F32", [3], f32.astype("<f4").tobytes()),
        ("f16", "F16", [len(f16)], f16.astype("<u2").tobytes()),
        ("bf16", "BF16", [2, len(bf16) // 2], bf16.astype("<u2").tobytes()),
    ]
    header = {"__metadata__": {"format": "pt", "generator": "make_golden.py"}}
    data = b""
    for name, dtype, shape, raw in blobs:
        header[name] = {"dtype": dtype, "shape": shape,
                        "data_offsets": [len(data), len(data) + len(raw)]}
        data += raw
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    with open(os.path.join(OUT, "half.safetensors"), "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        f.write(data)

    np.save(os.path.join(OUT, "half_f16.npy"), f16.view(np.float16).astype(np.float32))
    bf16_f32 = (bf16.astype(np.uint32) << 16).view(np.float32).reshape(2, len(bf16) // 2)
    np.save(os.path.join(OUT, "half_bf16.npy"), bf16_f32)

    # float32 -> float16 rounding: edge cases and random finite float32 values
    # whose exponents span the half range and a little beyond.
    edge = np.array([
        0.0, -0.0, 1.0, 65504.0, 65519.99, 65520.0, 1e6, -1e6,
        2.0**-24, 2.0**-25, 2.0**-25 * 1.0000001, 2.0**-26, 3 * 2.0**-25,
        2.0**-14, 2.0**-14 - 2.0**-25, 1.0 + 2.0**-11, 1.0 + 3 * 2.0**-11,
        1.0 + 2.0**-11 + 2.0**-20, np.inf, -np.inf, 1e-45,
    ], dtype=np.float32)
    sign = rng.integers(0, 2, size=1000, dtype=np.uint32) << 31
    e = rng.integers(127 - 27, 127 + 17, size=1000, dtype=np.uint32) << 23
    m = rng.integers(0, 1 << 23, size=1000, dtype=np.uint32)
    # Force some exact ties: clear the low 12 mantissa bits and set bit 12.
    m[:200] = (m[:200] & ~np.uint32(0x1FFF)) | 0x1000
    rand = (sign | e | m).view(np.float32)
    inputs = np.concatenate([edge, rand])
    with np.errstate(over="ignore"):
        bits = inputs.astype(np.float16).view(np.uint16).astype(np.int64)
    np.savez(os.path.join(OUT, "f16_rounding.npz"), input=inputs, bits=bits)


if __name__ == "__main__":
    main()
