#!/usr/bin/env bash
# run.sh — real programs under LD_PRELOAD=libvmalloc.so (one ctest test each).
#
#   run.sh NAME LIBVMALLOC WORKDIR HELPERDIR
#
# NAME is one of
#   python3   Debian's /usr/bin/python3 on workload.py, with pymalloc and
#             with PYTHONMALLOC=malloc (every object through malloc)
#   perl      /usr/bin/perl on workload.pl
#   sqlite3   sqlite3: a few thousand INSERTs in a transaction, an index,
#             aggregate queries
#   cxx       cxx_map.cpp, compiled here with g++ (std::map, std::string, ...)
#   threads   threads.c (built by CMake into HELPERDIR): 4 threads
#   env       the environment: VMETHOD, VMDEBUG, VMPROFILE, VMALLOC_OPTIONS,
#             %p in VMTRACE, fork and exec under preload, a program that
#             closes the trace's descriptor and opens its own file
#
# Each program runs twice, plainly and with LD_PRELOAD=LIBVMALLOC and
# VMTRACE=WORKDIR/trace.%p. The exit status, stdout and stderr must be the
# same, and the trace must show that vmalloc served the program: many lines,
# every one a well-formed record (old:new:size:region:method:), allocation,
# free and realloc records of the expected method, and a coherent history
# per region: no block allocated while live, no free or realloc of a block
# that is not live (checked in trace order, which is the order the heap
# served the calls in).
#
# A program that is not installed is a skip (exit 77) on a developer's
# machine and a failure in CI (CI=true): .ci/run installs them.
set -uo pipefail

name=$1 lib=$2 work=$3 helpers=$4
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

fail() {
    echo "preload_$name: FAIL: $*" >&2
    exit 1
}

need() {
    [ -x "$1" ] && return 0
    if [ "${CI:-}" = true ]; then
        fail "$1 is not installed (CI must install it: .ci/run)"
    fi
    echo "preload_$name: SKIP: $1 is not installed" >&2
    exit 77
}

