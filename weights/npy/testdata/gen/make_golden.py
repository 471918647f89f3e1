#!/usr/bin/python3
"""Writes the golden .npy and .npz files that npy_test.go reads.

Run from the repository root with Debian's numpy:

    /usr/bin/python3 weights/npy/testdata/gen/make_golden.py

The values are fixed here (no randomness), and npy_test.go asserts them.
"""
import os

import numpy as np

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")


def save(name, arr, version=None):
    path = os.path.join(OUT, name)
    with open(path, "wb") as f:
        np.lib.format.write_array(f, arr, version=version, allow_pickle=False)


def main():
    # f4: arange(6) / 4 - 1, shape (2, 3).
    save("f4_2x3.npy", (np.arange(6, dtype=np.float32) / 4 - 1).reshape(2, 3))
    # f8: values that float32 rounds, and one beyond float32 range.
    save("f8_4.npy", np.array([0.1, -2.5, 1e300, np.pi], dtype=np.float64))
    # f2: exact half values.
    save("f2_5.npy", np.array([1.0, -2.0, 65504.0, 2.0**-24, 0.333251953125], dtype=np.float16))
    # i8: arange(-3, 3) * 1000000007, shape (3, 2).
    save("i8_3x2.npy", (np.arange(-3, 3, dtype=np.int64) * 1000000007).reshape(3, 2))
    # i4, u1, b1.
    save("i4_4.npy", np.array([-2147483648, -1, 0, 2147483647], dtype=np.int32))
    save("u1_3.npy", np.array([0, 128, 255], dtype=np.uint8))
    save("b1_3.npy", np.array([True, False, True]))
    # 0-d float32.
    save("scalar_f4.npy", np.array(3.25, dtype=np.float32))
    # Empty array, shape (0, 3).
    save("empty_f4.npy", np.zeros((0, 3), dtype=np.float32))
    # Format version 2.0.
    save("v2_f4.npy", np.arange(3, dtype=np.float32), version=(2, 0))
    # Fortran order, which the reader must refuse.
    save("fortran_f4.npy", np.asfortranarray(np.arange(6, dtype=np.float32).reshape(2, 3)))
    # Big-endian, which the reader must refuse.
    save("be_f4.npy", np.arange(3, dtype=">f4"))

    a = np.arange(6, dtype=np.float32).reshape(2, 3)
    b = np.arange(4, dtype=np.int64) - 2
    np.savez(os.path.join(OUT, "arrays.npz"), a=a, b=b)
    np.savez_compressed(os.path.join(OUT, "arrays_compressed.npz"), a=a, b=b)


if __name__ == "__main__":
    main()
