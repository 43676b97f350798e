#!/usr/bin/env bash
# vmfl_fig10.sh — the paper's Figures 8 and 10, as a user would type them.
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
echo "vmfl_fig10: ok"
