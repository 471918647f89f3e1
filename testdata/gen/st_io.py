# Hand-written safetensors writer/reader and a deterministic .npz writer, used by
# testdata/gen/make_models.py (no `safetensors` / `transformers` packages needed).
# Not run directly; regenerate everything with, from the repo root:
#     /usr/bin/python3 testdata/gen/make_models.py
#
# safetensors layout written here (same as the Rust reference implementation):
#   8 bytes  little-endian u64 N = header length
#   N bytes  compact JSON: {"__metadata__":{"format":"pt"}, NAME: {"dtype","shape","data_offsets":[begin,end]}, ...}
#            padded with ASCII spaces so that 8+N is a multiple of 8
#   data     tensors back to back, offsets relative to the start of the data section.
# Tensors are laid out sorted by (element size descending, name) like the Rust
# writer, so each tensor starts aligned to its element size.

import io
import json
import struct
import zipfile

import numpy as np
import torch

# dtype tag -> (element size, numpy dtype used for the raw bytes)
DTYPES = {
    "F64": (8, np.float64),
    "F32": (4, np.float32),
    "F16": (2, np.float16),
    "BF16": (2, np.uint16),  # raw bf16 bits
    "I64": (8, np.int64),
    "I32": (4, np.int32),
    "U8": (1, np.uint8),
    "BOOL": (1, np.bool_),
}


def tensor_bytes(t, dtype):
    """Encode a torch tensor as raw little-endian bytes of the given safetensors dtype."""
    t = t.detach().contiguous()
    if dtype == "F32":
        a = t.to(torch.float32).numpy()
    elif dtype == "F16":
        a = t.to(torch.float16).numpy()
    elif dtype == "BF16":
        a = t.to(torch.bfloat16).view(torch.int16).numpy().view(np.uint16)
    elif dtype == "I64":
        a = t.to(torch.int64).numpy()
    elif dtype == "F64":
        a = t.to(torch.float64).numpy()
    else:
        raise ValueError(dtype)
    return np.ascontiguousarray(a).astype(a.dtype.newbyteorder("<"), copy=False).tobytes()


def roundtrip_f32(t, dtype):
    """The float32 values a loader sees after storing t with `dtype` (rounded to nearest even)."""
    if dtype == "F32":
        return t.to(torch.float32).clone()
    if dtype == "F16":
        return t.to(torch.float16).to(torch.float32)
    if dtype == "BF16":
        return t.to(torch.bfloat16).to(torch.float32)
    raise ValueError(dtype)


def write_safetensors(path, tensors, metadata=None):
    """tensors: list of (name, torch tensor, dtype tag). Returns total data byte size."""
    if metadata is None:
        metadata = {"format": "pt"}
    names = [n for n, _, _ in tensors]
    assert len(set(names)) == len(names), "duplicate tensor name"
    items = sorted(tensors, key=lambda x: (-DTYPES[x[2]][0], x[0]))
    header = {"__metadata__": metadata}
    blobs = []
    off = 0
    for name, t, dt in items:
        b = tensor_bytes(t, dt)
        assert len(b) == DTYPES[dt][0] * max(1, int(np.prod(t.shape))) or (t.numel() == 0 and len(b) == 0)
        header[name] = {"dtype": dt, "shape": list(t.shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    hjson = json.dumps(header, separators=(",", ":")).encode("utf-8")
    pad = (8 - (8 + len(hjson)) % 8) % 8
    hjson += b" " * pad
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(hjson)))
        f.write(hjson)
        for b in blobs:
            f.write(b)
    return off


def read_safetensors(path):
    """Independent parse: returns (metadata, {name: (dtype, shape, float32-or-int numpy array)}).
    Checks the header length, 8-byte alignment, space padding and that the data
    offsets tile the data section exactly."""
    with open(path, "rb") as f:
        raw = f.read()
    (n,) = struct.unpack("<Q", raw[:8])
    assert (8 + n) % 8 == 0, "header not padded to 8-byte alignment"
    hbytes = raw[8 : 8 + n]
    assert hbytes[:1] == b"{"
    stripped = hbytes.rstrip(b" ")
    assert stripped.endswith(b"}"), "header padding must be spaces after the JSON"
    header = json.loads(hbytes.decode("utf-8"))
    meta = header.pop("__metadata__", None)
    data = raw[8 + n :]
    spans = []
    out = {}
    for name, info in header.items():
        dt, shape, (b, e) = info["dtype"], info["shape"], info["data_offsets"]
        size, npdt = DTYPES[dt]
        numel = int(np.prod(shape)) if shape else 1
        assert e - b == numel * size, (name, b, e, numel, size)
        assert b % size == 0, "tensor not aligned to its element size: " + name
        spans.append((b, e))
        buf = np.frombuffer(data[b:e], dtype=np.dtype(npdt).newbyteorder("<")).reshape(shape)
        if dt == "BF16":
            arr = (buf.astype(np.uint32) << 16).view(np.float32)
        elif dt in ("F16", "F32", "F64"):
            arr = buf.astype(np.float32)
        else:
            arr = buf.copy()
        out[name] = (dt, tuple(shape), arr)
    spans.sort()
    pos = 0
    for b, e in spans:
        assert b == pos, "gap or overlap in data section"
        pos = e
    assert pos == len(data), "trailing bytes after last tensor"
    return meta, out


def savez_deterministic(path, arrays):
    """Same container as np.savez (uncompressed zip of NAME.npy members, zip64 forced
    like numpy does) but with a fixed timestamp so reruns give identical bytes."""
    with zipfile.ZipFile(path, mode="w", compression=zipfile.ZIP_STORED, allowZip64=True) as zf:
        for key, val in arrays.items():
            val = np.ascontiguousarray(val)
            zi = zipfile.ZipInfo(key + ".npy", date_time=(1980, 1, 1, 0, 0, 0))
            zi.compress_type = zipfile.ZIP_STORED
            zi.external_attr = 0o644 << 16
            with zf.open(zi, "w", force_zip64=True) as fid:
                np.lib.format.write_array(fid, val, allow_pickle=False)
