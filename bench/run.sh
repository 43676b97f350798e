#!/usr/bin/env bash
# bench/run.sh BUILD_DIR [RUNS] — run bench_regions RUNS times (default 5)
# with the system malloc, our malloc interface (libvmalloc.so preloaded) and
# every other malloc Debian installs, and
# print medians in ns per operation with ratios against glibc malloc.
set -euo pipefail
build=${1:-build}
runs=${2:-5}
bin=$build/bench/bench_regions
[ -x "$bin" ] || { echo "run.sh: $bin not built (cmake --build $build)" >&2; exit 1; }
libdir=/usr/lib/$(gcc -print-multiarch 2>/dev/null || echo x86_64-linux-gnu)
declare -A lib=([jemalloc]=$libdir/libjemalloc.so.2 [mimalloc]=$libdir/libmimalloc.so.2
                [tcmalloc]=$libdir/libtcmalloc_minimal.so.4)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
for ((r = 0; r < runs; r++)); do
  "$bin" all | sed 's/ malloc / glibc /' >>"$tmp/raw"
  # Our own malloc interface, preloaded like the others (absent when built
  # with VMALLOC_MALLOC=OFF).
  if nm -D --defined-only "$build/libvmalloc.so" 2>/dev/null | grep -qw malloc; then
    LD_PRELOAD=$build/libvmalloc.so "$bin" malloc | sed "s/ malloc / vmalloc /" >>"$tmp/raw"
  fi
  for name in jemalloc mimalloc tcmalloc; do
    if [ -e "${lib[$name]}" ]; then
      LD_PRELOAD=${lib[$name]} "$bin" malloc | sed "s/ malloc / $name /" >>"$tmp/raw"
    elif [ "$r" = 0 ]; then
      echo "missing $name: apt-get install libjemalloc2 libmimalloc2.0 libtcmalloc-minimal4" >&2
    fi
  done
done
# Median per (pattern, allocator), then ratios to glibc in the same run set.
sort -k1,1 -k2,2 -k3,3g "$tmp/raw" | awk '
  { key = $1 " " $2; v[key, ++n[key]] = $3; order[key] = 1 }
  END {
    for (k in order) { c = n[k]; m = (c % 2) ? v[k, (c + 1) / 2] : (v[k, c / 2] + v[k, c / 2 + 1]) / 2;
                       split(k, p, " "); med[p[1], p[2]] = m; pats[p[1]] = 1; allocs[p[1], p[2]] = p[2] }
    printf "%-8s %-14s %10s %10s\n", "pattern", "allocator", "ns/op", "vs glibc"
    for (pt in pats) for (ka in allocs) { split(ka, q, SUBSEP); if (q[1] != pt) continue
      printf "%-8s %-14s %10.2f %9.2fx\n", pt, q[2], med[pt, q[2]], med[pt, q[2]] / med[pt, "glibc"] }
  }' | { read -r h; echo "$h"; sort -k1,1 -k3,3g; }
