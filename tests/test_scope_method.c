/*
 * test_scope_method.c — Vmscope as a method: the shadow model (shadow.h) over
 * every test discipline (a region opened with vmopen(disc, Vmscope, flags),
 * used like any other: alloc, free, every resize type, align up to 1 MiB,
 * clear, compact, with vmdbcheck and vmstat after each step and bad-address
 * probes), then the method's own promises: the last block grows in place,
 * freeing the last block gives its space back, a stale pointer from before a
 * vmclear is refused. Usage: test_scope_method [seed].
 */
#include "shadow.h"

static void expect(int ok, const char* what)
{
    if (!ok) {
        fprintf(stderr, "test_scope_method: FAIL: %s\n", what);
        exit(1);
    }
}

static void scope_rules(void)
{
    static Sh_disc_t d;
    sh_fail_init(&d, 0, 0);
    Vmalloc_t* vm = vmopen(&d.disc, Vmscope, 0);
    expect(vm != NULL, "vmopen");
    char* a = vmalloc(vm, 10);
    char* b = vmalloc(vm, 100);
    expect(a && b && b > a && vmsize(vm, a) == 16 && vmsize(vm, b) == 112, "bump, sizes by 16");
    expect(vmresize(vm, b, 300, 0) == b && vmsize(vm, b) == 304, "the last block grows in place");
    expect(vmresize(vm, a, 200, 0) == NULL && vmsize(vm, a) == 16, "another cannot");
    expect(vmfree(vm, b) == 0, "free the last");
    char* c = vmalloc(vm, 50);
    expect(c == b, "its space is reused");
    unsigned long bad = d.badaddr;
    expect(vmfree(vm, a + 16) == -1 && d.badaddr == bad + 1, "an interior pointer is refused");
    expect(vmaddr(vm, c + 20) == 20 && vmaddr(vm, c - 8) == -1, "vmaddr");
    char* big = vmalloc(vm, 100000);
    expect(big && vmsize(vm, big) >= 100000 && vmsegment(vm, big) != vmsegment(vm, a),
           "a large block has a segment of its own");
    memset(big, 7, 100000);
    big = vmresize(vm, big, 300000, VM_RSCOPY);
    expect(big && big[99999] == 7 && vmsize(vm, big) >= 300000, "and grows, in place or not");
    vmclear(vm);
    expect(vmfree(vm, a) == -1 && vmfree(vm, c) == -1 && vmdbcheck(vm) == 0,
           "stale pointers from before vmclear are refused");
    Vmstat_t st;
    vmstat(vm, &st);
    expect(st.n_busy == 0 && (st.mode & VM_METHODS) == VM_MTSCOPE, "vmstat after clear");
    expect(vmclose(vm) == 0, "a plain Vmscope region closes like any");
}

int main(int argc, char** argv)
{
    scope_rules();
    uint64_t seed = sh_seed(argc, argv);
    Sh_conf_t conf = sh_conf_general(SH_SCOPE, 40000);
    int ndisc;
    long steps = sh_run_all("test_scope_method", Vmscope, &conf, seed, &ndisc);
    printf("test_scope_method: %ld steps, %d disciplines, seed 0x%llx: ok\n", steps, ndisc,
           (unsigned long long)seed);
    return 0;
}
