/*
 * test_pool.c — Vmpool: the shadow model (shadow.h) over every test
 * discipline, then the method's own promises: the first request fixes the
 * block size and vmclear unfixes it; other sizes, larger resizes and larger
 * alignments are refused with EINVAL; double frees and interior pointers are
 * caught; the arena stays within 10% of the busy bytes for a large pool of
 * small blocks; vmcompact gives empty segments back; a pool over a small user
 * buffer runs out cleanly. Usage: test_pool [seed].
 */
#include "shadow.h"

/* The arena of a large pool of small blocks stays within 10% of busy bytes,
 * and an emptied pool gives its segments back. */
static void pool_space(size_t size)
{
    Vmalloc_t* vm = vmopen(Vmdcsystem, Vmpool, 0);
    size_t n = ((size_t)32 << 20) / size;
    void** v = malloc(n * sizeof *v);
    if (!vm || !v) {
        fprintf(stderr, "test_pool: space %zu: setup failed\n", size);
        exit(1);
    }
    for (size_t i = 0; i < n; ++i) {
        v[i] = vmalloc(vm, size);
        if (!v[i]) {
            fprintf(stderr, "test_pool: space %zu: allocation %zu failed\n", size, i);
            exit(1);
        }
    }
    Vmstat_t st;
    vmstat(vm, &st);
    if ((double)st.extent > 1.10 * (double)st.s_busy || vmdbcheck(vm) != 0) {
        fprintf(stderr, "test_pool: %zu blocks of %zu: extent %zu for %zu busy bytes\n", n, size,
                st.extent, st.s_busy);
        exit(1);
    }
    for (size_t i = 0; i < n; ++i)
        if (vmfree(vm, v[i]) != 0) {
            fprintf(stderr, "test_pool: space %zu: free %zu failed\n", size, i);
            exit(1);
        }
    vmcompact(vm);
    vmstat(vm, &st);
    if (st.n_busy || st.n_seg > 2 || st.extent > ((size_t)1 << 20) || vmdbcheck(vm) != 0) {
        fprintf(stderr, "test_pool: after freeing all and vmcompact: %zu segments, extent %zu\n",
                st.n_seg, st.extent);
        exit(1);
    }
    vmclose(vm);
    free(v);
}

static void expect(int ok, const char* what)
{
    if (!ok) {
        fprintf(stderr, "test_pool: FAIL: %s\n", what);
        exit(1);
    }
}

/* The fixed size, refusals, bad addresses and their events. */
static void pool_rules(void)
{
    static Sh_disc_t d;
    sh_fail_init(&d, 0, 0); /* Vmdcsystem, counting events */
    Vmalloc_t* vm = vmopen(&d.disc, Vmpool, 0);
    expect(vm != NULL, "vmopen");
    expect(vmalign(vm, 24, 16) == NULL && errno == EINVAL, "a 24-byte pool cannot align to 16");
    char* a = vmalloc(vm, 20); /* fixes 24 */
    expect(a && (uintptr_t)a % 8 == 0 && vmsize(vm, a) == 24, "the first block fixes 24");
    char* b = vmalloc(vm, 17);
    expect(b && b != a && vmsize(vm, b) == 24, "17 rounds to the pool's size");
    errno = 0;
    expect(!vmalloc(vm, 32) && errno == EINVAL, "another size is refused with EINVAL");
    expect(!vmalloc(vm, 8) && errno == EINVAL, "a smaller size is refused too");
    expect(vmalign(vm, 24, 8) != NULL, "alignment 8 is natural for 24");
    errno = 0;
    expect(!vmresize(vm, a, 25, VM_RSCOPY) && errno == EINVAL, "a pool block cannot grow");
    expect(vmresize(vm, a, 24, 0) == a && vmresize(vm, a, 8, 0) == a, "it can shrink in place");
    unsigned long bad = d.badaddr;
    expect(vmfree(vm, a + 8) == -1 && errno == EINVAL, "an interior pointer is refused");
    expect(vmfree(vm, a) == 0, "a busy block is freed");
    expect(vmfree(vm, a) == -1 && errno == EINVAL, "a double free is refused");
    expect(vmsize(vm, a) == -1 && vmaddr(vm, a + 3) == -1, "a free block has no size");
    expect(d.badaddr == bad + 2 && vmdbcheck(vm) == 0, "each bad address is announced");
    expect(vmaddr(vm, b + 23) == 23, "vmaddr inside a busy block");
    expect(vmclear(vm) == 0 && vmsize(vm, b) == -1, "vmclear frees every block");
    char* c = vmalloc(vm, 100);
    expect(c && vmsize(vm, c) == 104 && (uintptr_t)c % 8 == 0, "vmclear unfixes the size");
    expect(vmdbcheck(vm) == 0, "the region is intact");
    vmclose(vm);
}

