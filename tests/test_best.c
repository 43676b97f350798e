/*
 * test_best.c — Vmbest against the shadow model (shadow.h): mixed random
 * allocations, frees, resizes of every type, aligned allocations up to 1 MiB,
 * clears and compactions, over every test discipline, with the region's own
 * check after each step. Usage: test_best [seed].
 */
#include "shadow.h"

int main(int argc, char** argv)
{
    uint64_t seed = sh_seed(argc, argv);
    Sh_conf_t conf = {
        .kind = SH_BEST,
        .steps = 50000,
        /*          alloc rnull free resize align wrong compact clear */
        .weight = {330, 20, 250, 280, 100, 0, 10, 2},
        .maxlive = 2000,
        .maxbytes = (size_t)16 << 20,
        .medium_max = 65536,
        .large_max = (size_t)4 << 20,
        .align_max = (size_t)1 << 20,
        .every = 200,
    };
    int ndisc;
    long steps = sh_run_all("test_best", Vmbest, &conf, seed, &ndisc);
    printf("test_best: %ld steps, %d disciplines, seed 0x%llx: ok\n", steps, ndisc,
           (unsigned long long)seed);
    return 0;
}
