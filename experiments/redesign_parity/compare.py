"""Compare two evaluate JSONs: every number except timings must be identical (RESULTS.md §12).

Usage: python compare.py BEFORE.json AFTER.json
"""

import json
import sys
from pathlib import Path


def walk(a: object, b: object, path: str, out: list[str]) -> None:
    if isinstance(a, dict) and isinstance(b, dict):
        for k in sorted(set(a) | set(b)):
            if k.endswith("_s"):
                continue  # timings
            if k not in a or k not in b:
                out.append(f"{path}.{k}: only in {'after' if k in b else 'before'}")
                continue
            walk(a[k], b[k], f"{path}.{k}", out)
    elif isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        for i, (x, y) in enumerate(zip(a, b)):
            walk(x, y, f"{path}[{i}]", out)
    elif a != b:
        out.append(f"{path}: {a!r} -> {b!r}")


def main() -> None:
    before, after = (json.loads(Path(p).read_text()) for p in sys.argv[1:3])
    out: list[str] = []
    walk(before, after, "", out)
    print("\n".join(out[:40]) if out else "IDENTICAL")
    print(len(out), "differences")


if __name__ == "__main__":
    main()