/* A pool in a small user buffer runs out with VM_NOMEM, recovers after a
 * free, and gives a failed first request's size no hold on the pool. */
static void pool_small_buffer(void)
{
    static char mem[5000];
    static Sh_disc_t d;
    sh_buf_init(&d, mem + 3, sizeof mem - 3, 1000);
    Vmalloc_t* vm = vmopen(&d.disc, Vmpool, 0);
    expect(vm != NULL, "vmopen over a 5000-byte buffer");
    expect(!vmalloc(vm, 100000) && d.nomem > 0, "a block larger than the buffer fails");
    void* p[200];
    size_t n = 0;
    while (n < 200 && (p[n] = vmalloc(vm, 64)) != NULL)
        n++;
    expect(n > 10 && n < 200 && vmdbcheck(vm) == 0, "64-byte blocks fill the buffer");
    expect(vmfree(vm, p[n / 2]) == 0 && vmalloc(vm, 64) == p[n / 2], "a freed block is reused");
    expect(vmdbcheck(vm) == 0 && vmclose(vm) == 0, "the region closes intact");
}

/* A program that writes into a freed block (here: a link to a busy block,
 * then a wild pointer) is caught by vmdbcheck without a crash, and cannot
 * make the pool hand out a busy block: the free list is rebuilt. */
static void pool_overwritten_link(void)
{
    Vmalloc_t* vm = vmopen(Vmdcsystem, Vmpool, 0);
    char* a = vmalloc(vm, 32);
    char* b = vmalloc(vm, 32);
    char* c = vmalloc(vm, 32);
    expect(a && b && c && vmfree(vm, a) == 0 && vmfree(vm, c) == 0, "setup");
    memcpy(c, &b, sizeof b); /* c is the head of the free list; its link now says b */
    expect(vmdbcheck(vm) > 0, "vmdbcheck sees a free list that leads to a busy block");
    char* x = vmalloc(vm, 32);
    char* y = vmalloc(vm, 32);
    expect(x == c && y == a && vmdbcheck(vm) == 0, "the free list is rebuilt from the bitmap");
    char* wild = (char*)(uintptr_t)0x1238;
    expect(vmfree(vm, y) == 0, "free");
    memcpy(y, &wild, sizeof wild);
    expect(vmdbcheck(vm) > 0, "vmdbcheck sees a wild link and survives it");
    expect(vmalloc(vm, 32) == y && vmdbcheck(vm) == 0, "and allocation heals it");
    vmclose(vm);
}

int main(int argc, char** argv)
{
    uint64_t seed = sh_seed(argc, argv);
    Sh_conf_t conf = {
        .kind = SH_POOL,
        .steps = 50000,
        /*          alloc rnull free resize align wrong compact clear */
        .weight = {400, 20, 330, 120, 60, 50, 10, 3},
        .maxlive = 3000,
        .maxbytes = (size_t)16 << 20,
        .medium_max = 65536,
        .large_max = 0,
        .align_max = 32,
        .every = 200,
    };
    int ndisc;
    long steps = sh_run_all("test_pool", Vmpool, &conf, seed, &ndisc);
    pool_rules();
    pool_small_buffer();
    pool_overwritten_link();
    static const size_t sizes[] = {16, 24, 32, 48, 64};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; ++i)
        pool_space(sizes[i]);
    printf("test_pool: %ld steps, %d disciplines, seed 0x%llx: ok\n", steps, ndisc,
           (unsigned long long)seed);
    return 0;
}
