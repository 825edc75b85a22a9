#!/usr/bin/env python3
"""Field-by-field diff of two summary JSON files."""
import json, sys
def walk(a, b, path, out):
    if isinstance(a, dict) and isinstance(b, dict):
        for k in list(a) + [k for k in b if k not in a]:
            if k not in a: out.append(f"{path}.{k}: missing in A, B={b[k]!r}")
            elif k not in b: out.append(f"{path}.{k}: A={a[k]!r}, missing in B")
            else: walk(a[k], b[k], f"{path}.{k}", out)
    elif isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b): out.append(f"{path}: length A={len(a)} B={len(b)}")
        for i, (x, y) in enumerate(zip(a, b)):
            name = x.get("name", i) if isinstance(x, dict) else i
            walk(x, y, f"{path}[{name}]", out)
    elif a != b or type(a) != type(b):
        out.append(f"{path}: A={a!r} B={b!r}")
a = json.load(open(sys.argv[1])); b = json.load(open(sys.argv[2]))
out = []; walk(a, b, "", out)
print("\n".join(out) if out else "IDENTICAL")
sys.exit(1 if out else 0)
