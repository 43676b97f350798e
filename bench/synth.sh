#!/usr/bin/env bash
# bench/synth.sh BUILD_DIR [RUNS] [THREADS...] — run the multi-threaded
# synthetic workloads (synth_larson, synth_prodcons, synth_smallobj) RUNS
# times (default 5) with each thread count (default 1 2) under glibc, our
# malloc (LD_PRELOAD=BUILD_DIR/libvmalloc.so), jemalloc, mimalloc and
# tcmalloc (Debian's libraries; a missing one is named on standard error with
# the apt-get line), and print the medians, one line each:
#   name threads allocator cpu_s wall_s rss_kb
# (cpu = user + sys seconds, rss = peak resident set in KiB). Environment:
# SYNTH_LARSON, SYNTH_PRODCONS, SYNTH_SMALLOBJ override each program's size
# argument. A run whose checksum differs from glibc's is an error.
set -euo pipefail
build=${1:-build}
runs=${2:-5}
shift $(( $# > 2 ? 2 : $# ))
threads=("$@")
[ ${#threads[@]} -gt 0 ] || threads=(1 2)
declare -A arg=([larson]=${SYNTH_LARSON:-5000000} [prodcons]=${SYNTH_PRODCONS:-1000000}
                [smallobj]=${SYNTH_SMALLOBJ:-400})
for s in larson prodcons smallobj; do
  [ -x "$build/bench/synth_$s" ] || { echo "synth.sh: $build/bench/synth_$s not built (cmake --build $build)" >&2; exit 1; }
done
. "$(dirname "${BASH_SOURCE[0]}")/allocators.sh"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# measure ALLOC CMD...: one run; appends "cpu wall rss" to stdout, the
# program's output to $tmp/out.
measure() {
  local a=$1; shift
  local pre=""
  [ "$a" = glibc ] || pre=${lib[$a]}
  if [ -x /usr/bin/time ]; then
    LD_PRELOAD=$pre /usr/bin/time -o "$tmp/t" -f '%U %S %e %M' "$@" >"$tmp/out"
    awk '{ printf "%.3f %.3f %d\n", $1 + $2, $3, $4 }' "$tmp/t"
  else
    # No GNU time: bash's own clock and the children's rusage through times.
    local t0=$EPOCHREALTIME
    LD_PRELOAD=$pre "$@" >"$tmp/out"
    local t1=$EPOCHREALTIME
    times | tail -n 1 | awk -v w="$(echo "$t1 - $t0" | bc)" '{
      split($1, u, /[ms]/); split($2, s, /[ms]/)
      printf "%.3f %.3f %d\n", u[1] * 60 + u[2] + s[1] * 60 + s[2], w, 0 }'
  fi
}
for s in larson prodcons smallobj; do
  for t in "${threads[@]}"; do
    want=$("$build/bench/synth_$s" "$t" "${arg[$s]}")
    for ((r = 0; r < runs; r++)); do
      for a in "${allocs[@]}"; do
        m=$(measure "$a" "$build/bench/synth_$s" "$t" "${arg[$s]}")
        if [ "$(cat "$tmp/out")" != "$want" ]; then
          echo "synth.sh: $s $t under $a printed '$(cat "$tmp/out")', glibc '$want'" >&2
          exit 1
        fi
        echo "$s $t $a $m" >>"$tmp/raw"
      done
    done
  done
done
# Medians of each column per (name, threads, allocator), in run order.
awk '
  { k = $1 " " $2 " " $3; if (!(k in n)) order[++nk] = k; i = ++n[k]
    c[k, i] = $4; w[k, i] = $5; m[k, i] = $6 }
  function med(a, k, cnt,   i, j, t, v) {
    for (i = 1; i <= cnt; i++) v[i] = a[k, i]
    for (i = 2; i <= cnt; i++) for (j = i; j > 1 && v[j - 1] > v[j]; j--) { t = v[j]; v[j] = v[j - 1]; v[j - 1] = t }
    return (cnt % 2) ? v[(cnt + 1) / 2] : (v[cnt / 2] + v[cnt / 2 + 1]) / 2
  }
  END {
    print "name threads allocator cpu_s wall_s rss_kb"
    for (o = 1; o <= nk; o++) { k = order[o]
      printf "%s %.3f %.3f %d\n", k, med(c, k, n[k]), med(w, k, n[k]), med(m, k, n[k]) }
  }' "$tmp/raw"
