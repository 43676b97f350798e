# workload.py — an allocation-heavy, deterministic Python program for the
# preload tests: dicts, lists, sets, strings, a JSON round trip, sorting,
# a class per record and some garbage-collected cycles. Run with
# PYTHONHASHSEED=0 so that set and dict orders do not vary between runs.
import gc
import json
import sys


class Rec:
    __slots__ = ("key", "vals", "peer")

    def __init__(self, key, vals):
        self.key = key
        self.vals = vals
        self.peer = None


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 20000
    words = ["w%05d-%s" % ((i * 7919) % n, "x" * (i % 37)) for i in range(n)]
    index = {}
    for i, w in enumerate(words):
        index.setdefault(w[:4], []).append(i)
    print("words", len(words), "buckets", len(index), "longest", max(len(v) for v in index.values()))

    recs = [Rec(w, list(range(i % 50))) for i, w in enumerate(words[: n // 2])]
    for a, b in zip(recs, recs[1:]):
        a.peer = b  # a long chain, dropped below
    total = sum(len(r.vals) for r in recs)
    print("records", len(recs), "values", total)
    del recs
    gc.collect()

    doc = {
        "items": [{"id": i, "name": words[i], "tags": [words[(i + k) % n][:6] for k in range(4)],
                   "score": (i * 37) % 1000 / 10.0} for i in range(0, n, 3)],
        "meta": {"n": n, "note": "round trip " * 20},
    }
    text = json.dumps(doc, sort_keys=True)
    back = json.loads(text)
    assert back == doc
    print("json", len(text), "items", len(back["items"]))

    s = sorted(words, key=lambda w: (w[::-1], len(w)))
    print("sorted first", s[0], "last", s[-1])
    joined = "|".join(s)
    parts = joined.split("|")
    print("joined", len(joined), "parts", len(parts), "upper", sum(1 for p in parts if p.upper() != p))

    uniq = set()
    for w in words:
        uniq.add(w.replace("x", "y")[: 8 + len(w) % 5])
    print("set", len(uniq), "min", min(uniq), "max", max(uniq))

    buf = []
    for i in range(2000):
        buf.append(bytearray(i % 700 + 1))
        if i % 3 == 0:
            buf[i // 2] = None
    print("bytearrays", sum(len(b) for b in buf if b is not None))

    cycles = []
    for i in range(3000):
        a, b = {}, {}
        a["b"], b["a"] = b, a
        cycles.append(a)
    del cycles
    print("gc", gc.collect() >= 0)


main()
