# bench/allocators.sh — sourced by bench/run.sh and bench/synth.sh with
# $build set: which mallocs this machine can measure. Sets
#   allocs   the names, in this order: glibc, vmalloc (when BUILD's
#            libvmalloc.so defines malloc), jemalloc, mimalloc, tcmalloc
#            (when Debian's library is installed);
#   lib      name -> the library to LD_PRELOAD ("" for glibc).
# A missing one is named on standard error with the apt-get line that adds it.
libdir=/usr/lib/$(gcc -print-multiarch 2>/dev/null || echo x86_64-linux-gnu)
declare -A lib=([glibc]="" [jemalloc]=$libdir/libjemalloc.so.2 [mimalloc]=$libdir/libmimalloc.so.2
                [tcmalloc]=$libdir/libtcmalloc_minimal.so.4)
declare -A pkg=([jemalloc]=libjemalloc2 [mimalloc]=libmimalloc2.0 [tcmalloc]=libtcmalloc-minimal4)
allocs=(glibc)
if nm -D --defined-only "$build/libvmalloc.so" 2>/dev/null | grep -qw malloc; then
  allocs+=(vmalloc); lib[vmalloc]=$(cd "$build" && pwd)/libvmalloc.so
else
  echo "$(basename "$0"): $build/libvmalloc.so defines no malloc (VMALLOC_MALLOC=OFF): vmalloc left out" >&2
fi
for a in jemalloc mimalloc tcmalloc; do
  if [ -e "${lib[$a]}" ]; then allocs+=("$a")
  else echo "missing $a: apt-get install ${pkg[$a]}" >&2; fi
done
