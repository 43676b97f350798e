/*
 * test_last.c — Vmlast: the shadow model (shadow.h) over every test
 * discipline, then the method's own promises: only the last block can be
 * freed or resized (others are refused with EINVAL and no VM_BADADDR event;
 * addresses outside every busy span are bad addresses); freeing the last
 * block gives its space back, one level deep; the last block grows in place,
 * through the discipline when its segment is full, or moves; vmclear empties
 * every segment for reuse and vmcompact then gives them back; a bump
 * allocator wastes little. Usage: test_last [seed].
 */
#include "shadow.h"

static void expect(int ok, const char* what)
{
    if (!ok) {
        fprintf(stderr, "test_last: FAIL: %s\n", what);
        exit(1);
    }
}

/* Who may be freed, what is refused, what is a bad address. */
static void last_rules(void)
{
    static Sh_disc_t d;
    sh_fail_init(&d, 0, 0); /* Vmdcsystem, counting events */
    Vmalloc_t* vm = vmopen(&d.disc, Vmlast, 0);
    expect(vm != NULL, "vmopen");
    char* a = vmalloc(vm, 10);
    char* b = vmalloc(vm, 24);
    char* c = vmalloc(vm, 100);
    expect(a && b && c && b >= a + 16 && c >= b + 24, "bump allocation in order");
    expect((uintptr_t)a % 16 == 0 && (uintptr_t)b % 8 == 0 && (uintptr_t)c % 8 == 0,
           "natural alignment");
    expect(vmsize(vm, c) == 104 && vmsize(vm, b) == -1, "only the last block has a size");
    expect(vmaddr(vm, c + 50) == 50 && vmaddr(vm, b + 3) >= 3, "vmaddr in the last and others");
    unsigned long bad = d.badaddr;
    errno = 0;
    expect(vmfree(vm, b) == -1 && errno == EINVAL, "a block that is not the last is refused");
    expect(!vmresize(vm, a, 8, VM_RSCOPY) && errno == EINVAL, "so is its resize");
    expect(d.badaddr == bad, "a refusal announces no bad address");
    char stack[32];
    expect(vmfree(vm, stack) == -1 && d.badaddr == bad + 1, "a stack address is a bad address");
    expect(vmfree(vm, c) == 0, "the last block is freed");
    expect(vmfree(vm, b) == -1 && errno == EINVAL, "one level: b did not become the last");
    expect(vmfree(vm, c) == -1 && d.badaddr == bad + 2, "c is now outside every span");
    char* e = vmalloc(vm, 100);
    expect(e == c, "the freed last block's space is reused");
    Vmstat_t st;
    vmstat(vm, &st);
    expect(st.n_busy == 3 && st.s_busy == 16 + 24 + 104 && vmdbcheck(vm) == 0, "accounting");
    vmclose(vm);
}

/* The last block grows in place, through vm_seg_resize when its segment is
 * the buffer's topmost, and moves when it cannot. */
static void last_growth(void)
{
    static Sh_disc_t d;
    sh_buf_init(&d, sh_arena + 5, (size_t)4 << 20, 1000);
    Vmalloc_t* vm = vmopen(&d.disc, Vmlast, 0);
    expect(vm != NULL, "vmopen over a buffer");
    char* p = vmalloc(vm, 5000);
    expect(p != NULL, "a first block");
    sh_fill(p, 5000, 42);
    size_t top = d.top;
    char* q = vmresize(vm, p, 300000, 0);
    expect(q == p && d.top > top, "the last block grows in place by growing its segment");
    expect(sh_diff(q, 0, 5000, 42) == SIZE_MAX && vmsize(vm, q) == 300000, "content and size");
    char* r = vmalloc(vm, 16);
    expect(r && vmresize(vm, q, 8, 0) == NULL, "q is no longer the last");
    char* s = vmalloc(vm, (size_t)8 << 20);
    expect(s == NULL && d.nomem > 0, "more than the buffer fails with VM_NOMEM");
    sh_fill(r, 16, 7);
    char* t = vmresize(vm, r, 600000, VM_RSCOPY | VM_RSCLEAR);
    expect(t != NULL && sh_diff(t, 0, 16, 7) == SIZE_MAX && sh_nonzero(t, 16, 600000) == SIZE_MAX,
           "a copying resize keeps the content and clears the rest");
    expect(vmdbcheck(vm) == 0 && vmclose(vm) == 0, "the region closes intact");
}

/* vmclear makes every segment reusable, vmcompact then gives them back, and
 * bump allocation of small blocks wastes little. */
static void last_space(void)
{
    Vmalloc_t* vm = vmopen(Vmdcsystem, Vmlast, 0);
    expect(vm != NULL, "vmopen");
    Vmstat_t st, st2 = {0};
    for (int round = 0; round < 3; ++round) {
        for (int i = 0; i < 200000; ++i)
            expect(vmalloc(vm, 24) != NULL, "24-byte blocks");
        vmstat(vm, &st);
        expect((double)st.extent <= 1.10 * (double)st.s_busy, "bump allocation wastes < 10%");
        expect(st.s_busy == 200000 * 24 && vmdbcheck(vm) == 0, "accounting");
        if (round)
            expect(st.extent == st2.extent, "after vmclear the same segments are reused");
        st2 = st;
        expect(vmclear(vm) == 0 && vmdbcheck(vm) == 0, "vmclear");
    }
    expect(vmcompact(vm) == 0 && vmdbcheck(vm) == 0, "vmcompact");
    vmstat(vm, &st);
    expect(st.n_seg <= 2 && st.extent < ((size_t)1 << 20), "vmcompact gives the segments back");
    expect(vmalloc(vm, 100) != NULL && vmdbcheck(vm) == 0, "and the region still works");
    vmclose(vm);
}

int main(int argc, char** argv)
{
    uint64_t seed = sh_seed(argc, argv);
    Sh_conf_t conf = {
        .kind = SH_LAST,
        .steps = 50000,
        /*          alloc rnull free resize align wrong compact clear */
        .weight = {420, 20, 230, 250, 50, 0, 10, 3},
        .maxlive = 3000,
        .maxbytes = (size_t)16 << 20,
        .medium_max = 65536,
        .large_max = (size_t)1 << 20,
        .align_max = 65536,
        .every = 200,
    };
    int ndisc;
    long steps = sh_run_all("test_last", Vmlast, &conf, seed, &ndisc);
    last_rules();
    last_growth();
    last_space();
    printf("test_last: %ld steps, %d disciplines, seed 0x%llx: ok\n", steps, ndisc,
           (unsigned long long)seed);
    return 0;
}
