#!/usr/bin/python3
"""Regenerates the torch.save fixtures that modelio/torch_test.go and
modelio/pickle_test.go read. Committed for reproducibility; the Go tests never
run it. Needs PyTorch (apt-get install python3-torch) and numpy:

    cd modelio/testdata/torch && /usr/bin/python3 gen.py

Writes, next to itself:
  mixed.pt          plain torch.save(state_dict) of every dtype rq reads, plus a
                    transposed (non-contiguous) view, a slice with a storage
                    offset, a row sharing that slice's storage, an expanded
                    (stride 0) view, an nn.Parameter, a 0-d scalar and an empty tensor
  nested_p4.pt      {'model_state_dict': ..., metadata...}, pickle protocol 4
  model_key.pt      {'model': ..., 'step': 3}, protocol 2
  deflate.pt        mixed.pt re-zipped with deflate under another top folder
  legacy.pt         the pre-1.6 non-zip format (to be refused with a hint)
  hostile.pt        a zip whose data.pkl calls os.system (hand-built bytes; never loaded)
  expected.json     what the Go tests compare against
  plain_p{0..5}.pkl plain Python data pickled at each protocol, with a canonical
                    rendering of the value in expected.json (see canon below)
  seed_*.pkl        data.pkl of the fixtures and of ../../../../shared/criteo-18k/dlrm-criteo.pt,
                    fuzzing seeds
"""
import collections
import io
import json
import os
import pickle
import struct
import zipfile

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
torch.manual_seed(0)


def path(name):
    return os.path.join(HERE, name)


def tensor_bytes(t):
    """The tensor's elements in C order, little-endian, as hex."""
    flat = t.detach().contiguous().reshape(-1)
    if flat.dtype == torch.bool:
        flat = flat.to(torch.uint8)
    return flat.view(torch.uint8).numpy().tobytes().hex()


DT = {
    torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16",
    torch.float64: "F64", torch.int64: "I64", torch.int32: "I32",
    torch.int16: "I16", torch.int8: "I8", torch.uint8: "U8", torch.bool: "BOOL",
}


def describe(sd):
    return [{"name": k, "dtype": DT[v.dtype], "shape": list(v.shape), "hex": tensor_bytes(v)}
            for k, v in sd.items()]


def mixed_state_dict():
    sd = collections.OrderedDict()
    sd["f32"] = torch.randn(3, 4)
    sd["f16"] = torch.randn(5).half()
    sd["bf16"] = torch.randn(2, 3).bfloat16()
    sd["f64"] = torch.randn(2, 2).double()
    sd["i64"] = torch.tensor([-(2**40), -1, 0, 2**62], dtype=torch.int64)
    sd["i32"] = torch.tensor([-7, 0, 2**31 - 1], dtype=torch.int32)
    sd["i16"] = torch.tensor([-300, 12], dtype=torch.int16)
    sd["i8"] = torch.tensor([-128, 5, 127], dtype=torch.int8)
    sd["u8"] = torch.tensor([0, 1, 200, 255], dtype=torch.uint8)
    sd["bool"] = torch.tensor([True, False, True, True, False])
    base = torch.arange(15.0).reshape(3, 5)
    sd["transposed"] = base.t()  # [5,3] with stride (1,5): non-contiguous
    big = torch.arange(20, dtype=torch.float32).reshape(4, 5) * 0.5
    sd["sliced"] = big[1:3, 1:]  # offset 6, stride (5,1): non-contiguous
    sd["row"] = big[2]  # offset 10, contiguous, same storage as "sliced"
    sd["expanded"] = torch.tensor([1.0, 2.0, 3.0]).expand(2, 3)  # stride (0,1)
    sd["param"] = torch.nn.Parameter(torch.randn(2, 3))
    sd["scalar"] = torch.tensor(3.5)
    sd["empty"] = torch.zeros(0, 4)
    return sd


def small_state_dict():
    sd = collections.OrderedDict()
    sd["emb_l.0.weight"] = torch.randn(4, 2)
    sd["bot_l.0.weight"] = torch.randn(3, 2)
    sd["bot_l.0.bias"] = torch.randn(3)
    return sd


def canon(o):
    """A rendering of plain data both Python and Go produce identically."""
    if o is None:
        return "None"
    if isinstance(o, bool):
        return "True" if o else "False"
    if isinstance(o, int):
        return str(o)
    if isinstance(o, float):
        return "f" + struct.pack(">d", o).hex()
    if isinstance(o, str):
        return "u" + o.encode("utf-8").hex()
    if isinstance(o, (bytes, bytearray)):
        return "b" + bytes(o).hex()
    if isinstance(o, tuple):
        return "(" + ",".join(canon(x) for x in o) + ")"
    if isinstance(o, list):
        return "[" + ",".join(canon(x) for x in o) + "]"
    if isinstance(o, dict):
        return "{" + ",".join(canon(k) + ":" + canon(v) for k, v in o.items()) + "}"
    if isinstance(o, frozenset):
        return "frozenset{" + ",".join(sorted(canon(x) for x in o)) + "}"
    if isinstance(o, set):
        return "set{" + ",".join(sorted(canon(x) for x in o)) + "}"
    raise TypeError(type(o))