[ -f "$lib" ] || fail "no library $lib"
case "$lib" in /*) ;; *) fail "LIBVMALLOC must be an absolute path" ;; esac
rm -rf "$work"
mkdir -p "$work" || fail "cannot create $work"

# The trace line of a record; the method is checked separately.
RECORD='^0x[0-9a-f]+:0x[0-9a-f]+:[0-9]+:0x[0-9a-f]+:(best|last|pool|debug|profile):((open|clear|close):)?$'

# check_trace FILE MIN METHOD [nohistory]: FILE is one process's trace.
check_trace() {
    local file=$1 min=$2 method=$3 history=${4:-history}
    [ -s "$file" ] || fail "no trace in $file"
    local bad
    bad=$(grep -Evc "$RECORD" "$file")
    if [ "$bad" != 0 ]; then
        grep -Ev "$RECORD" "$file" | head -5 >&2
        fail "$bad malformed lines in $file"
    fi
    awk -F: -v min="$min" -v method="$method" -v history="$history" -v file="$file" '
        function err(msg) { if (errors++ < 10) print file ":" NR ": " msg ": " $0 > "/dev/stderr" }
        {
            lines++
            if ($5 != method) wrong++
            if ($1 == "0x0" && $2 == "0x0") { regions++; next }
            k = $4 ":" $1; nk = $4 ":" $2
            if ($1 == "0x0") {
                allocs++
                if (history == "history" && (nk in live)) err("allocated while live")
                live[nk] = 1
            } else if ($2 == "0x0") {
                frees++
                if (history == "history" && !(k in live)) err("free of a block not live")
                delete live[k]
            } else {
                reallocs++
                if (history == "history" && !(k in live)) err("realloc of a block not live")
                delete live[k]
                if (history == "history" && (nk in live)) err("realloc to a block live")
                live[nk] = 1
            }
        }
        END {
            printf "  %s: %d lines: %d allocations, %d frees, %d reallocs, %d region records\n",
                   file, lines, allocs, frees, reallocs, regions
            if (lines < min) { print file ": " lines " lines, want at least " min > "/dev/stderr"; exit 1 }
            if (wrong) { print file ": " wrong " lines name another method than " method > "/dev/stderr"; exit 1 }
            if (!allocs || !frees) { print file ": no allocation or no free records" > "/dev/stderr"; exit 1 }
            if (errors) { print file ": " errors " history errors" > "/dev/stderr"; exit 1 }
        }' "$file" || fail "trace $file"
}

# run_pair LABEL MIN_LINES [env NAME=VALUE ...] -- COMMAND ...: run plainly
# and preloaded; stdin comes from $IN (default /dev/null). Same status,
# stdout and stderr; then each trace file is checked, and the preloaded run
# must have written at least one. $RESET, if set, is removed before each run.
run_pair() {
    local label=$1 min=$2
    shift 2
    local envs=()
    while [ "$1" != -- ]; do envs+=("$1"); shift; done
    shift
    local dir=$work/$label
    mkdir -p "$dir"
    local rc0=0 rc1=0
    [ -z "${RESET:-}" ] || rm -f "$RESET" # a file each run must start without
    env -u LD_PRELOAD -u VMTRACE -u VMETHOD -u VMDEBUG -u VMPROFILE -u VMALLOC_OPTIONS \
        "${envs[@]}" "$@" < "${IN:-/dev/null}" > "$dir/plain.out" 2> "$dir/plain.err" || rc0=$?
    [ -z "${RESET:-}" ] || rm -f "$RESET"
    env -u VMETHOD -u VMDEBUG -u VMPROFILE -u VMALLOC_OPTIONS "${envs[@]}" \
        LD_PRELOAD="$lib" VMTRACE="$dir/trace.%p" \
        "$@" < "${IN:-/dev/null}" > "$dir/preload.out" 2> "$dir/preload.err" || rc1=$?
    [ "$rc0" = "$rc1" ] || { cat "$dir/preload.err" >&2; fail "$label: exit status $rc0 plainly, $rc1 preloaded"; }
    [ "$rc0" = 0 ] || { cat "$dir/plain.err" >&2; fail "$label: the program failed (status $rc0) even without vmalloc"; }
    cmp -s "$dir/plain.out" "$dir/preload.out" || {
        diff "$dir/plain.out" "$dir/preload.out" | head -20 >&2
        fail "$label: stdout differs under LD_PRELOAD"
    }
    cmp -s "$dir/plain.err" "$dir/preload.err" || {
        diff "$dir/plain.err" "$dir/preload.err" | head -20 >&2
        fail "$label: stderr differs under LD_PRELOAD"
    }
    [ -s "$dir/plain.out" ] || fail "$label: the program printed nothing"
    local traces=("$dir"/trace.*)
    [ -e "${traces[0]}" ] || fail "$label: no trace file $dir/trace.<pid>"
    echo "$label: output identical ($(wc -l < "$dir/plain.out") lines), ${#traces[@]} trace file(s)"
    local t
    for t in "${traces[@]}"; do
        check_trace "$t" "$min" best "${HISTORY:-history}"
    done
}

# ---- the programs ------------------------------------------------------------

python=/usr/bin/python3 # Debian's, not whatever python3 is first on PATH
perl=/usr/bin/perl

case "$name" in
python3)
    need "$python"
    run_pair pymalloc 1000 PYTHONHASHSEED=0 -- "$python" -s -B "$here/workload.py" 20000
    # every object through malloc: hundreds of thousands of calls
    run_pair malloc 100000 PYTHONHASHSEED=0 PYTHONMALLOC=malloc -- \
        "$python" -s -B "$here/workload.py" 8000
    ;;
perl)
    need "$perl"
    run_pair perl 1000 -- "$perl" "$here/workload.pl" 30000
    ;;
sqlite3)
    sqlite=$(command -v sqlite3 || echo /usr/bin/sqlite3)
    need "$sqlite"
    sql=$work/load.sql
    awk 'BEGIN {
        print "CREATE TABLE t(id INTEGER PRIMARY KEY, name TEXT, grp INTEGER, val REAL, note TEXT);"
        print "BEGIN;"
        for (i = 1; i <= 5000; i++)
            printf "INSERT INTO t(name, grp, val, note) VALUES (%c%s%d%c, %d, %d.25, %c%s%c);\n",
                   39, "name-", (i * 7919) % 5000, 39, i % 37, i * 3, 39, substr("abcdefghijklmnopqrstuvwxyz0123456789", 1, 1 + i % 36), 39
        print "COMMIT;"
        print "CREATE INDEX t_grp ON t(grp, name);"
        print "SELECT count(*), sum(val), min(name), max(name) FROM t;"
        print "SELECT grp, count(*), sum(length(note)), group_concat(id % 10, \"\") FROM t GROUP BY grp ORDER BY grp LIMIT 5;"
        print "UPDATE t SET note = note || note WHERE grp % 3 = 0;"
        print "DELETE FROM t WHERE grp % 5 = 1;"
        print "SELECT count(*), sum(length(note)), total(val) FROM t;"
        print "SELECT name FROM t WHERE grp = 7 ORDER BY name DESC LIMIT 3;"
    }' > "$sql"
    IN=$sql run_pair memory 1000 -- "$sqlite" -batch :memory:
    IN=$sql RESET=$work/db run_pair file 1000 -- "$sqlite" -batch "$work/db"
    ;;
cxx)
    cxx=${CXX:-$(command -v g++ || echo /usr/bin/g++)}
    need "$cxx"
    "$cxx" -O2 -std=c++17 -o "$work/cxx_map" "$here/cxx_map.cpp" 2> "$work/cxx.err" || {
        cat "$work/cxx.err" >&2
        fail "cannot compile cxx_map.cpp with $cxx"
    }
    run_pair cxx 1000 -- "$work/cxx_map"
    ;;
threads)
    [ -x "$helpers/preload_threads_prog" ] || fail "no $helpers/preload_threads_prog"
    run_pair threads 10000 -- "$helpers/preload_threads_prog"
    ;;
env)
    need "$python"
    prog=("$python" -s -B -c 'print(sum(range(100)))')
    # run_env LABEL EXPECT_WARNINGS TRACE_METHOD [NAME=VALUE ...]: preloaded
    # with the settings; prints 4950, exactly EXPECT_WARNINGS lines on
    # stderr, each starting "vmalloc:", and a trace of TRACE_METHOD.
    run_env() {
        local label=$1 nwarn=$2 method=$3
        shift 3
        local dir=$work/$label
        mkdir -p "$dir"
        local rc=0
        env -u VMETHOD -u VMDEBUG -u VMPROFILE -u VMALLOC_OPTIONS -u VMTRACE \
            LD_PRELOAD="$lib" VMTRACE="$dir/trace.%p" "$@" "${prog[@]}" \
            > "$dir/out" 2> "$dir/err" || rc=$?
        [ "$rc" = 0 ] || { cat "$dir/err" >&2; fail "$label: exit status $rc"; }
        [ "$(cat "$dir/out")" = 4950 ] || fail "$label: printed '$(cat "$dir/out")', want 4950"
        local lines warn
        lines=$(wc -l < "$dir/err")
        warn=$(grep -c '^vmalloc: ' "$dir/err")
        if [ "$lines" != "$nwarn" ] || [ "$warn" != "$nwarn" ]; then
            cat "$dir/err" >&2
            fail "$label: $lines lines on stderr, $warn of them 'vmalloc: ...', want exactly $nwarn"
        fi
        [ "$nwarn" = 0 ] || echo "$label: $(cat "$dir/err")"
        local traces=("$dir"/trace.*)
        [ "${#traces[@]}" = 1 ] && [ -e "${traces[0]}" ] || fail "$label: ${#traces[@]} trace files"
        check_trace "${traces[0]}" 100 "$method" history
    }
    run_env plain 0 best
    run_env method-bogus 1 best VMETHOD=bogus
    run_env method-debug 0 debug VMETHOD=debug
    run_env method-vmdebug 0 debug VMETHOD=Vmdebug
    run_env method-profile 0 profile VMETHOD=profile
    run_env vmdebug 0 debug VMDEBUG=1
    run_env vmprofile 0 profile VMPROFILE=/dev/null
    run_env options-bogus 1 best VMALLOC_OPTIONS=method=bogus
    run_env options-debug 0 debug VMALLOC_OPTIONS=debug
    run_env debug-and-profile 1 debug VMDEBUG=1 VMPROFILE=/dev/null
    run_env options-unknown 1 best VMALLOC_OPTIONS=nosuchoption
    run_env purge-off 0 best VMALLOC_OPTIONS=purge_thread=0
    run_env purge-bad 1 best VMALLOC_OPTIONS=purge_thread=off
    run_env method-best 0 best VMETHOD=best
    run_env method-Vmbest 0 best VMETHOD=Vmbest
    run_env method-last 0 last VMETHOD=last
    run_env method-Vmlast 0 last VMETHOD=Vmlast
    run_env method-vmlast 0 last VMETHOD=vmlast
    run_env options-last 0 last VMALLOC_OPTIONS=method=last
    # VMETHOD wins over VMALLOC_OPTIONS
    run_env method-wins 0 best VMETHOD=best VMALLOC_OPTIONS=method=last

    # warn=PATH: the warning goes to PATH, stderr stays empty
    dir=$work/warn
    mkdir -p "$dir"
    env LD_PRELOAD="$lib" VMALLOC_OPTIONS="method=bogus,warn=$dir/warnings" "${prog[@]}" \
        > "$dir/out" 2> "$dir/err" || fail "warn: exit status $?"
    [ "$(cat "$dir/out")" = 4950 ] || fail "warn: wrong output"
    [ ! -s "$dir/err" ] || { cat "$dir/err" >&2; fail "warn: stderr is not empty"; }
    [ "$(grep -c '^vmalloc: ' "$dir/warnings")" = 1 ] || fail "warn: $dir/warnings has no one vmalloc: line"
    echo "warn: $(cat "$dir/warnings")"

    # a trace file that cannot be opened: one warning, the program runs
    dir=$work/trace-unopenable
    mkdir -p "$dir"
    env LD_PRELOAD="$lib" VMTRACE="$dir/no/such/dir/t" "${prog[@]}" > "$dir/out" 2> "$dir/err" \
        || fail "trace-unopenable: exit status $?"
    [ "$(cat "$dir/out")" = 4950 ] || fail "trace-unopenable: wrong output"
    [ "$(wc -l < "$dir/err")" = 1 ] && [ "$(grep -c '^vmalloc: ' "$dir/err")" = 1 ] \
        || { cat "$dir/err" >&2; fail "trace-unopenable: want one vmalloc: line on stderr"; }
    echo "trace-unopenable: $(cat "$dir/err")"

    # trace=PATH in VMALLOC_OPTIONS, with the method; no %p: the exact name
    dir=$work/options-trace
    mkdir -p "$dir"
    env LD_PRELOAD="$lib" VMALLOC_OPTIONS="method=last,trace=$dir/t" "${prog[@]}" \
        > "$dir/out" 2> "$dir/err" || fail "options-trace: exit status $?"
    [ "$(cat "$dir/out")" = 4950 ] && [ ! -s "$dir/err" ] || fail "options-trace: wrong output"
    check_trace "$dir/t" 100 last none

    # VMETHOD=pool: a program of one size runs on Vmpool
    [ -x "$helpers/preload_pool_one_prog" ] || fail "no $helpers/preload_pool_one_prog"
    dir=$work/pool
    mkdir -p "$dir"
    "$helpers/preload_pool_one_prog" > "$dir/plain.out" || fail "pool_one failed without vmalloc"
    env LD_PRELOAD="$lib" VMETHOD=pool VMTRACE="$dir/trace" "$helpers/preload_pool_one_prog" \
        > "$dir/out" 2> "$dir/err" || { cat "$dir/err" >&2; fail "pool: pool_one failed on Vmpool"; }
    cmp -s "$dir/plain.out" "$dir/out" && [ ! -s "$dir/err" ] || fail "pool: different output"
    check_trace "$dir/trace" 6000 pool history

    # %p is the pid: python prints its pid, the trace file has that name
    dir=$work/pid
    mkdir -p "$dir"
    pid=$(env LD_PRELOAD="$lib" VMTRACE="$dir/trace.%p.txt" "$python" -s -B -c 'import os; print(os.getpid())') \
        || fail "pid: python failed"
    [ -s "$dir/trace.$pid.txt" ] || fail "pid: no $dir/trace.$pid.txt (files: $(ls "$dir"))"
    [ "$(ls "$dir" | wc -l)" = 1 ] || fail "pid: files $(ls "$dir")"
    echo "pid: trace.$pid.txt"

    # fork: the parent's and the child's calls each in their own file
    dir=$work/fork
    mkdir -p "$dir"
    out=$(env LD_PRELOAD="$lib" VMTRACE="$dir/trace.%p" "$python" -s -B -c '
import os, sys
data = [str(i) * 10 for i in range(5000)]
pid = os.fork()
if pid == 0:
    more = {i: str(i) * 20 for i in range(5000)}
    print("child", os.getpid(), len(more))
    sys.stdout.flush()
    sys.exit(0)
_, status = os.waitpid(pid, 0)
print("parent", os.getpid(), "child", pid, "status", status)
') || fail "fork: python failed"
    parent=$(echo "$out" | awk '$1 == "parent" { print $2 }')
    child=$(echo "$out" | awk '$1 == "parent" { print $4 }')
    status=$(echo "$out" | awk '$1 == "parent" { print $6 }')
    [ "$status" = 0 ] || fail "fork: the child exited with status $status: $out"
    echo "$out" | grep -q "^child $child 5000\$" || fail "fork: the child did not run: $out"
    [ -s "$dir/trace.$parent" ] || fail "fork: no trace file for the parent $parent"
    [ -s "$dir/trace.$child" ] || fail "fork: no trace file for the child $child (files: $(ls "$dir" | tr '\n' ' '))"
    check_trace "$dir/trace.$parent" 1000 best none
    check_trace "$dir/trace.$child" 50 best none

    # exec: lines traced before execve are written, and both images of one
    # process (same pid, same trace file) are in it
    [ -x "$helpers/preload_exec_chain_prog" ] || fail "no $helpers/preload_exec_chain_prog"
    dir=$work/exec
    mkdir -p "$dir"
    env LD_PRELOAD="$lib" VMTRACE="$dir/trace.%p" "$helpers/preload_exec_chain_prog" first \
        > "$dir/out" 2> "$dir/err" || { cat "$dir/err" >&2; fail "exec: exec_chain failed"; }
    traces=("$dir"/trace.*)
    [ "${#traces[@]}" = 1 ] && [ -e "${traces[0]}" ] || fail "exec: ${#traces[@]} trace files"
    grep -Eq '^0x0:0x[0-9a-f]+:77777:' "${traces[0]}" || fail "exec: the first image's allocation was lost"
    grep -Eq '^0x0:0x[0-9a-f]+:88888:' "${traces[0]}" || fail "exec: the second image's allocation is missing"
    check_trace "${traces[0]}" 2 best none

    # a program that closes every descriptor it did not open and opens its
    # own: the trace must not go into the program's file
    [ -x "$helpers/preload_fd_reuse_prog" ] || fail "no $helpers/preload_fd_reuse_prog"
    dir=$work/fd-reuse
    mkdir -p "$dir"
    "$helpers/preload_fd_reuse_prog" "$dir/plain.file" > "$dir/plain.out" || fail "fd_reuse failed"
    env LD_PRELOAD="$lib" VMTRACE="$dir/trace.%p" "$helpers/preload_fd_reuse_prog" "$dir/file" \
        > "$dir/out" 2> "$dir/err" || { cat "$dir/err" >&2; fail "fd-reuse: the program failed"; }
    cmp -s "$dir/plain.out" "$dir/out" || {
        cat "$dir/out" >&2
        for f in "$dir"/file.*; do
            [ "$(cat "$f")" = payload ] || { echo "$f holds:"; head -c 200 "$f"; echo; break; }
        done >&2
        fail "fd-reuse: trace lines went into a file the program opened after closing the trace's descriptor"
    }
    echo "fd-reuse: $(cat "$dir/out")"
    ;;
*)
    fail "unknown program '$name'"
    ;;
esac
echo "preload_$name: ok"
