#!/usr/bin/env bash
# bench/run.sh BUILD_DIR [RUNS] — the benchmarks of issues 4 and 5, each run
# RUNS times (default 5; the memory ones min(RUNS, 3) times) under glibc's
# malloc, our malloc interface (LD_PRELOAD=BUILD_DIR/libvmalloc.so) and
# Debian's jemalloc, mimalloc and tcmalloc (a missing one is named on
# standard error with its apt-get line). Prints three compact tables of
# medians, each with ratios against glibc and against the best peer in the
# same run (peers: glibc, jemalloc, mimalloc, tcmalloc):
#   1. bench_regions: ns per operation (CPU) per pattern, the region methods
#      beside the mallocs, then the issue-5 ratios: Vmlast/Vmpool with
#      VM_TRUST against a bare bump / free-list loop, and a private Vmbest
#      region against our malloc on the same pattern;
#   2. synth_purge: resident memory after a 1 GiB peak is freed (MiB), at
#      0 s, 0.1 s, 1 s, 2 s, after a little activity, and after the
#      allocator's release call (malloc_trim where it has one);
#   3. synth_soak: resident memory over a long larson-style run, and its
#      growth from the first 10% to the end.
# docs/bench.md says how to read them. Environment (defaults): BENCH_DIV (1)
# divides bench_regions' counts; PURGE_MIB (1024), PURGE_SECONDS (2),
# PURGE_THREADS (1); SOAK_THREADS (2), SOAK_REQUESTS (4000000); ALLOCATORS
# (all of them) restricts the list, e.g. "glibc vmalloc mimalloc".
# Nothing here is a pass/fail test: times are of a shared, noisy machine.
set -euo pipefail
build=${1:-build}
runs=${2:-5}
mruns=$(( runs < 3 ? runs : 3 ))
for p in bench_regions synth_purge synth_soak; do
  [ -x "$build/bench/$p" ] || { echo "run.sh: $build/bench/$p not built (cmake --build $build)" >&2; exit 1; }
done
. "$(dirname "${BASH_SOURCE[0]}")/allocators.sh"
if [ -n "${ALLOCATORS:-}" ]; then
  keep=()
  for a in "${allocs[@]}"; do [[ " $ALLOCATORS " == *" $a "* ]] && keep+=("$a"); done
  allocs=("${keep[@]}")
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
div=${BENCH_DIV:-1}

# ---- 1. bench_regions --------------------------------------------------------
echo "== bench_regions: ns per operation (CPU), medians of $runs runs" >&2
for ((r = 0; r < runs; r++)); do
  for a in "${allocs[@]}"; do
    if [ "$a" = glibc ]; then
      "$build/bench/bench_regions" all "$div" | sed 's/ malloc / glibc /' >>"$tmp/regions"
    else
      LD_PRELOAD=${lib[$a]} "$build/bench/bench_regions" malloc "$div" | sed "s/ malloc / $a /" >>"$tmp/regions"
    fi
  done
