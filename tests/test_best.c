/*
 * test_best.c — Vmbest against the shadow model (shadow.h): mixed random
 * allocations, frees, resizes of every type, aligned allocations up to 1 MiB,
 * clears and compactions, over every test discipline, with the region's own
 * check after each step. Usage: test_best [seed].
 */
#include "shadow.h"

/* A freed block that merged into its free predecessor leaves its header in
 * the merged block; once that memory is handed out again, user data that
 * happens to set the old header's busy bit must not make a stale pointer
 * pass as a busy block (found by the shadow model with other seeds). */
static void regress_stale_header(void)
{
    /* Sizes above the size classes (16 KiB): blocks with headers. */
    Vmalloc_t* vm = vmopen(Vmdcsystem, Vmbest, 0);
    char* a = vmalloc(vm, 20000);
    char* b = vmalloc(vm, 19200);
    char* c = vmalloc(vm, 17600);
    if (!vm || !a || !b || !c || b <= a) {
        fprintf(stderr, "test_best: stale-header setup failed\n");
        exit(1);
    }
    vmfree(vm, a);
    vmfree(vm, b); /* b merges into a */
    char* x = vmalloc(vm, (size_t)(b - a) + 19200);
    uint64_t h;
    memcpy(&h, b - 16, sizeof h);
    h |= 1;
    memcpy(b - 16, &h, sizeof h); /* ordinary user data over b's old header */
    if (x != a || vmfree(vm, b) != -1 || vmdbcheck(vm) != 0) {
        fprintf(stderr, "test_best: a stale header passed as busy\n");
        exit(1);
    }
    vmclose(vm);
}

int main(int argc, char** argv)
{
    regress_stale_header();
    uint64_t seed = sh_seed(argc, argv);
    Sh_conf_t conf = sh_conf_general(SH_BEST, 50000);
    int ndisc;
    long steps = sh_run_all("test_best", Vmbest, &conf, seed, &ndisc);
    printf("test_best: %ld steps, %d disciplines, seed 0x%llx: ok\n", steps, ndisc,
           (unsigned long long)seed);
    return 0;
}
