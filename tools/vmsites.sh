#!/usr/bin/env bash
# tools/vmsites.sh [PROFILE] — file:line for the call sites a Vmprofile
# profile knows only by return address (README "Finding memory errors and
# leaks"). Copies the profile (a file, or standard input) to standard output;
# after each record that ends in in=MODULE+0xOFF: it appends
# src=FILE:LINE:, which addr2line finds when MODULE has debug information
# (else src=??:0:). One addr2line run per module, so a large profile is quick.
# Needs binutils (addr2line).
set -euo pipefail
in=${1:-/dev/stdin}
command -v addr2line > /dev/null || { echo "vmsites: addr2line not found (binutils)" >&2; exit 2; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cat "$in" > "$tmp/profile"
# Every MODULE OFFSET pair, grouped by module, resolved in one run each.
sed -n 's/.*:in=\(.*\)+\(0x[0-9a-f]*\):$/\1 \2/p' "$tmp/profile" | sort -u > "$tmp/sites"
: > "$tmp/resolved"
cut -d' ' -f1 "$tmp/sites" | sort -u | while read -r mod; do
  [ -r "$mod" ] || continue
  grep -F "$mod " "$tmp/sites" | awk -v m="$mod" '$1 == m { print $2 }' > "$tmp/offs"
  # A return address is the instruction after the call: ask for the byte before.
  while read -r off; do printf '0x%x\n' $((off - 1)); done < "$tmp/offs" |
    addr2line -e "$mod" | paste -d' ' "$tmp/offs" - |
    awk -v m="$mod" '{ print m "+" $1 " " $2 }' >> "$tmp/resolved"
done
awk 'NR == FNR { src[$1] = $2; next }
     match($0, /:in=.*\+0x[0-9a-f]+:$/) {
       key = substr($0, RSTART + 4, RLENGTH - 5)
       if (key in src) { print $0 "src=" src[key] ":"; next }
     }
     { print }' "$tmp/resolved" "$tmp/profile"