done
echo "== bench_regions: ns per operation (CPU), medians of $runs runs"
awk -v peers="glibc jemalloc mimalloc tcmalloc" '
  function median(k,   c, i, j, t, v) {
    c = n[k]; for (i = 1; i <= c; i++) v[i] = val[k, i]
    for (i = 2; i <= c; i++) for (j = i; j > 1 && v[j - 1] > v[j]; j--) { t = v[j]; v[j] = v[j - 1]; v[j - 1] = t }
    return (c % 2) ? v[(c + 1) / 2] : (v[c / 2] + v[c / 2 + 1]) / 2
  }
  { k = $1 SUBSEP $2; if (!(k in n)) order[++nk] = k; val[k, ++n[k]] = $3 }
  END {
    split(peers, P, " "); for (i in P) isPeer[P[i]] = 1
    for (o = 1; o <= nk; o++) { split(order[o], q, SUBSEP); med[q[1], q[2]] = median(order[o])
      if (q[2] in isPeer && (!((q[1]) in best) || med[q[1], q[2]] < best[q[1]])) { best[q[1]] = med[q[1], q[2]]; bestName[q[1]] = q[2] } }
    printf "%-8s %-14s %9s %9s %12s\n", "pattern", "allocator", "ns/op", "vs glibc", "vs best peer"
    split("random fixed bump", pats, " ")
    for (p = 1; p <= 3; p++) for (o = 1; o <= nk; o++) { split(order[o], q, SUBSEP); if (q[1] != pats[p]) continue
      m = med[q[1], q[2]]; g = med[q[1], "glibc"]
      printf "%-8s %-14s %9.2f %8.2fx %11.2fx\n", q[1], q[2], m, g ? m / g : 0, best[q[1]] ? m / best[q[1]] : 0 }
    printf "best peer: random %s, fixed %s, bump %s\n", bestName["random"], bestName["fixed"], bestName["bump"]
    if (med["bump", "bare-bump"]) printf "Vmlast with VM_TRUST = %.2fx a bare bump loop (without: %.2fx)\n",
      med["bump", "vmlast-trust"] / med["bump", "bare-bump"], med["bump", "vmlast"] / med["bump", "bare-bump"]
    if (med["fixed", "bare-freelist"]) printf "Vmpool with VM_TRUST = %.2fx a bare free-list loop (without: %.2fx)\n",
      med["fixed", "vmpool-trust"] / med["fixed", "bare-freelist"], med["fixed", "vmpool"] / med["fixed", "bare-freelist"]
    if (med["random", "vmalloc"]) printf "private Vmbest region = %.2fx our malloc on the random pattern (VM_TRUST: %.2fx)\n",
      med["random", "vmbest"] / med["random", "vmalloc"], med["random", "vmbest-trust"] / med["random", "vmalloc"]
  }' "$tmp/regions"

# kv_medians FILE: lines "ALLOC key=value ..." -> per allocator, in first-seen
# order, "ALLOC key=median ..." (a non-numeric value: the first one seen).
kv_medians() {
  awk '
    function median(k,   c, i, j, t, v) {
      c = n[k]; for (i = 1; i <= c; i++) v[i] = val[k, i]
      for (i = 2; i <= c; i++) for (j = i; j > 1 && v[j - 1] > v[j]; j--) { t = v[j]; v[j] = v[j - 1]; v[j - 1] = t }
      return (c % 2) ? v[(c + 1) / 2] : (v[c / 2] + v[c / 2 + 1]) / 2
    }
    { a = $1; if (!(a in seen)) { seen[a] = 1; order[++na] = a }
      for (i = 2; i <= NF; i++) { split($i, kv, "="); if (kv[2] == "") continue
        k = a SUBSEP kv[1]; if (!(k in n)) keys[a, ++nkeys[a]] = kv[1]
        if (kv[2] ~ /^-?[0-9.]+$/) val[k, ++n[k]] = kv[2]; else if (!(k in text)) text[k] = kv[2] } }
    END { for (o = 1; o <= na; o++) { a = order[o]; line = a
      for (i = 1; i <= nkeys[a]; i++) { k = a SUBSEP keys[a, i]
        line = line " " keys[a, i] "=" ((k in text) ? text[k] : median(k)) }
      print line } }' "$1"
}

# ---- 2. synth_purge ----------------------------------------------------------
pmib=${PURGE_MIB:-1024} psec=${PURGE_SECONDS:-2} pthr=${PURGE_THREADS:-1}
echo "== synth_purge $pmib MiB, $psec s, $pthr thread(s): medians of $mruns runs" >&2
for ((r = 0; r < mruns; r++)); do
  for a in "${allocs[@]}"; do
    line=$(LD_PRELOAD=${lib[$a]} "$build/bench/synth_purge" "$pmib" "$psec" "$pthr")
    echo "$a ${line#purge }" >>"$tmp/purge"
  done
