#!/usr/bin/python3
"""Generates the PyTorch test vectors for rq's row-wise embedding table formats.

Run from this directory with the system PyTorch (1.13, Debian's build, which has no
FBGEMM, so the reference C++ paths of qembeddingbag_prepack.cpp / qembeddingbag.cpp run):

    /usr/bin/python3 gen.py

It writes vectors.bin (little-endian arrays back to back) and vectors.json (the index:
for every case, where its arrays start in vectors.bin and how long they are). Cases:

  kind "table": a small fp32 table, its prepacked bytes (embedding_bag_byte_prepack,
      embedding_bag_{4,2}bit_prepack, optionally with optimized_qparams=True, or .half()
      for bits=16) and its dequantized rows (embedding_bag_*_rowwise_offsets with one
      index per bag; for bits=16 the fp16 values widened to fp32).
  kind "bag": a packed table from a "table" case, multi-hot bags (indices, offsets,
      optional per-sample weights) and PyTorch's pooled output (mode=sum).

Deterministic: fixed seeds, no threads involved in the ops used.
"""
import json
import struct

import numpy as np
import torch

torch.manual_seed(1234)
rng = np.random.default_rng(1234)

blob = bytearray()
index = {"torch": torch.__version__, "cases": []}


def put(arr, dtype):
    a = np.ascontiguousarray(np.asarray(arr, dtype=dtype))
    off = len(blob)
    blob.extend(a.tobytes())
    return {"off": off, "n": int(a.size)}


