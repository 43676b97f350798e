#!/usr/bin/env bash
# bench/scope.sh BUILD_DIR [RUNS] — run bench_scope RUNS times (default 5) and
# print, per pattern, the median ns per scope of each allocator and its ratio
# to vmscope (how many times slower than a VM_SUBHEAP it is). talloc and APR
# columns appear when the build found them (Debian: apt-get install
# libtalloc-dev libapr1-dev, then reconfigure); otherwise bench_scope says so.
set -euo pipefail
build=${1:-build}
runs=${2:-5}
bin=$build/bench/bench_scope
[ -x "$bin" ] || { echo "scope.sh: $bin not built (cmake --build $build)" >&2; exit 1; }
tmp=$(mktemp)
trap 'rm -f "$tmp"' EXIT
for ((r = 0; r < runs; r++)); do
  if [ "$r" = 0 ]; then "$bin" >>"$tmp"; else "$bin" 2>/dev/null >>"$tmp"; fi
done
sort -k1,1 -k2,2 -k3,3g "$tmp" | awk '
  { key = $1 " " $2; v[key, ++n[key]] = $3; keys[key] = 1 }
  END {
    for (k in keys) { c = n[k]; m = (c % 2) ? v[k, (c + 1) / 2] : (v[k, c / 2] + v[k, c / 2 + 1]) / 2
                      split(k, p, " "); med[p[1], p[2]] = m; pat[p[1]] = 1; who[p[1], p[2]] = p[2] }
    printf "%-8s %-10s %12s %12s\n", "pattern", "allocator", "ns/scope", "vs vmscope"
    for (pt in pat) for (kw in who) { split(kw, q, SUBSEP); if (q[1] != pt) continue
      printf "%-8s %-10s %12.2f %11.2fx\n", pt, q[2], med[pt, q[2]], med[pt, q[2]] / med[pt, "vmscope"] }
  }' | { read -r h; echo "$h"; sort -k1,1 -k3,3g; }