def plain_value():
    shared = [1, 2]
    return {
        "none": None, "t": True, "f": False,
        "ints": [0, 1, -1, 255, 256, 65535, 65536, -65536, 2**31 - 1, -(2**31), 2**31, 2**63 - 1,
                 -(2**63), 2**64, -(2**64) - 5, 10**40],
        "floats": [0.0, -0.0, 1.5, 1e300, -2.5e-308, float("inf"), float("-inf")],
        "str": "héllo\n\"q\" 'x' \\ \u20ac \U0001F600",
        "empty": "", "bytes": b"\x00\x01\xff abc", "nobytes": b"",
        "tuple0": (), "tuple1": (1,), "tuple2": (1, "a"), "tuple3": (1, 2, 3), "tuple5": (1, 2, 3, 4, 5),
        "nested": {"a": [shared, shared, (shared,)], (1, "k"): {"z": []}},
        "set": {1, 2, 3}, "fs": frozenset({"a", "b"}), "emptyset": set(),
        "long_list": list(range(1200)),
        "bigstr": "x" * 300,
        3: "int key", 2.5: "float key", None: "none key",
        "od": collections.OrderedDict([("b", 1), ("a", 2)]),
        "ba": bytearray(b"xy"),
    }


def zip_pickle(name, folder, pkl, extra=None, compress=zipfile.ZIP_STORED):
    with zipfile.ZipFile(path(name), "w", compress) as z:
        z.writestr(folder + "/data.pkl", pkl)
        z.writestr(folder + "/version", "3\n")
        for k, v in (extra or {}).items():
            z.writestr(folder + "/" + k, v)


def main():
    expected = {}

    mixed = mixed_state_dict()
    torch.save(mixed, path("mixed.pt"))
    expected["mixed"] = describe(mixed)

    small = small_state_dict()
    opt = torch.optim.SGD(torch.nn.Linear(2, 3).parameters(), lr=0.1, momentum=0.9)
    opt.zero_grad()
    list(opt.param_groups[0]["params"])[0].grad = torch.ones(3, 2)
    list(opt.param_groups[0]["params"])[1].grad = torch.ones(3)
    opt.step()  # creates momentum buffers (tensors) in the optimizer state
    nested = {
        "epoch": 7, "lr": 0.01, "name": "net", "hist": [1, 2.5, "x"], "pair": (3, 4),
        "acc": np.float64(0.75), "acc32": np.float32(0.5), "n": np.int64(12), "flag": np.bool_(True),
        "model_state_dict": small,
        "optimizer_state_dict": opt.state_dict(),
        "opt": {"buf": torch.zeros(2)},
        "huge": 2**70,
        "cfg": {"lr": 0.1, "dims": [13, 512]},
    }
    torch.save(nested, path("nested_p4.pt"), pickle_protocol=4)
    expected["nested_p4"] = {
        "tensors": describe(small),
        "meta": {"epoch": 7, "lr": 0.01, "name": "net", "hist": [1, 2.5, "x"], "pair": [3, 4],
                 "acc": 0.75, "acc32": 0.5, "n": 12, "flag": True, "huge": str(2**70),
                 "cfg": {"lr": 0.1, "dims": [13, 512]}},
        "skipped": ["model_state_dict", "optimizer_state_dict", "opt"],
    }

    torch.save({"model": small, "step": 3}, path("model_key.pt"))
    expected["model_key"] = {"tensors": describe(small), "meta": {"step": 3}}

    # The same archive deflated and under another folder name: torch never
    # compresses, but zip tools that repack checkpoints do.
    src = zipfile.ZipFile(path("mixed.pt"))
    with zipfile.ZipFile(path("deflate.pt"), "w", zipfile.ZIP_DEFLATED) as z:
        for info in src.infolist():
            z.writestr("my_model/" + info.filename.split("/", 1)[1], src.read(info.filename))

    torch.save(small, path("legacy.pt"), _use_new_zipfile_serialization=False)

    # os.system('echo pwned'): hand-written opcodes, never unpickled here.
    hostile = (b"\x80\x02cos\nsystem\nq\x00X\x0a\x00\x00\x00echo pwnedq\x01\x85q\x02Rq\x03.")
    zip_pickle("hostile.pt", "archive", hostile)

    plain = plain_value()
    expected["plain"] = canon(plain)
    for proto in range(6):
        with open(path("plain_p%d.pkl" % proto), "wb") as f:
            f.write(pickle.dumps(plain, protocol=proto))

    def seed(name, zpath):
        z = zipfile.ZipFile(zpath)
        pkl = [n for n in z.namelist() if n.endswith("/data.pkl")][0]
        data = z.read(pkl)
        assert len(data) < 50000, (zpath, len(data))
        with open(path("seed_" + name + ".pkl"), "wb") as f:
            f.write(data)

    seed("mixed", path("mixed.pt"))
    seed("nested_p4", path("nested_p4.pt"))
    seed("model_key", path("model_key.pt"))
    seed("hostile", path("hostile.pt"))
    shared = os.path.join(HERE, "..", "..", "..", "..", "shared", "criteo-18k", "dlrm-criteo.pt")
    if os.path.exists(shared):
        seed("dlrm", shared)

    with open(path("expected.json"), "w") as f:
        json.dump(expected, f, indent=1, sort_keys=True)
        f.write("\n")


if __name__ == "__main__":
    main()
