/*
 * test_pool.c — Vmpool: the shadow model (shadow.h) over every test
 * discipline, then the method's own promises: the first request fixes the
 * block size and vmclear unfixes it; other sizes, larger resizes and larger
 * alignments are refused with EINVAL; double frees and interior pointers are
 * caught; the arena stays within 10% of the busy bytes for a large pool of
 * small blocks; vmcompact gives empty segments back; a pool over a small user
 * buffer runs out cleanly; under VM_TRUST, whose lock-free paths skip
 * checks, the bitmap and counts stay what vmdbcheck, vmstat and vmwalk
 * expect. Usage: test_pool [seed].
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

/* VM_TRUST: free the model's blocks blk[idx[0]], blk[idx[1]], ... in that
 * order, each verified first; drop them from the model (the others keep
 * their order), and check that the locked paths see each of them free. */
static void trust_free(Sh_t* sh, const size_t* idx, size_t m)
{
    char** gone = malloc((m + 1) * sizeof *gone);
    unsigned char* dead = calloc(sh->n + 1, 1);
    if (!gone || !dead)
        sh_fail(sh, "the test itself is out of memory");
    for (size_t j = 0; j < m; ++j) {
        sh_verify(sh, idx[j], 0);
        gone[j] = sh->blk[idx[j]].p;
        if (vmfree(sh->vm, gone[j]) != 0)
            sh_fail(sh, "trusted vmfree of live %p failed", (void*)gone[j]);
        dead[idx[j]] = 1;
    }
    size_t k = 0;
    for (size_t i = 0; i < sh->n; ++i) {
        if (dead[i]) {
            sh->s_usable -= sh->blk[i].usable;
            sh->s_req -= sh->blk[i].size;
        } else
            sh->blk[k++] = sh->blk[i];
    }
    sh->n = k;
    for (size_t j = 0; j < m; ++j)
        if (vmsize(sh->vm, gone[j]) != -1)
            sh_fail(sh, "%p was freed on the trusted path, vmsize still finds it busy",
                    (void*)gone[j]);
    free(gone);
    free(dead);
}

/* VM_TRUST: n allocations of size bytes, each adopted by the model (which
 * asks vmsize and vmaddr of it: the locked paths' view of the busy bit). */
static void trust_alloc(Sh_t* sh, size_t n, size_t size)
{
    for (size_t i = 0; i < n; ++i) {
        errno = 0;
        char* p = vmalloc(sh->vm, size);
        sh_alloc_result(sh, p, size, 0, 0, errno);
    }
}

/* After a phase: vmdbcheck and vmstat against the model, then every block's
 * contents, vmsize, vmaddr, and vmwalk. */
static void trust_check(Sh_t* sh, long phase)
{
    sh->step = phase;
    sh_check_step(sh);
    sh_check_full(sh);
}

/* The indices 0..n-1 in a random order. */
static size_t* trust_shuffle(Sh_t* sh, size_t n)
{
    size_t* idx = malloc((n + 1) * sizeof *idx);
    if (!idx)
        sh_fail(sh, "the test itself is out of memory");
    for (size_t i = 0; i < n; ++i)
        idx[i] = i;
    for (size_t i = n; i > 1; --i) {
        size_t j = sh_below(sh, i), t = idx[i - 1];
        idx[i - 1] = idx[j];
        idx[j] = t;
    }
    return idx;
}

/* Vmpool's lock-free paths (VM_TRUST) skip validation but keep the bitmap
 * and the counts the locked paths keep. Blocks of 24 bytes (the multiply
 * that finds a block's index is exact, not a shift) over at least minsegs
 * segments of disc: freed in allocation order (the hint segment hit), in
 * reverse, and at random (missed), reallocated from the segments' free
 * lists, compacted and cleared; after each phase vmdbcheck, vmstat and
 * vmwalk agree with the shadow model, and every freed block reads as free.
 * With system, vmcompact must leave at most two segments. */
