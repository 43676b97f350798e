#!/usr/bin/env bash
# tools/record.sh [--tiny] LIBVMALLOC OUTDIR
#
# Records the allocation traces of real programs that Debian installs (issue
# 4): each workload runs under LD_PRELOAD=LIBVMALLOC VMTRACE=OUTDIR/NAME.trace
# (an old trace is removed first: VMTRACE appends). Prints one line per
# workload on standard output:
#   NAME: N lines
#   NAME: skipped (missing PROGRAM; apt-get install PKG)
#   NAME: failed (exit STATUS; see OUTDIR/NAME.err)
# Workloads: awk (gawk, else mawk: the line then says "awk: N lines (mawk)"),
# gcc (g++ -fsyntax-only; its cc1plus child is traced, the largest per-process
# file is kept), sqlite, python (/usr/bin/python3, PYTHONMALLOC=malloc),
# perl, dot (graphviz), fragment (the paper's Figure 4: bench/synth_fragment,
# looked for next to LIBVMALLOC as bench/synth_fragment, or $SYNTH_FRAGMENT).
# Inputs are generated deterministically (tools/workloads/) in a temporary
# directory. --tiny shrinks every input about 100 times (CI: seconds).
# Exit status: 0, or 1 if a workload failed (skips are not failures).
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
wl=$here/workloads
tiny=0
case ${1:-} in
  --tiny) tiny=1; shift ;;
  -h|--help) sed -n '2,19p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
esac
if [ $# -ne 2 ]; then
  echo "usage: record.sh [--tiny] LIBVMALLOC OUTDIR" >&2
  exit 2
fi
lib=$1 out=$2
[ -f "$lib" ] || { echo "record.sh: $lib: no such library" >&2; exit 2; }
lib=$(cd "$(dirname "$lib")" && pwd)/$(basename "$lib")
mkdir -p "$out"
out=$(cd "$out" && pwd)
fragment=${SYNTH_FRAGMENT:-$(dirname "$lib")/bench/synth_fragment}

# Sizes: full, or about 1/100 with --tiny.
if [ $tiny = 1 ]; then
  words=3000 cxx=30 rows=300 pyscale=100 nodes=40 frag=100
  headers=none
else
  words=300000 cxx=150 rows=30000 pyscale=10000 nodes=2000 frag=10000
  headers=""
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
status=0
awkprog=$(command -v gawk || command -v mawk || command -v awk)
# Inputs, generated without the preload.
"$awkprog" -v words=$words -f "$wl/gentext.awk" >"$tmp/text.txt"
"$awkprog" -v n=$cxx -v headers="$headers" -f "$wl/gencxx.awk" >"$tmp/big.cc"
"$awkprog" -v rows=$rows -f "$wl/gensql.awk" >"$tmp/db.sql"
"$awkprog" -v nodes=$nodes -f "$wl/gengraph.awk" >"$tmp/graph.dot"

count() { local n; n=$(wc -l <"$1"); echo "${n// /}"; }

# run NAME NOTE COMMAND...: run under the preload with NAME's trace file.
run() {
  local name=$1 note=$2; shift 2
  local trace=$out/$name.trace rc=0
  rm -f "$trace"
  ( cd "$tmp" && LD_PRELOAD=$lib VMTRACE=$trace "$@" ) >"$tmp/$name.out" 2>"$out/$name.err" || rc=$?
  finish "$name" "$note" "$rc" "$trace"
}

finish() {
  local name=$1 note=$2 rc=$3 trace=$4
  if [ "$rc" != 0 ]; then
    echo "$name: failed (exit $rc; see $out/$name.err)"
    status=1
  elif [ ! -s "$trace" ]; then
    echo "$name: failed (no trace written; see $out/$name.err)"
    status=1
  else
    rm -f "$out/$name.err"
    echo "$name: $(count "$trace") lines${note:+ ($note)}"
  fi
}

skip() { echo "$1: skipped (missing $2; apt-get install $3)"; }

# awk: word frequencies, bigrams, concatenations.
if command -v gawk >/dev/null; then
  run awk "" gawk -f "$wl/wordfreq.awk" "$tmp/text.txt"
elif command -v mawk >/dev/null; then
  run awk mawk mawk -f "$wl/wordfreq.awk" "$tmp/text.txt"
else
  skip awk gawk gawk
fi

# gcc: the compiler proper (cc1plus) is a child of the driver; one file per
# process, keep the largest as gcc.trace.
if command -v g++ >/dev/null; then
  rm -f "$out"/gcc.*.trace "$out/gcc.trace"
  rc=0
  ( cd "$tmp" && LD_PRELOAD=$lib VMTRACE=$out/gcc.%p.trace g++ -std=c++17 -fsyntax-only big.cc ) \
    >"$tmp/gcc.out" 2>"$out/gcc.err" || rc=$?
  biggest=$(ls -S "$out"/gcc.*.trace 2>/dev/null | head -n 1 || true)
  if [ -n "$biggest" ]; then mv "$biggest" "$out/gcc.trace"; fi
  rm -f "$out"/gcc.*.trace
  finish gcc "" "$rc" "$out/gcc.trace"
else
  skip gcc g++ g++
fi

if command -v sqlite3 >/dev/null; then
  rm -f "$tmp/db.sqlite"
  run sqlite "" sh -c 'exec sqlite3 db.sqlite <db.sql'
else
  skip sqlite sqlite3 sqlite3
fi

# Debian's python (not a pyenv or venv one), every object through malloc;
# -S: no site import (less start-up in the trace).
if [ -x /usr/bin/python3 ]; then
  run python "" env PYTHONMALLOC=malloc /usr/bin/python3 -S "$wl/alloc.py" "$pyscale"
else
  skip python /usr/bin/python3 python3
fi

if command -v perl >/dev/null; then
  run perl "" perl "$wl/textstat.pl" "$tmp/text.txt"
else
  skip perl perl perl
fi

if command -v dot >/dev/null; then
  run dot "" dot -Tsvg "$tmp/graph.dot"
else
  skip dot dot graphviz
fi

if [ -x "$fragment" ]; then
  run fragment "" "$fragment" "$frag"
else
  echo "fragment: skipped (missing $fragment; cmake --build the build directory)"
fi
exit $status
