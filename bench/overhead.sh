#!/usr/bin/env bash
# bench/overhead.sh VMREPLAY TRACE_DIR [RUNS] — what Vmdebug and Vmprofile cost
# (issue 6): every trace in TRACE_DIR (tools/record.sh writes them) replayed
# by tools/vmreplay against Vmbest, Vmdebug and Vmprofile, RUNS times each
# (default 3; vmreplay prints medians of user+sys CPU time). Prints, per
# trace, the CPU time and arena of each target and the ratios to Vmbest, then
# the geometric means of the ratios.
set -euo pipefail
replay=$1 dir=$2 runs=${3:-3}
[ -x "$replay" ] || { echo "overhead.sh: $replay is not executable" >&2; exit 2; }
shopt -s nullglob
traces=("$dir"/*.trace)
[ "${#traces[@]}" -gt 0 ] || { echo "overhead.sh: no *.trace in $dir" >&2; exit 2; }
field() { sed -n "s/.* $1=\([0-9.]*\).*/\1/p"; }
printf '%-10s %10s %10s %10s %8s %8s %10s %10s %10s %8s %8s\n' trace best_ms debug_ms \
  profile_ms debug/x profile/x best_kb debug_kb profile_kb debug/x profile/x
{
for t in "${traces[@]}"; do
  name=$(basename "$t" .trace)
  declare -A ms kb
  for target in best debug profile; do
    line=$("$replay" --target "$target" --runs "$runs" "$t")
    ms[$target]=$(field cpu_ms <<<"$line")
    kb[$target]=$(awk -v a="$(field arena <<<"$line")" 'BEGIN { printf "%.0f", a / 1024 }')
  done
  echo "$name ${ms[best]} ${ms[debug]} ${ms[profile]} ${kb[best]} ${kb[debug]} ${kb[profile]}"
done
} | awk '{
  td = $3 / $2; tp = $4 / $2; sd = $6 / $5; sp = $7 / $5
  printf "%-10s %10.1f %10.1f %10.1f %8.2f %8.2f %10d %10d %10d %8.2f %8.2f\n",
         $1, $2, $3, $4, td, tp, $5, $6, $7, sd, sp
  n++; ltd += log(td); ltp += log(tp); lsd += log(sd); lsp += log(sp)
} END {
  if (n) printf "%-10s %10s %10s %10s %8.2f %8.2f %10s %10s %10s %8.2f %8.2f\n", "geomean",
     "", "", "", exp(ltd / n), exp(ltp / n), "", "", "", exp(lsd / n), exp(lsp / n)
}'