static void pool_trust(uint64_t seed, Vmdisc_t* disc, const char* discname, size_t minsegs,
                       int system)
{
    static const Sh_conf_t conf = {.kind = SH_POOL, .steps = 1, .every = 1};
    const size_t n = 150000; /* about 3.6 MB */
    Sh_t sh;
    memset(&sh, 0, sizeof sh);
    sh.test = "test_pool";
    sh.discname = discname;
    sh.disc = disc;
    sh.flags = VM_TRUST;
    sh.conf = &conf;
    sh.seed = sh.rng = seed;
    sh.lastidx = -1;
    sh.op = -1;
    sh.poolreq = 20;
    sh.vm = vmopen(disc, Vmpool, VM_TRUST);
    if (!sh.vm)
        sh_fail(&sh, "vmopen failed");

    trust_alloc(&sh, n, 20); /* fixes 24 */
    Vmstat_t st;
    vmstat(sh.vm, &st);
    if (st.n_seg < minsegs)
        sh_fail(&sh, "%zu blocks of 24 bytes fit in %zu segments", n, st.n_seg);
    trust_check(&sh, 1);

    size_t* idx = malloc((n + 1) * sizeof *idx);
    if (!idx)
        sh_fail(&sh, "the test itself is out of memory");
    size_t m = 0;
    for (size_t i = 0; i < sh.n; i += 2)
        idx[m++] = i; /* every other block, in allocation order */
    trust_free(&sh, idx, m);
    trust_check(&sh, 2);

    m = 0;
    for (size_t i = sh.n / 2; i-- > 0;)
        idx[m++] = i; /* the older half of the rest, newest first */
    trust_free(&sh, idx, m);
    trust_check(&sh, 3);
    free(idx);

    trust_alloc(&sh, n / 2, 24); /* the free lists of every segment, then carving */
    trust_check(&sh, 4);

    idx = trust_shuffle(&sh, sh.n);
    trust_free(&sh, idx, sh.n / 2);
    free(idx);
    trust_check(&sh, 5);

    /* The lock-free path takes aligned requests the pool can serve and
     * leaves the others to the locked path, which refuses them. */
    sh.op = SH_ALIGN;
    errno = 0;
    char* p = vmalign(sh.vm, 24, 8);
    sh_alloc_result(&sh, p, 24, 8, 0, errno);
    errno = 0;
    p = vmalign(sh.vm, 24, 16);
    sh_alloc_result(&sh, p, 24, 16, 0, errno);
    sh.op = SH_WRONG;
    errno = 0;
    p = vmalloc(sh.vm, 32);
    sh_alloc_result(&sh, p, 32, 0, 0, errno);
    sh.op = -1;
    trust_check(&sh, 6);

    idx = trust_shuffle(&sh, sh.n);
    trust_free(&sh, idx, sh.n);
    free(idx);
    trust_check(&sh, 7);
    if (vmcompact(sh.vm) != 0 || vmstat(sh.vm, &st) != 0 || (system && st.n_seg > 2) ||
        st.n_busy)
        sh_fail(&sh, "an emptied trusted pool keeps %zu segments after vmcompact", st.n_seg);
    trust_check(&sh, 8);

    trust_alloc(&sh, n / 4, 24); /* the pool grows again */
    trust_check(&sh, 9);
    sh_op_clear(&sh);
    sh.poolreq = 64;
    trust_alloc(&sh, 1000, 64); /* vmclear unfixed the size */
    trust_check(&sh, 10);
    idx = trust_shuffle(&sh, sh.n);
    trust_free(&sh, idx, sh.n);
    free(idx);
    trust_check(&sh, 11);
    if (vmclose(sh.vm) != 0)
        sh_fail(&sh, "vmclose failed");
    free(sh.blk);
    free(sh.walk);
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
    pool_trust(sh_seed_of(seed, 100), Vmdcsystem, "trust", 5, 1);
    /* Segments of 3 MiB: offsets past 1 MiB, where a block's index takes a
     * division. */
    static Sh_disc_t big;
    sh_buf_init(&big, sh_arena + 1, sizeof sh_arena - 33, (size_t)3 << 20);
    pool_trust(sh_seed_of(seed, 101), &big.disc, "trust+3MiB", 2, 0);
    static const size_t sizes[] = {16, 24, 32, 48, 64};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; ++i)
        pool_space(sizes[i]);
    printf("test_pool: %ld steps, %d disciplines, seed 0x%llx: ok\n", steps, ndisc,
           (unsigned long long)seed);
    return 0;
}
