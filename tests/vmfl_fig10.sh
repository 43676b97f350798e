#!/usr/bin/env bash
# vmfl_fig10.sh — the paper's Figures 8, 9 and 10, as a user would type them.
#
#   vmfl_fig10.sh CC INCLUDE_DIR LIBVMALLOC WORKDIR
#
# Writes Figure 8's buggy program as t.c (the paper's line numbers kept;
# only the K&R declarations are modernised so that a C11 compiler takes it),
# compiles it with `cc -DVMFL t.c -lvmalloc` and runs it with VMTRACE. The
# trace must hold Figure 10's three lines with the same shape:
#     0x0:A:4:R:best:t.c,4:
#     0x0:B:5:R:best:t.c,10:
#     B:0x0:U:R:best:t.c,12:
# (U, the usable size of the freed block, at least 5), and nothing else from
# t.c: the free of a string literal on line 6 and the second free of B on
# line 19 are ignored (no memory fault, no record, nothing on stderr).
#
# Then Figure 9: under VMDEBUG=1 exactly the paper's three errors, with this
# run's addresses, and a normal exit; the same under VMALLOC_OPTIONS with a
# whole-heap check every third call; with the doubly freed block watched
# (VMDEBUG=1,ADDR; both runs under `setarch -R`, so addresses repeat), the
# two alerts between them. And Figure 10's profile under VMPROFILE (%p in
# the path), followed by the one block t.c leaks.
set -euo pipefail
cc=$1 inc=$2 lib=$3 work=$4
rm -rf "$work"
mkdir -p "$work"
cd "$work"

fail() { echo "vmfl_fig10: $*" >&2; exit 1; }

cat > t.c <<'EOF'
#include <vmalloc.h>
void foo(char* s)
/* char* s; */
{   char* news = malloc(strlen(s));
    strcpy(news,s);
    free(s);
}
char* bar(char* s)
/* char* s; */
{   char* news = malloc(strlen(s)+1);
    strcpy(news,s);
    free(news);
    return news;
}
int main(void)
{   char* s = "1234";
    foo(s);
    s = bar(s);
    free(s);
}
EOF

libdir=$(dirname "$lib")
# string.h for strlen/strcpy comes in from the command line so that the
# figure's line numbers stay the paper's.
"$cc" -DVMFL -O -include string.h -Wno-free-nonheap-object -I"$inc" t.c \
    -L"$libdir" -Wl,-rpath,"$libdir" -lvmalloc -o t 2> cc.err || { cat cc.err >&2; fail "cc failed"; }

rc=0
VMTRACE="$work/trace" ./t > out 2> err || rc=$?
[ "$rc" = 0 ] || fail "t exited with status $rc (the paper's 'Memory fault' must not happen)"
[ ! -s err ] || { cat err >&2; fail "t wrote to stderr"; }
[ ! -s out ] || fail "t wrote to stdout"
[ -s trace ] || fail "no trace written to $work/trace"

echo "--- the lines of t.c in the trace (paper Figure 10):"
grep -F ':t.c,' trace || true
mapfile -t lines < <(grep -F ':t.c,' trace)
[ "${#lines[@]}" = 3 ] || fail "${#lines[@]} lines name t.c, want 3"
hex='0x[0-9a-f]+'
[[ ${lines[0]} =~ ^0x0:($hex):4:($hex):best:t\.c,4:$ ]] || fail "line 1 '${lines[0]}'"
a=${BASH_REMATCH[1]} r=${BASH_REMATCH[2]}
[[ ${lines[1]} =~ ^0x0:($hex):5:($hex):best:t\.c,10:$ ]] || fail "line 2 '${lines[1]}'"
b=${BASH_REMATCH[1]}
[ "${BASH_REMATCH[2]}" = "$r" ] || fail "lines 1 and 2 name different regions"
[[ ${lines[2]} =~ ^($hex):0x0:([0-9]+):($hex):best:t\.c,12:$ ]] || fail "line 3 '${lines[2]}'"
[ "${BASH_REMATCH[1]}" = "$b" ] || fail "line 3 frees ${BASH_REMATCH[1]}, not the block $b of line 10"
[ "${BASH_REMATCH[2]}" -ge 5 ] || fail "line 3: freed size ${BASH_REMATCH[2]} < 5"
[ "${BASH_REMATCH[3]}" = "$r" ] || fail "line 3 names another region"
[ "$a" != "$b" ] || fail "the blocks of lines 4 and 10 are the same"
# Every line of the trace, t.c's or the C library's, is a record.
bad=$(grep -Evc '^0x[0-9a-f]+:0x[0-9a-f]+:[0-9]+:0x[0-9a-f]+:(best|last|pool|debug|profile):([^:,]+,[0-9]+:|open:|clear:|close:)?$' trace || true)
[ "$bad" = 0 ] || fail "$bad malformed trace lines"

