#!/usr/bin/env python3
"""The straightforward PyTorch way to compute deltascope's per-tensor statistics.

Used only as a speed baseline for `task bench` (Debian's python3-torch): both
safetensors files are memory-mapped, each tensor pair is upcast to float64 and the
same statistics as `deltascope analyze --rows` are computed tensor by tensor.

usage: torch_baseline.py BASE.safetensors VLA.safetensors
"""
import json
import mmap
import struct
import sys
import time

import torch

DTYPES = {"F32": torch.float32, "BF16": torch.bfloat16, "F16": torch.float16, "F64": torch.float64}


def open_safetensors(path):
    f = open(path, "rb")
    mm = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
    n = struct.unpack("<Q", mm[:8])[0]
    header = json.loads(mm[8 : 8 + n])
    header.pop("__metadata__", None)
    return mm, 8 + n, header


def tensor(mm, base, info):
    b, e = info["data_offsets"]
    t = torch.frombuffer(memoryview(mm)[base + b : base + e], dtype=DTYPES[info["dtype"]])
    return t.reshape(info["shape"])


def main():
    mb, ob, hb = open_safetensors(sys.argv[1])
    mv, ov, hv = open_safetensors(sys.argv[2])
    start = time.perf_counter()
    out = {}
    for name, info in hv.items():
        if name not in hb:
            continue
        w0 = tensor(mb, ob, hb[name]).to(torch.float64)
        w1 = tensor(mv, ov, info).to(torch.float64)
        d = w1 - w0
        s = {
            "fro_base": w0.norm().item(),
            "fro_vla": w1.norm().item(),
            "fro_delta": d.norm().item(),
            "max_abs_delta": d.abs().max().item() if d.numel() else 0.0,
            "mean_abs_delta": d.abs().mean().item() if d.numel() else 0.0,
            "cosine": torch.nn.functional.cosine_similarity(w0.flatten(), w1.flatten(), dim=0).item(),
            "changed_fraction": (d != 0).double().mean().item(),
        }
        s["rel_delta"] = s["fro_delta"] / s["fro_base"] if s["fro_base"] else 0.0
        if d.dim() >= 2:
            d2, w2 = d.flatten(1), w0.flatten(1)
            s["row_delta_norm"] = d2.norm(dim=1).tolist()
            s["row_base_norm"] = w2.norm(dim=1).tolist()
            s["col_delta_norm"] = d2.norm(dim=0).tolist()
            s["col_base_norm"] = w2.norm(dim=0).tolist()
        out[name] = s
    elapsed = time.perf_counter() - start
    print(json.dumps({"tensors": len(out), "seconds": elapsed}))


if __name__ == "__main__":
    main()
