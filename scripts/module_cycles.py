#!/usr/bin/env python3
"""Lists import cycles between the modules of a crate, from its `crate::` paths.

Usage: python3 scripts/module_cycles.py engine/src [--top]

Every `crate::a::b::c` path in a file (in `use` lines, braces included, and in code) is
mapped to the longest module that exists (a file `a/b.rs` or `a/b/mod.rs`); a file depends on
that module. `--top` folds modules into the crate's top-level ones (`runtime`, `coordinator`,
...). Prints each strongly connected component of more than one module, with one edge that
closes a cycle per pair, and exits 1 when there is any.
"""
import os
import re
import sys


def modules(src):
    """Maps each module path (tuple) to its file."""
    found = {}
    for dirpath, _, files in os.walk(src):
        for name in files:
            if not name.endswith(".rs"):
                continue
            rel = os.path.relpath(os.path.join(dirpath, name), src)
            parts = rel[:-3].split(os.sep)
            if parts[-1] in ("mod", "lib", "main"):
                parts = parts[:-1]
            found[tuple(parts)] = os.path.join(dirpath, name)
    return found


def crate_paths(text):
    """Every path that follows `crate::`, braces expanded one level at a time."""
    text = re.sub(r"//[^\n]*", "", text)
    paths = []
    for m in re.finditer(r"\bcrate::((?:\w+::)*)(\{|\w+)", text):
        prefix = [p for p in m.group(1).split("::") if p]
        if m.group(2) == "{":
            depth, i, start = 1, m.end(), m.end()
            while depth and i < len(text):
                depth += {"{": 1, "}": -1}.get(text[i], 0)
                i += 1
            inner = text[start : i - 1]
            for item in split_top(inner):
                paths.extend(prefix + sub for sub in expand(item))
        else:
            paths.append(prefix + [m.group(2)])
    return paths


def split_top(s):
    out, depth, cur = [], 0, ""
    for ch in s:
        if ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
        if ch == "," and depth == 0:
            out.append(cur)
            cur = ""
        else:
            cur += ch
    out.append(cur)
    return [x.strip() for x in out if x.strip()]


def expand(item):
    item = re.sub(r"\s+as\s+\w+$", "", item.strip())
    if "{" in item:
        head, rest = item.split("{", 1)
        prefix = [p for p in head.strip().rstrip(":").split("::") if p]
        return [prefix + sub for inner in split_top(rest[: rest.rfind("}")]) for sub in expand(inner)]
    return [[p for p in item.split("::") if p and p != "self"]]


def main():
    src = sys.argv[1]
    top = "--top" in sys.argv
    mods = modules(src)
    edges = {}
    for mod, path in mods.items():
        with open(path, encoding="utf-8") as f:
            text = f.read()
        # Unit tests may use anything; they are not part of the module graph.
        text = re.split(r"#\[cfg\(test\)\]\s*mod tests", text)[0]
        for p in crate_paths(text):
            target = ()
            for i in range(len(p), 0, -1):
                if tuple(p[:i]) in mods:
                    target = tuple(p[:i])
                    break
            a, b = (mod[:1], target[:1]) if top else (mod, target)
            if not b or a == b or (not top and (a[: len(b)] == b)):
                continue  # the crate root, itself, or a parent's re-export
            edges.setdefault(a, set()).add(b)
    # Tarjan's strongly connected components.
    index, low, stack, on, sccs, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in edges.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                sccs.append(comp)

    sys.setrecursionlimit(10000)
    for v in list(edges):
        if v not in index:
            visit(v)
    name = lambda m: "::".join(m) or "crate"
    for comp in sccs:
        members = set(comp)
        print("cycle:", ", ".join(sorted(name(m) for m in comp)))
        for a in sorted(comp):
            for b in sorted(edges.get(a, ())):
                if b in members:
                    print(f"    {name(a)} -> {name(b)}")
    if not sccs:
        print("no module cycles")
    sys.exit(1 if sccs else 0)


if __name__ == "__main__":
    main()