def special_rows(d):
    """Rows that exercise the corner cases of the row-wise formulas."""
    f32 = np.float32
    rows = []
    rows.append(np.full(d, 0.0, f32))                       # all equal: zero range
    rows.append(np.full(d, 1.5, f32))
    rows.append(np.full(d, -3.25, f32))
    rows.append(np.full(d, 1e5, f32))                       # min beyond fp16: bias inf
    rows.append(np.full(d, 65519.0, f32))                   # min rounds down to 65504 in fp16
    rows.append((1.0 + np.arange(d) * 1e-6).astype(f32))    # tiny range
    rows.append((1000.3 + rng.standard_normal(d) * 1e-3).astype(f32))  # fp16 bias rounding matters
    rows.append((rng.standard_normal(d) * 1e-9).astype(f32))  # scale below fp16 subnormals
    rows.append((rng.standard_normal(d) * 1e-5).astype(f32))  # fp16-subnormal scale
    r = (rng.standard_normal(d) * 1e30).astype(f32)
    rows.append(r)                                          # huge range
    r = np.linspace(-3e38, 3e38, d).astype(f32) if d > 1 else np.array([3e38], f32)
    rows.append(r)                                          # range overflows to inf
    rows.append((-np.abs(rng.standard_normal(d)) - 2).astype(f32))  # negative only
    z = np.zeros(d, f32)
    z[::2] = -0.0
    rows.append(z)                                          # signed zeros, -0 first
    z = np.zeros(d, f32)
    z[1::2] = -0.0
    rows.append(z)                                          # signed zeros, +0 first
    r = rng.standard_normal(d).astype(f32)
    r[d // 2] = np.inf
    rows.append(r)                                          # +inf
    r = rng.standard_normal(d).astype(f32)
    r[-1] = -np.inf
    rows.append(r)                                          # -inf
    r = rng.standard_normal(d).astype(f32)
    r[0] = np.nan
    rows.append(r)                                          # NaN first: min/max are NaN
    r = rng.standard_normal(d).astype(f32)
    r[d - 1] = np.nan
    rows.append(r)                                          # NaN later: skipped by min/max
    r = rng.standard_normal(d).astype(f32)
    r[d // 3] = 70000.0
    rows.append(r)                                          # max beyond fp16
    return rows


def table(d, nrandom=6, special=True):
    rows = []
    for i in range(nrandom):
        scale = [1.0, 0.01, 30.0, 1e-3, 1.0, 5.0][i % 6]
        shift = [0.0, 0.0, 0.0, 0.5, -7.0, 100.0][i % 6]
        rows.append((rng.standard_normal(d) * scale + shift).astype(np.float32))
    if special:
        rows.extend(special_rows(d))
    return np.stack(rows)


def prepack(w, bits, greedy):
    t = torch.from_numpy(w)
    if bits == 8:
        return torch.ops.quantized.embedding_bag_byte_prepack(t)
    if bits == 4:
        return torch.ops.quantized.embedding_bag_4bit_prepack(t, optimized_qparams=greedy)
    if bits == 2:
        return torch.ops.quantized.embedding_bag_2bit_prepack(t, optimized_qparams=greedy)
    raise ValueError(bits)


def pool(packed, bits, idx, off, wts):
    op = {8: torch.ops.quantized.embedding_bag_byte_rowwise_offsets,
          4: torch.ops.quantized.embedding_bag_4bit_rowwise_offsets,
          2: torch.ops.quantized.embedding_bag_2bit_rowwise_offsets}[bits]
    kw = {}
    if wts is not None:
        kw["per_sample_weights"] = torch.from_numpy(wts)
    return op(packed, torch.from_numpy(idx), torch.from_numpy(off), mode=0, **kw).numpy()


def add_table(name, w, bits, greedy=False):
    rows, d = w.shape
    case = {"kind": "table", "name": name, "bits": bits, "greedy": greedy, "rows": rows, "dim": d,
            "input": put(w, "<f4")}
    if bits == 16:
        h = torch.from_numpy(w).half()
        case["packed"] = put(h.numpy().view(np.uint8), "u1")
        case["dequant"] = put(h.float().numpy(), "<f4")
    else:
        p = prepack(w, bits, greedy)
        case["packed"] = put(p.numpy(), "u1")
        idx = np.arange(rows, dtype=np.int64)
        case["dequant"] = put(pool(p, bits, idx, idx.copy(), None), "<f4")
    index["cases"].append(case)
    return case


def add_bags(name, w, bits, nbags, weighted):
    rows, d = w.shape
    p = prepack(w, bits, False)
    lens = rng.integers(0, 6, nbags)
    idx = rng.integers(0, rows, int(lens.sum())).astype(np.int64)
    off = np.concatenate([[0], np.cumsum(lens)[:-1]]).astype(np.int64)
    wts = rng.standard_normal(len(idx)).astype(np.float32) if weighted else None
    out = pool(p, bits, idx, off, wts)
    case = {"kind": "bag", "name": name, "bits": bits, "rows": rows, "dim": d,
            "packed": put(p.numpy(), "u1"), "indices": put(idx, "<i8"),
            "offsets": put(np.concatenate([off, [len(idx)]]), "<i4"), "out": put(out, "<f4")}
    if weighted:
        case["weights"] = put(wts, "<f4")
    index["cases"].append(case)


def finite_rows(w):
    """Rows the greedy search terminates on in PyTorch: it loops forever when the
    range is a few ulps wide (the step is below half an ulp, so min/max never move)."""
    keep = []
    for r in w:
        lo, hi = float(np.min(r)), float(np.max(r))
        if not np.all(np.isfinite(r)):
            keep.append(r)
            continue
        with np.errstate(over="ignore"):
            step = np.float32(np.float32(hi) - np.float32(lo)) / np.float32(200)
        if hi == lo or (np.float32(lo) + step != np.float32(lo) and np.float32(hi) - step != np.float32(hi)):
            keep.append(r)
    return np.stack(keep)


for d in [1, 3, 16, 17, 64]:
    add_table(f"q8_d{d}", table(d), 8)
for d in [2, 6, 16, 18, 64]:
    add_table(f"q4_d{d}", table(d), 4)
for d in [4, 16, 20, 64]:
    add_table(f"q2_d{d}", table(d), 2)
for d in [16, 18, 64]:
    add_table(f"q4g_d{d}", finite_rows(table(d, nrandom=12)), 4, greedy=True)
for d in [16, 20, 64]:
    add_table(f"q2g_d{d}", finite_rows(table(d, nrandom=12)), 2, greedy=True)
for d in [3, 16]:
    add_table(f"f16_d{d}", table(d), 16)
for bits, d in [(8, 17), (8, 64), (4, 18), (4, 64), (2, 20), (2, 64)]:
    w = table(d, nrandom=20, special=False)
    add_bags(f"bag{bits}_d{d}", w, bits, 40, False)
    add_bags(f"bag{bits}_d{d}_w", w, bits, 40, True)

# A row where PyTorch's fma (evaluated in double, then rounded to float32) differs
# from a float32 FMA: s*q = 2^-24 + 2^-54 with s = 16519105*2^-55, q = 130, bias 1.0.
# The exact sum lies just above the float32 tie 1 + 2^-24; double rounding gives 1.0.
s = np.float32(16519105 * 2.0 ** -55)
row = np.frombuffer(bytes([130]) + struct.pack("<ff", s, 1.0), dtype=np.uint8).copy().reshape(1, 9)
p = torch.from_numpy(row)
idx = np.zeros(1, dtype=np.int64)
out = pool(p, 8, idx, idx.copy(), None)
assert out[0, 0] == 1.0, out
index["cases"].append({"kind": "bag", "name": "bag8_double_rounding", "bits": 8, "rows": 1, "dim": 1,
                       "packed": put(row, "u1"), "indices": put(idx, "<i8"),
                       "offsets": put(np.array([0, 1]), "<i4"), "out": put(out, "<f4")})

with open("vectors.bin", "wb") as f:
    f.write(blob)
with open("vectors.json", "w") as f:
    json.dump(index, f, indent=1)
    f.write("\n")
print(f"{len(index['cases'])} cases, {len(blob)} bytes")
