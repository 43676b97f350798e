#!/bin/bash
# test_replay.sh VMREPLAY DATA WORK LIBVMALLOC|none — tools/vmreplay end to end:
# counts of a hand-written trace, the same busy-byte curve for every target,
# --convert round trip, --svg, malformed traces (exit 2 naming the line), and
# a trace recorded live under LD_PRELOAD (skipped when LIBVMALLOC is "none").
set -u
R=$1 D=$2 W=$3 LIB=$4
rm -rf "$W" && mkdir -p "$W" || exit 1
fails=0
fail() { echo "FAIL: $*" >&2; fails=$((fails + 1)); }

# field KEY LINE: the value of KEY in a key=value line
field() { tr ' ' '\n' <<<"$2" | sed -n "s/^$1=//p"; }

# check_line LINE EXPECTED...: every KEY=VALUE in EXPECTED is in LINE, and the
# line has exactly the documented keys in order.
keys="trace target ops allocs frees resizes max_busy cpu_ms user_ms sys_ms rss_kb arena moves copied unknown_frees"
check_line() {
    local line=$1; shift
    local got
    got=$(tr ' ' '\n' <<<"$line" | sed 's/=.*//' | tr '\n' ' ')
    [ "$got" = "$keys " ] || fail "keys: '$got'"
    for kv in "$@"; do
        [ "$(field "${kv%%=*}" "$line")" = "${kv#*=}" ] || fail "$kv not in: $line"
    done
}

"$R" --help >"$W/help" || fail "--help exit $?"
grep -q '^usage: vmreplay' "$W/help" || fail "--help prints no usage"

small="ops=23 allocs=13 frees=6 resizes=4 max_busy=12953 unknown_frees=1"
for t in best last malloc; do
    line=$("$R" --target $t --curve "$W/curve.$t" "$D/small.trace") || fail "small $t: exit $?"
    check_line "$line" trace=small target=$t $small
    cmp -s "$W/curve.best" "$W/curve.$t" || fail "curve of $t differs from best's"
done
[ "$(wc -l <"$W/curve.best")" -eq 26 ] || fail "curve has $(wc -l <"$W/curve.best") points, not 26"
[ "$(tail -1 "$W/curve.best")" = "25 0" ] || fail "curve does not end at 0 busy bytes"
# Vmbest: small blocks move when they outgrow their size class: 80 -> 120
# and 2048 -> 4096 in the Vmlast region replayed as Vmbest, 150 -> 5000 in
# the other; 80 + 2048 + 150 bytes copied.
line=$("$R" --target best "$D/small.trace")
check_line "$line" moves=3 copied=2278

# class_floor: at the peak, region A holds 3000 and 5000 bytes (64 KiB pages
# of classes 3072 and 5120), 64 and 777 (32 KiB pages); region B 16 (a 32
# KiB page) and 4096 (a 64 KiB page): 288 KiB.
line=$("$R" --stats "$D/small.trace") || fail "--stats exit $?"
[ "$line" = "trace=small allocs=13 frees=6 resizes=4 max_alloc=17016 max_busy=12953 class_floor=294912" ] ||
    fail "--stats: $line"

# The one-size trace on every target, Vmpool included.
for t in pool best malloc; do
    line=$("$R" --target $t --runs 3 --curve "$W/pcurve.$t" "$D/pool.trace") || fail "pool $t: exit $?"
    check_line "$line" target=$t ops=11 allocs=7 frees=4 resizes=0 max_busy=192 unknown_frees=1
    cmp -s "$W/pcurve.pool" "$W/pcurve.$t" || fail "pool.trace curve of $t differs"
done

# Binary form: same counts, same curve.
"$R" --convert "$W/small.bin" "$D/small.trace" || fail "--convert exit $?"
head -c 7 "$W/small.bin" | grep -q VMRTRC || fail "no magic in the binary form"
line=$("$R" --target best --curve "$W/curve.bin" "$W/small.bin") || fail "binary replay exit $?"
check_line "$line" $small
cmp -s "$W/curve.best" "$W/curve.bin" || fail "binary replay's curve differs"
line=$("$R" --stats "$W/small.bin")
[ "$line" = "trace=small allocs=13 frees=6 resizes=4 max_alloc=17016 max_busy=12953 class_floor=294912" ] ||
    fail "--stats of the binary form: $line"

# --svg: the arena when busy bytes first exceed 8000.
"$R" --target best --svg "$W/a.svg" --at 8000 --row 1024 "$D/small.trace" >/dev/null ||
    fail "--svg exit $?"
head -c 4 "$W/a.svg" | grep -q '^<svg' || fail "a.svg does not start with <svg"
grep -q '<rect' "$W/a.svg" && grep -q '<line' "$W/a.svg" || fail "a.svg has no rect/line"
grep -q '</svg>' "$W/a.svg" || fail "a.svg is not closed"
"$R" --target malloc --svg "$W/b.svg" "$D/small.trace" 2>/dev/null
[ $? -eq 2 ] || fail "--svg with --target malloc is not refused"

# Errors: exit 2 and a message naming the file and line.
expect_bad() { # FILE LINE
    local err
    err=$("$R" "$D/$1" 2>&1 >/dev/null)
    local rc=$?
    [ $rc -eq 2 ] || fail "$1: exit $rc, not 2"
    grep -q "^vmreplay: .*$1:$2: " <<<"$err" || fail "$1: message '$err' does not name line $2"
}
expect_bad bad_hex.trace 2
expect_bad bad_missing.trace 3
expect_bad bad_fields.trace 2
expect_bad bad_garbage.trace 4
expect_bad bad_size.trace 1
expect_bad bad_record.trace 2
for args in "$W/none.trace" "--target nosuch $D/small.trace" "--runs x $D/small.trace" \
            "--runs 0 $D/small.trace" "--bogus $D/small.trace" ""; do
    # shellcheck disable=SC2086
    err=$("$R" $args 2>&1 >/dev/null)
    rc=$?
    [ $rc -eq 2 ] && [ -n "$err" ] || fail "'vmreplay $args': exit $rc, message '$err'"
done
: >"$W/empty.trace"
err=$("$R" "$W/empty.trace" 2>&1)
[ $? -eq 2 ] && grep -q empty <<<"$err" || fail "empty trace: '$err'"

# A trace recorded live from a real program, replayed on every target.
if [ "$LIB" != none ]; then
    seq 1 3000 | sed 's/$/ some text to sort/' >"$W/input"
    VMTRACE="$W/live.trace" LD_PRELOAD="$LIB" sort -r "$W/input" >/dev/null ||
        fail "sort under LD_PRELOAD failed"
    [ -s "$W/live.trace" ] || fail "no live trace"
    for t in best last malloc; do
        line=$("$R" --target $t --runs 2 --curve "$W/live.$t" "$W/live.trace") ||
            fail "live $t: exit $?"
        check_line "$line" target=$t
        cmp -s "$W/live.best" "$W/live.$t" || fail "live curve of $t differs from best's"
    done
    echo "live: $line"
fi

[ $fails -eq 0 ] && echo "test_replay: ok"
exit $((fails > 0))