done
echo
echo "== synth_purge: $pmib MiB peak freed down to its live set, $pthr thread(s); resident MiB; medians of $mruns runs"
kv_medians "$tmp/purge" | awk -v peers="glibc jemalloc mimalloc tcmalloc" '
  function kv(line, key,   i, f, p) { f = split(line, p, " "); for (i = 2; i <= f; i++) if (index(p[i], key "=") == 1) return substr(p[i], length(key) + 2); return "" }
  function mib(x) { return x / 1024 }
  { a = $1; order[++na] = a; L[a] = $0; end[a] = kv($0, "rss_end_kb") - kv($0, "base_kb")
    tr[a] = kv($0, "trim_kb") - kv($0, "base_kb") }
  END {
    split(peers, P, " "); for (i in P) isPeer[P[i]] = 1
    for (o = 1; o <= na; o++) { a = order[o]; if (a in isPeer) {
      if (!bestEnd || end[a] < bestEnd) { bestEnd = end[a]; be = a }
      if (!bestTr || tr[a] < bestTr) { bestTr = tr[a]; bt = a } } }
    printf "%-9s %6s %6s %6s %6s %6s %6s %8s %6s %6s %-17s %8s %8s %9s\n", "allocator", "peak", "live",
      "0s", "0.1s", "1s", "end", "settle", "poke", "trim", "(release call)", "end/live", "trim/live", "end/best"
    for (o = 1; o <= na; o++) { a = order[o]; l = L[a]; live = kv(l, "live_kb")
      s = kv(l, "settle_ms"); s = (s < 0) ? "never" : s "ms"
      printf "%-9s %6.0f %6.0f %6.0f %6.0f %6.0f %6.0f %8s %6.0f %6.0f %-17s %7.2fx %8.2fx %8.2fx\n", a,
        mib(kv(l, "peak_kb")), mib(live), mib(kv(l, "rss0_kb")), mib(kv(l, "rss100ms_kb")),
        mib(kv(l, "rss1s_kb")), mib(kv(l, "rss_end_kb")), s, mib(kv(l, "poke_kb")), mib(kv(l, "trim_kb")),
        kv(l, "release"), end[a] / live, tr[a] / live, bestEnd ? end[a] / bestEnd : 0 }
    printf "(end, trim: resident set less the start-up one; best peer: %s at the end, %s after release)\n", be, bt
  }'

# ---- 3. synth_soak -----------------------------------------------------------
sthr=${SOAK_THREADS:-2} sreq=${SOAK_REQUESTS:-4000000}
echo "== synth_soak $sthr threads, $sreq requests: medians of $mruns runs" >&2
for ((r = 0; r < mruns; r++)); do
  for a in "${allocs[@]}"; do
    line=$(LD_PRELOAD=${lib[$a]} "$build/bench/synth_soak" "$sthr" "$sreq")
    echo "$a ${line#soak }" >>"$tmp/soak"
  done
done
# The same requests under every allocator: the same checksum.
if [ "$(grep -o 'sum=[0-9]*' "$tmp/soak" | sort -u | wc -l)" != 1 ]; then
  echo "run.sh: synth_soak's checksum differs between allocators:" >&2; cat "$tmp/soak" >&2; exit 1
fi
echo
echo "== synth_soak: $sthr threads, $sreq larson-style requests; resident MiB; medians of $mruns runs"
kv_medians "$tmp/soak" | awk -v peers="glibc jemalloc mimalloc tcmalloc" '
  function kv(line, key,   i, f, p) { f = split(line, p, " "); for (i = 2; i <= f; i++) if (index(p[i], key "=") == 1) return substr(p[i], length(key) + 2); return "" }
  { a = $1; order[++na] = a; L[a] = $0; end[a] = kv($0, "rss_end_kb") + 0; cpu[a] = kv($0, "cpu_ms") + 0 }
  END {
    split(peers, P, " "); for (i in P) isPeer[P[i]] = 1
    for (o = 1; o <= na; o++) { a = order[o]; if (a in isPeer) {
      if (!bm || end[a] < bm) { bm = end[a]; bmn = a }
      if (!bc || cpu[a] < bc) { bc = cpu[a]; bcn = a } } }
    printf "%-9s %6s %6s %6s %6s %8s %8s %9s %8s %9s\n", "allocator", "live", "at 10%", "end", "max", "growth",
      "cpu ms", "cpu/best", "end/glibc", "end/best"
    for (o = 1; o <= na; o++) { a = order[o]; l = L[a]
      printf "%-9s %6.1f %6.1f %6.1f %6.1f %7.1f%% %8.0f %8.2fx %8.2fx %8.2fx\n", a, kv(l, "live_kb") / 1024,
        kv(l, "rss10_kb") / 1024, end[a] / 1024, kv(l, "rss_max_kb") / 1024, kv(l, "growth_pct"), cpu[a],
        bc ? cpu[a] / bc : 0, end["glibc"] ? end[a] / end["glibc"] : 0, bm ? end[a] / bm : 0 }
    printf "(best peer: %s for memory, %s for time)\n", bmn, bcn
  }'
