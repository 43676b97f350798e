"""alloc.py [SCALE] — the python workload: an allocation-heavy script
(dicts, lists, strings, a JSON round trip, sorting). Run it with
PYTHONMALLOC=malloc so that every object goes through malloc.
Deterministic: prints a few totals that depend only on SCALE."""
import json
import sys

scale = int(sys.argv[1]) if len(sys.argv) > 1 else 20000
seed = 12345


def rnd():
    global seed
    seed = (seed * 16807) % 2147483647
    return seed


words = ["".join(chr(97 + (rnd() % 26)) for _ in range(3 + rnd() % 8)) for _ in range(2000)]
records = []
index = {}
for i in range(scale):
    w = words[rnd() % len(words)]
    rec = {"id": i, "name": w + str(i), "tags": [words[rnd() % 2000] for _ in range(rnd() % 5)],
           "score": (rnd() % 100000) / 100.0, "pos": (rnd() % 1000, rnd() % 1000)}
    records.append(rec)
    index.setdefault(w, []).append(rec)

text = json.dumps(records)
back = json.loads(text)
assert len(back) == len(records)

byscore = sorted(back, key=lambda r: (-r["score"], r["name"]))
groups = {k: sorted(r["name"] for r in v) for k, v in index.items()}
joined = ",".join(r["name"].upper() for r in byscore[: scale // 2])
counts = {}
for r in back:
    for t in r["tags"]:
        counts[t] = counts.get(t, 0) + 1
top = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:10]
parts = []
for k in range(scale // 10):
    s = "%d:%s" % (k, words[k % 2000])
    parts.append(s * (1 + k % 4))
    if len(parts) > 500:
        parts = parts[250:]
sets = [set(r["tags"]) | {r["name"]} for r in back[: scale // 4]]
print(len(text), len(groups), len(joined), top[0][1] if top else 0, len(parts), sum(map(len, sets)))