# ---- Figure 9 ----------------------------------------------------------------
fig9() { # fig9 FILE: the three errors of Figure 9; sets R (region), B (the block freed twice)
    mapfile -t e < "$1"
    [ "${#e[@]}" = 3 ] || { cat "$1" >&2; fail "$1: ${#e[@]} lines, want Figure 9's 3"; }
    [[ ${e[0]} =~ ^corrupted\ data:region=($hex):block=($hex):bad\ byte\ at=4:allocated\ at=t\.c,4:$ ]] ||
        fail "error 1 '${e[0]}'"
    R=${BASH_REMATCH[1]}
    [[ ${e[1]} =~ ^free\ error:region=$R:block=($hex):unallocated\ block:detected\ at=t\.c,6:$ ]] ||
        fail "error 2 '${e[1]}'"
    [[ ${e[2]} =~ ^free\ error:region=$R:block=($hex):already\ freed:detected\ at=t\.c,19:$ ]] ||
        fail "error 3 '${e[2]}'"
    B=${BASH_REMATCH[1]}
}
rc=0
env -u VMTRACE VMDEBUG=1 ./t > out 2> err9 || rc=$?
[ "$rc" = 0 ] || fail "VMDEBUG=1 t exited with status $rc"
echo "--- VMDEBUG=1 t (paper Figure 9):"
cat err9
fig9 err9
env -u VMTRACE VMALLOC_OPTIONS=debug,check=3 ./t > out 2> err9c || fail "check=3: status $?"
fig9 err9c

if setarch -R true 2> /dev/null; then
    env -u VMTRACE VMDEBUG=1 setarch -R ./t > out 2> err9a || fail "setarch -R run failed"
    fig9 err9a
    env -u VMTRACE VMDEBUG=1,$B setarch -R ./t > out 2> err9b || fail "the watched run failed"
    echo "--- VMDEBUG=1,$B t:"
    cat err9b
    mapfile -t w < err9b
    [ "${#w[@]}" = 5 ] || fail "the watched run wrote ${#w[@]} lines, want 5"
    [ "${w[2]}" = "alert:region=$R:block=$B:size=5:just allocated:detected at=t.c,10:" ] ||
        fail "alert 1 '${w[2]}'"
    [ "${w[3]}" = "alert:region=$R:block=$B:size=5:being freed:detected at=t.c,12:" ] ||
        fail "alert 2 '${w[3]}'"
    printf '%s\n' "${w[0]}" "${w[1]}" "${w[4]}" > err9w
    fig9 err9w
else
    echo "vmfl_fig10: no setarch -R here: the run with a watched address is skipped"
fi

# ---- Figure 10: the profile --------------------------------------------------------
env -u VMTRACE VMPROFILE="$work/profile.%p" ./t > out 2> err10 || fail "VMPROFILE run failed"
[ ! -s err10 ] || { cat err10 >&2; fail "the profiled run wrote to stderr"; }
profiles=("$work"/profile.*)
[ "${#profiles[@]}" = 1 ] && [ -s "${profiles[0]}" ] || fail "no profile.PID written"
echo "--- VMPROFILE=profile.%p t (paper Figure 10):"
cat "${profiles[0]}"
mapfile -t p < "${profiles[0]}"
[ "${#p[@]}" = 6 ] || fail "the profile has ${#p[@]} lines, want 6"
[ "${p[0]}" = "ALLOCATION USAGE SUMMARY:n_alloc=2:n_free=1:s_alloc=9:s_free=5:" ] || fail "'${p[0]}'"
[[ ${p[1]} =~ ^region=($hex):n_alloc=2:n_free=1:s_alloc=9:s_free=5:max_busy=9:extent=[0-9]+:$ ]] ||
    fail "'${p[1]}'"
R=${BASH_REMATCH[1]}
[ "${p[2]}" = "file=t.c:n_alloc=2:n_free=1:s_alloc=9:s_free=5:" ] || fail "'${p[2]}'"
[ "${p[3]}" = "    line=4:region=$R:n_alloc=1:n_free=0:s_alloc=4:s_free=0:" ] || fail "'${p[3]}'"
[ "${p[4]}" = "    line=10:region=$R:n_alloc=1:n_free=1:s_alloc=5:s_free=5:" ] || fail "'${p[4]}'"
[[ ${p[5]} =~ ^leak:region=$R:block=$hex:size=4:allocated\ at=t\.c,4:$ ]] || fail "'${p[5]}'"

# ---- beyond the paper: an uninstrumented program's call sites ---------------------
# No -DVMFL: sites come from return addresses, named by function (-rdynamic),
# and tools/vmsites.sh finds their file:line with addr2line (-g).
cat > u.c <<'EOF2'
#include <stdlib.h>
char* keep;
int main(void) { keep = malloc(100); return 0; }
EOF2
"$cc" -g -O0 -rdynamic u.c -L"$libdir" -Wl,-rpath,"$libdir" -lvmalloc -o u 2> cc.err ||
    { cat cc.err >&2; fail "cc u.c failed"; }
env -u VMTRACE VMPROFILE="$work/uprofile" ./u || fail "VMPROFILE ./u failed"
grep -Eq "^    line=0:region=$hex:n_alloc=1:n_free=0:s_alloc=100:s_free=0:at=main\+0x[0-9a-f]+:in=[^:]*u\+0x[0-9a-f]+:\$" uprofile ||
    { cat uprofile >&2; fail "no site at=main+0x... for u.c's malloc"; }
grep -Eq "^leak:region=$hex:block=$hex:size=100:allocated at=main\+0x[0-9a-f]+:\$" uprofile ||
    fail "no leak line for u.c's block"
if command -v addr2line > /dev/null; then
    "$(dirname "$0")/../tools/vmsites.sh" uprofile > usites
    grep -q ":src=[^:]*u\.c:3:\$" usites || { cat usites >&2; fail "vmsites.sh found no u.c:3"; }
fi
echo "vmfl_fig10: ok"
