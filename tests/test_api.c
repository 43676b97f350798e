/*
 * test_api.c — the edge cases of every public function of vmalloc.h.
 *
 * Each section takes one part of the API (DESIGN.md §2) and checks the
 * answers a caller may rely on: NULL regions and impossible sizes are errors
 * with errno set, never crashes; bad addresses are refused without changing
 * the region; every vmresize type does what the header says; statistics,
 * flags, disciplines, tracing and the region lookups are consistent with the
 * blocks the test holds. After anything that could have damaged a region the
 * test asks the method's own integrity check (vmdbcheck) and re-reads the
 * content of the blocks it holds.
 */
#define _GNU_SOURCE /* pipe2 */
#include "t.h"
#include "vmalloc.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

/* ---- helpers ------------------------------------------------------------- */


static int is_aligned(const void* p, size_t a) { return ((uintptr_t)p & (a - 1)) == 0; }

/* The alignment vmalloc owes a block of n bytes: what C asks of any object
 * that fits, min(16, the largest power of two dividing n rounded up to 8).
 * Vmbest gives 16 always; Vmpool and Vmlast give exactly this. */
static size_t natural(size_t n)
{
    n = n <= 8 ? 8 : (n + 7) & ~(size_t)7;
    size_t low = n & (~n + 1);
    return low < 16 ? low : 16;
}

static Vmstat_t stat_of(Vmalloc_t* vm)
{
    Vmstat_t st;
    CHECK(vmstat(vm, &st) == 0, "vmstat failed");
    return st;
}

/* A discipline over Vmdcsystem's memory that records every event and counts
 * the segments it has out. except_ret decides the answer to each event type. */
typedef struct {
    Vmdisc_t disc;
    int n;            /* events seen */
    int type[256];
    void* obj[256];
    Vmalloc_t* vm[256];
    int ret[8];       /* what exceptf answers to event type i */
    long segs;        /* segments given out and not yet taken back */
} Rec_t;

static void* rec_memory(Vmalloc_t* vm, void* addr, size_t csz, size_t nsz, Vmdisc_t* disc)
{
    Rec_t* r = (Rec_t*)disc;
    void* p = Vmdcsystem->memoryf(vm, addr, csz, nsz, Vmdcsystem);
    if (p && csz == 0)
        r->segs += 1;
    else if (p && nsz == 0)
        r->segs -= 1;
    return p;
}

static int rec_except(Vmalloc_t* vm, int type, void* obj, Vmdisc_t* disc)
{
    Rec_t* r = (Rec_t*)disc;
    if (r->n < 256) {
        r->type[r->n] = type;
        r->obj[r->n] = obj;
        r->vm[r->n] = vm;
    }
    r->n += 1;
    return type >= 0 && type < 8 ? r->ret[type] : 0;
}

static void rec_init(Rec_t* r)
{
    memset(r, 0, sizeof *r);
    r->disc.memoryf = rec_memory;
    r->disc.exceptf = rec_except;
}

/* How many events of type t were recorded since index from. */
static int rec_count(const Rec_t* r, int from, int t)
{
    int n = 0;
    for (int i = from; i < r->n && i < 256; ++i)
        n += r->type[i] == t;
    return n;
}

/* ---- NULL regions and arguments ------------------------------------------ */

static void test_null_region(void)
{
    int local = 0;
    void* p = &local;
    Vmstat_t st;

#define EINVAL_INT(call)                                                                           \
    do {                                                                                           \
        errno = 0;                                                                                 \
        int r_ = (call);                                                                           \
        CHECK(r_ == -1 && errno == EINVAL, #call " gave %d, errno %d", r_, errno);                 \
    } while (0)
#define EINVAL_PTR(call)                                                                           \
    do {                                                                                           \
        errno = 0;                                                                                 \
        void* r_ = (void*)(call);                                                                  \
        CHECK(r_ == NULL && errno == EINVAL, #call " gave %p, errno %d", r_, errno);               \
    } while (0)

    EINVAL_INT(vmclose(NULL));
    EINVAL_INT(vmclear(NULL));
    EINVAL_INT(vmcompact(NULL));
    EINVAL_PTR(vmalloc(NULL, 16));
    EINVAL_PTR(vmalloc(NULL, 0));
    EINVAL_PTR(vmalign(NULL, 16, 64));
    EINVAL_INT(vmfree(NULL, p));
    EINVAL_INT(vmfree(NULL, NULL));
    EINVAL_PTR(vmresize(NULL, p, 16, VM_RSCOPY));
    EINVAL_PTR(vmresize(NULL, NULL, 16, 0));
    EINVAL_INT((int)vmaddr(NULL, p));
    EINVAL_INT((int)vmsize(NULL, p));
    EINVAL_INT(vmset(NULL, VM_TRACE, 1));
    EINVAL_PTR(vmstrdup(NULL, "x"));
    EINVAL_INT(vmdbcheck(NULL));
    EINVAL_INT(vmdbwatch(NULL, p));
    EINVAL_PTR(vmsegment(NULL, p));
    EINVAL_PTR(vmdisc(NULL, NULL));
    EINVAL_PTR(vmdisc(NULL, Vmdcsystem));
    EINVAL_PTR(vmnewof(NULL, NULL, int, 4, 0));
    EINVAL_PTR(vmoldof(NULL, NULL, int, 4, 0));
    EINVAL_PTR(vmopen(NULL, Vmbest, 0));
    EINVAL_PTR(vmopen(Vmdcsystem, NULL, 0));
    EINVAL_INT(vmstat(Vmheap, NULL));
    EINVAL_INT(vmstat(NULL, NULL));
    EINVAL_INT(vmwalk(Vmheap, NULL, NULL));
    EINVAL_INT(vmwalk(NULL, NULL, NULL));

    /* A discipline without memoryf cannot make a region. */
    Vmdisc_t nomem = {NULL, NULL, 0};
    EINVAL_PTR(vmopen(&nomem, Vmbest, 0));

    /* Questions with no answer, but not errors. */
    CHECK(vmregion(NULL) == NULL, "vmregion(NULL) is not NULL");
    CHECK(vmregion(p) == NULL, "a stack address belongs to region %p", (void*)vmregion(p));

    /* vmstat(NULL) is Vmheap. */
    CHECK(vmstat(NULL, &st) == 0, "vmstat(NULL) failed");
    CHECK((st.mode & VM_METHODS) == VM_MTBEST, "Vmheap's mode is %#x", st.mode);
    size_t before = st.n_busy;
    void* h = vmalloc(Vmheap, 123);
    CHECK(h, "vmalloc(Vmheap) failed");
    CHECK(vmstat(NULL, &st) == 0 && st.n_busy == before + 1,
          "vmstat(NULL) does not see a new Vmheap block: %zu -> %zu", before, st.n_busy);
    Vmstat_t hs = stat_of(Vmheap);
    CHECK(hs.n_busy == st.n_busy && hs.s_busy == st.s_busy, "vmstat(NULL) differs from Vmheap");
    CHECK(vmfree(Vmheap, h) == 0, "vmfree(Vmheap) failed");

    /* vmwalk(NULL) walks all regions: at least the Vmheap block we hold. */
    h = vmalloc(Vmheap, 10);
    size_t n = 0;
    CHECK(vmwalk(NULL, t_count_blocks, &n) == 0 && n >= 1, "vmwalk(NULL) saw %zu blocks", n);
    vmfree(Vmheap, h);

    /* Every method of the paper exists. */
    CHECK(Vmdebug != NULL && Vmprofile != NULL, "Vmdebug/Vmprofile are NULL");

    /* Vmheap is never closed. */
    EINVAL_INT(vmclose(Vmheap));
    CHECK(vmalloc(Vmheap, 8) != NULL, "Vmheap unusable after a refused vmclose");

    /* Vmdebug's and Vmprofile's functions with no such region. */
    Vmalloc_t* vm = vmopen(Vmdcsystem, Vmbest, 0);
    CHECK(vm, "vmopen(Vmdcsystem, Vmbest) failed");
    void* b = vmalloc(vm, 10);
    EINVAL_INT(vmdbwatch(vm, b));
    int devnull = open("/dev/null", O_WRONLY);
    CHECK(vmprofile(NULL, devnull) == 0, "vmprofile(NULL, fd) with no profiled region is not 0");
    close(devnull);
    CHECK(vmprofile(vm, 2) == -1, "vmprofile of a Vmbest region is not -1");
    EINVAL_INT(vmprofile(NULL, -1));
    EINVAL_PTR(vmstrdup(vm, NULL));
    EINVAL_INT(vmstat(vm, NULL));
    CHECK(vmclose(vm) == 0, "vmclose failed");
}

/* ---- impossible sizes ---------------------------------------------------- */

static void test_sizes(Vmalloc_t* vm, const char* name, int pool)
{
    static const size_t huge[] = {SIZE_MAX,         SIZE_MAX - 1,      SIZE_MAX - 4096,
                                  SIZE_MAX / 2 + 1, (size_t)1 << 62,   ((size_t)1 << 62) + 1,
                                  (size_t)1 << 50,  (size_t)1 << 47};
    Vmstat_t st0 = stat_of(vm);
    for (size_t i = 0; i < sizeof huge / sizeof huge[0]; ++i) {
        errno = 0;
        void* p = vmalloc(vm, huge[i]);
        CHECK(p == NULL && errno == ENOMEM, "%s: vmalloc(%zu) gave %p errno %d", name, huge[i], p,
              errno);
        if (!pool) {
            errno = 0;
            p = vmalign(vm, huge[i], 64);
            CHECK(p == NULL && errno == ENOMEM, "%s: vmalign(%zu, 64) gave %p errno %d", name,
                  huge[i], p, errno);
        }
    }
    Vmstat_t st1 = stat_of(vm);
    CHECK(st1.n_busy == st0.n_busy && st1.s_busy == st0.s_busy,
          "%s: failed allocations changed the busy counts", name);
    CHECK(vmdbcheck(vm) == 0, "%s: region damaged by impossible sizes", name);

    if (pool) /* a failed first call must not fix the pool's size */
        return;
    /* An impossible resize leaves the block as it was. */
    char* b = vmalloc(vm, 100);
    CHECK(b, "%s: vmalloc(100) failed", name);
    fill(b, 100, 3);
    for (size_t i = 0; i < sizeof huge / sizeof huge[0]; ++i) {
        errno = 0;
        void* p = vmresize(vm, b, huge[i], VM_RSCOPY);
        CHECK(p == NULL && errno == ENOMEM, "%s: vmresize(%zu) gave %p errno %d", name, huge[i], p,
              errno);
        CHECK(vmsize(vm, b) >= 100 && intact(b, 100, 3), "%s: failed resize changed the block",
              name);
    }
    CHECK(vmfree(vm, b) == 0, "%s: block unfreeable after failed resizes", name);
    CHECK(vmdbcheck(vm) == 0, "%s: region damaged by impossible resizes", name);
}

/* ---- vmalloc(0), alignment ----------------------------------------------- */

/* last: vm is a Vmlast region, where only the newest block can be freed. */
static void test_zero_and_align(Vmalloc_t* vm, const char* name, int last)
{
    void* z[8];
    for (int i = 0; i < 8; ++i) {
        z[i] = vmalloc(vm, 0);
        CHECK(z[i], "%s: vmalloc(0) #%d gave NULL", name, i);
        CHECK(is_aligned(z[i], natural(0)), "%s: vmalloc(0) gave misaligned %p", name, z[i]);
        for (int j = 0; j < i; ++j)
            CHECK(z[i] != z[j], "%s: vmalloc(0) gave %p twice", name, z[i]);
        CHECK(vmsize(vm, z[i]) >= 0, "%s: vmsize of a 0-byte block is -1", name);
    }
    for (int i = 8; i-- > 0;)
        CHECK(vmfree(vm, z[i]) == (last && i < 7 ? -1 : 0), "%s: vmfree of 0-byte block %d",
              name, i);

    static const size_t bad[] = {0, 3, 24, 48, 100, 4097, ((size_t)1 << 20) + 16, SIZE_MAX};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; ++i) {
        errno = 0;
        void* p = vmalign(vm, 64, bad[i]);
        CHECK(p == NULL && errno == EINVAL, "%s: vmalign(64, %zu) gave %p errno %d", name, bad[i],
              p, errno);
    }

    /* Every power of two up to 1 MiB, with a live neighbour each time so the
     * aligned block is carved out of a used arena. */
    for (size_t a = 1; a <= ((size_t)1 << 20); a <<= 1) {
        size_t sizes[] = {1, 100, 4096 + 8};
        for (int k = 0; k < 3; ++k) {
            void* before = vmalloc(vm, 24);
            char* p = vmalign(vm, sizes[k], a);
            CHECK(p, "%s: vmalign(%zu, %zu) failed", name, sizes[k], a);
            CHECK(is_aligned(p, a) && is_aligned(p, natural(sizes[k])),
                  "%s: vmalign(%zu, %zu) gave %p", name, sizes[k], a, (void*)p);
            CHECK(vmsize(vm, p) >= (long)sizes[k], "%s: aligned block too small", name);
            fill(p, sizes[k], (unsigned)a);
            CHECK(vmregion(p) == vm, "%s: vmregion of an aligned block", name);
            CHECK(intact(p, sizes[k], (unsigned)a), "%s: aligned block overwritten", name);
            CHECK(vmdbcheck(vm) == 0, "%s: damaged after vmalign(%zu, %zu)", name, sizes[k], a);
            CHECK(vmfree(vm, p) == 0, "%s: vmfree of an aligned block failed", name);
            CHECK(vmfree(vm, before) == (last ? -1 : 0), "%s: vmfree of the neighbour", name);
        }
    }
    /* A power of two so large that no arena can honour it. */
    errno = 0;
    void* p = vmalign(vm, 100, (size_t)1 << 63);
    CHECK(p == NULL && (errno == ENOMEM || errno == EINVAL), "%s: vmalign(100, 2^63) gave %p",
          name, p);
    p = vmalign(vm, 100, (size_t)1 << 62);
    CHECK(p == NULL, "%s: vmalign(100, 2^62) gave %p", name, p);
    CHECK(vmdbcheck(vm) == 0, "%s: damaged by impossible alignments", name);
}

/* ---- vmresize ------------------------------------------------------------- */

static void test_resize(void)
{
    CHECK(VM_RSCOPY == 1, "VM_RSCOPY is %d; the paper's Figure 1 passes 1 for a copying resize",
          VM_RSCOPY);
    CHECK(VM_RSZERO == VM_RSCLEAR, "VM_RSZERO is not VM_RSCLEAR");
    Vmalloc_t* vm = vmopen(Vmdcsystem, Vmbest, 0);
    CHECK(vm, "vmopen failed");

    /* NULL block: vmalloc; with VM_RSCLEAR the block is zeroed even where the
     * memory was used before. */
    char* d = vmalloc(vm, 500);
    memset(d, 0xAA, (size_t)vmsize(vm, d));
    CHECK(vmfree(vm, d) == 0, "vmfree");
    char* z = vmresize(vm, NULL, 500, VM_RSCLEAR);
    CHECK(z && vmsize(vm, z) >= 500, "vmresize(NULL, 500, VM_RSCLEAR) failed");
    CHECK(all_zero(z, 500), "vmresize(NULL, ..., VM_RSCLEAR) is not zeroed");
    char* y = vmresize(vm, NULL, 40, 0);
    CHECK(y && vmsize(vm, y) >= 40 && vmregion(y) == vm, "vmresize(NULL, 40, 0) is not vmalloc");

    /* Size 0 frees. */
    Vmstat_t st = stat_of(vm);
    errno = 0;
    CHECK(vmresize(vm, y, 0, VM_RSCOPY) == NULL, "vmresize(b, 0) did not return NULL");
    CHECK(stat_of(vm).n_busy == st.n_busy - 1, "vmresize(b, 0) did not free b");
    CHECK(vmfree(vm, y) == -1, "a block freed by vmresize(b, 0) could be freed again");
    CHECK(vmfree(vm, z) == 0, "vmfree");

    /* Type 0: in place or NULL with the block intact. a is hemmed in by b.
     * Blocks above Vmbest's size classes (16 KiB), which have neighbours. */
    char* a = vmalloc(vm, 20000);
    char* b = vmalloc(vm, 20000);
    char* c = vmalloc(vm, 20000);
    CHECK(a && b && c, "vmalloc");
    fill(a, 200, 1);
    fill(b, 200, 2);
    fill(c, 200, 3);
    long asz = vmsize(vm, a);
    errno = 0;
    char* r = vmresize(vm, a, 100000, 0);
    if (r) /* grew in place: allowed only if a did not move */
        CHECK(r == a && vmsize(vm, a) >= 100000, "type 0 moved the block");
    else {
        CHECK(errno == ENOMEM, "failed type-0 resize set errno %d", errno);
        CHECK(vmsize(vm, a) == asz && intact(a, 200, 1), "failed type-0 resize changed the block");
    }
    CHECK(intact(b, 200, 2) && intact(c, 200, 3), "type-0 resize touched the neighbours");
    if (r) {
        r = vmresize(vm, a, 200, 0);
        CHECK(r == a, "shrinking back in place failed");
    }
    /* Shrinking in place always works. */
    r = vmresize(vm, a, 50, 0);
    CHECK(r == a && vmsize(vm, a) >= 50 && intact(a, 50, 1), "type-0 shrink failed");
    CHECK(intact(b, 200, 2), "shrinking a damaged its neighbour");
    /* Growing into a free successor works in place: free b, grow a over it. */
    CHECK(vmfree(vm, b) == 0, "vmfree");
    r = vmresize(vm, a, 300, 0);
    CHECK(r == a && vmsize(vm, a) >= 300 && intact(a, 50, 1),
          "type-0 growth into a free neighbour failed");
    CHECK(intact(c, 200, 3), "in-place growth damaged the next block");
    CHECK(vmdbcheck(vm) == 0, "region damaged by in-place resizes");

    /* VM_RSMOVE: may move, content need not be kept. */
    b = vmalloc(vm, 200); /* hem a in again (it may or may not land after a) */
    st = stat_of(vm);
    r = vmresize(vm, a, 64 * 1024, VM_RSMOVE);
    CHECK(r && vmsize(vm, r) >= 64 * 1024, "VM_RSMOVE failed");
    CHECK(stat_of(vm).n_busy == st.n_busy, "VM_RSMOVE changed the number of busy blocks");
    if (r != a)
        CHECK(vmfree(vm, a) == -1, "the old block of a moving resize is still busy");
    a = r;
    memset(a, 0x55, 64 * 1024);

    /* VM_RSCOPY: content kept wherever the block goes. */
    fill(a, 64 * 1024, 9);
    r = vmresize(vm, a, 3 * 64 * 1024, VM_RSCOPY);
    CHECK(r && vmsize(vm, r) >= 3 * 64 * 1024 && intact(r, 64 * 1024, 9), "VM_RSCOPY grow failed");
    a = r;
    r = vmresize(vm, a, 1000, VM_RSCOPY);
    CHECK(r && intact(r, 1000, 9), "VM_RSCOPY shrink lost the content");
    a = r;
    CHECK(intact(c, 200, 3), "resizes damaged another block");

    /* VM_RSCLEAR in place: the space beyond the old size is zero although the
     * memory it takes over was dirty. */
    CHECK(vmdbcheck(vm) == 0, "region damaged by moving resizes");
    CHECK(vmclose(vm) == 0, "vmclose");
    /* A fresh region whose first segment is large: blocks allocated one after
     * the other are neighbours there. */
    Vmdisc_t roomy = {Vmdcsystem->memoryf, NULL, (size_t)1 << 20};
    vm = vmopen(&roomy, Vmbest, 0);
    CHECK(vm, "vmopen");
    c = vmalloc(vm, 200);
    CHECK(c, "vmalloc");
    fill(c, 200, 3);
    a = vmalloc(vm, 64);
    b = vmalloc(vm, 4000);
    char* e = vmalloc(vm, 64); /* keeps b's space from being the wilderness */
    CHECK(a && b && e, "vmalloc");
    long aold = vmsize(vm, a);
    fill(a, (size_t)aold, 4);
    memset(b, 0xAA, 4000);
    CHECK(vmfree(vm, b) == 0, "vmfree");
    r = vmresize(vm, a, 3000, VM_RSCLEAR);
    CHECK(r == a, "in-place VM_RSCLEAR growth into a free neighbour moved or failed");
    CHECK(intact(a, (size_t)aold, 4), "VM_RSCLEAR lost the old content");
    CHECK(all_zero(a + aold, (size_t)(vmsize(vm, a) - aold)), "VM_RSCLEAR left dirty new space");

    /* VM_RSCOPY | VM_RSCLEAR moving: old content kept, new space zero. */
    d = vmalloc(vm, 20000);
    char* f = vmalloc(vm, 64);
    memset(d, 0xAA, 20000);
    CHECK(vmfree(vm, d) == 0, "vmfree");
    aold = vmsize(vm, a);
    fill(a, (size_t)aold, 5);
    r = vmresize(vm, a, 15000, VM_RSCOPY | VM_RSCLEAR);
    CHECK(r, "VM_RSCOPY|VM_RSCLEAR failed");
    CHECK(intact(r, (size_t)aold, 5), "VM_RSCOPY|VM_RSCLEAR lost the content");
    CHECK(all_zero(r + aold, 15000 - (size_t)aold), "VM_RSCOPY|VM_RSCLEAR left dirty new space");
    a = r;

    /* VM_RSMOVE | VM_RSCLEAR: the content is not kept, so the block is zero. */
    d = vmalloc(vm, 50000);
    memset(d, 0xAA, 50000);
    f = vmalloc(vm, 64);
    CHECK(vmfree(vm, d) == 0, "vmfree");
    r = vmresize(vm, a, 40000, VM_RSMOVE | VM_RSCLEAR);
    CHECK(r && vmsize(vm, r) >= 40000, "VM_RSMOVE|VM_RSCLEAR failed");
    if (r != a)
        CHECK(all_zero(r, 40000), "a moved VM_RSMOVE|VM_RSCLEAR block is not zero");
    a = r;
    CHECK(intact(c, 200, 3), "resizes damaged another block");
    CHECK(vmdbcheck(vm) == 0, "region damaged by resizes");

    /* A resize of an address that is not a block is refused. */
    int local;
    errno = 0;
    CHECK(vmresize(vm, &local, 10, VM_RSCOPY) == NULL && errno == EINVAL,
          "vmresize of a stack address gave errno %d", errno);
    errno = 0;
    CHECK(vmresize(vm, a + 16, 10, VM_RSCOPY) == NULL && errno == EINVAL,
          "vmresize of an interior address gave errno %d", errno);
    (void)e;
    (void)f;
    CHECK(vmclose(vm) == 0, "vmclose");
}

/* ---- bad addresses -------------------------------------------------------- */

/* Offer vm every kind of address that is not a busy block of it, through
 * vmfree and vmresize; blk[] are live blocks of bsize bytes filled with
 * seeds 100 + i. Each must be refused with EINVAL and change nothing; it is
 * announced as VM_BADADDR with the address as obj when announced is set
 * (Vmlast refuses addresses inside its busy memory without an event: it
 * cannot tell a block start from an interior address there). */
static void offer_bad(Vmalloc_t* vm, Rec_t* rec, const char* name, char** blk, int nblk,
                      size_t bsize, void* const* bad, int nbad, int announced)
{
    Vmstat_t st0 = stat_of(vm);
    for (int i = 0; i < nbad; ++i) {
        int from = rec->n;
        errno = 0;
        int r = vmfree(vm, bad[i]);
        CHECK(r == -1 && errno == EINVAL, "%s: vmfree(bad #%d %p) gave %d errno %d", name, i,
              bad[i], r, errno);
        CHECK(announced ? rec->n == from + 1 && rec->type[from] == VM_BADADDR &&
                              rec->obj[from] == bad[i] && rec->vm[from] == vm
                        : rec->n == from,
              "%s: vmfree(bad #%d) announced %d events, first type %d obj %p", name, i,
              rec->n - from, rec->n > from ? rec->type[from] : 0,
              rec->n > from ? rec->obj[from] : NULL);

        from = rec->n;
        errno = 0;
        void* p = vmresize(vm, bad[i], 64, VM_RSCOPY);
        CHECK(p == NULL && errno == EINVAL, "%s: vmresize(bad #%d %p) gave %p errno %d", name, i,
              bad[i], p, errno);
        CHECK(announced ? rec->n == from + 1 && rec->type[from] == VM_BADADDR &&
                              rec->obj[from] == bad[i]
                        : rec->n == from,
              "%s: vmresize(bad #%d) announced %d events, first type %d obj %p", name, i,
              rec->n - from, rec->n > from ? rec->type[from] : 0,
              rec->n > from ? rec->obj[from] : NULL);
        CHECK(vmsize(vm, bad[i]) == -1, "%s: vmsize(bad #%d) is not -1", name, i);
    }
    Vmstat_t st1 = stat_of(vm);
    CHECK(st1.n_busy == st0.n_busy && st1.s_busy == st0.s_busy,
          "%s: bad addresses changed the counts", name);
    CHECK(vmdbcheck(vm) == 0, "%s: region damaged by bad addresses", name);
    for (int i = 0; i < nblk; ++i)
        CHECK(intact(blk[i], bsize, 100u + (unsigned)i), "%s: block %d damaged", name, i);
}

static void test_bad_addresses(Vmethod_t* meth, const char* name, int last)
{
    Rec_t rec;
    rec_init(&rec);
    Vmalloc_t* vm = vmopen(&rec.disc, meth, 0);
    CHECK(vm, "%s: vmopen failed", name);
    Vmalloc_t* other = vmopen(Vmdcsystem, meth, 0);
    CHECK(other, "%s: vmopen failed", name);

    enum { N = 6 };
    const size_t bsize = 48;
    char* blk[N];
    for (int i = 0; i < N; ++i) {
        blk[i] = vmalloc(vm, bsize);
        CHECK(blk[i], "%s: vmalloc", name);
        fill(blk[i], bsize, 100u + (unsigned)i);
    }
    char* foreign = vmalloc(other, bsize);
    char* heapblk = vmalloc(Vmheap, bsize);
    static char sbuf[64];
    int local;
    void* bad[] = {
        &local,                          /* the stack */
        sbuf + 16,                       /* static data */
        foreign,                         /* a block of another region */
        heapblk,                         /* a block of Vmheap */
        (char*)vm,                       /* the region handle */
        (char*)vm + 64,                  /* inside the region's bookkeeping */
        (void*)(uintptr_t)4096,          /* no memory at all */
        (void*)(uintptr_t)UINTPTR_MAX - 15,
    };
    offer_bad(vm, &rec, name, blk, N, bsize, bad, (int)(sizeof bad / sizeof bad[0]), 1);
    void* interior[] = {
        blk[1] + 1,          /* misaligned */
        blk[1] + 16,         /* aligned */
        blk[2] + bsize - 16, /* near the end */
        blk[0],              /* Vmlast: a good block, but not the last */
    };
    offer_bad(vm, &rec, name, blk, N, bsize, interior, last ? 4 : 3, !last);

    /* Already freed. Vmlast frees only its last block, so free from the top. */
    CHECK(vmfree(vm, blk[N - 1]) == 0, "%s: vmfree", name);
    void* freed[] = {blk[N - 1]};
    offer_bad(vm, &rec, name, blk, N - 1, bsize, freed, 1, 1);

    /* Stale after vmclear: every block is gone. */
    CHECK(vmclear(vm) == 0, "%s: vmclear", name);
    void* stale[] = {blk[0], blk[1], blk[3]};
    offer_bad(vm, &rec, name, blk, 0, bsize, stale, 3, 1);

    /* Without an exceptf the answers are the same, silently. */
    char* g = vmalloc(other, bsize);
    CHECK(g, "%s: vmalloc", name);
    fill(g, bsize, 7);
    errno = 0;
    CHECK(vmfree(other, g + 8) == -1 && errno == EINVAL, "%s: interior free accepted", name);
    CHECK(vmfree(other, blk[0]) == -1, "%s: a foreign block freed", name);
    CHECK(intact(g, bsize, 7) && vmdbcheck(other) == 0, "%s: region changed", name);

    CHECK(vmclose(other) == 0 && vmclose(vm) == 0, "%s: vmclose", name);
    CHECK(rec.segs == 0, "%s: %ld segments not given back", name, rec.segs);
    vmfree(Vmheap, heapblk);
}

/* ---- vmfree, vmsize, vmaddr ---------------------------------------------- */

static void test_size_addr(void)
{
    Vmalloc_t* vm = vmopen(Vmdcsystem, Vmbest, 0);
    CHECK(vm, "vmopen");
    CHECK(vmfree(vm, NULL) == 0, "vmfree(vm, NULL) is not 0");
    static const size_t sizes[] = {1, 15, 16, 17, 100, 1000, 4096, 100000, 3 << 20};
    char* p[9];
    for (int i = 0; i < 9; ++i) {
        p[i] = vmalloc(vm, sizes[i]);
        CHECK(p[i] && is_aligned(p[i], 16), "vmalloc(%zu) gave %p", sizes[i], (void*)p[i]);
        long s = vmsize(vm, p[i]);
        CHECK(s >= (long)sizes[i], "vmsize %ld < %zu", s, sizes[i]);
        memset(p[i], i, (size_t)s); /* the whole usable size is ours */
    }
    for (int i = 0; i < 9; ++i) {
        long s = vmsize(vm, p[i]);
        CHECK(vmaddr(vm, p[i]) == 0, "vmaddr of a block start");
        CHECK(vmaddr(vm, p[i] + 1) == 1, "vmaddr(p + 1)");
        CHECK(vmaddr(vm, p[i] + s - 1) == s - 1, "vmaddr of the last usable byte");
        CHECK(vmaddr(vm, p[i] + s / 2) == s / 2, "vmaddr of the middle");
        CHECK(vmsize(vm, p[i] + 1) == -1, "vmsize of an interior address");
        for (long k = 0; k < s; ++k)
            CHECK(p[i][k] == (char)i, "block %d byte %ld overwritten", i, k);
    }
    int local;
    CHECK(vmaddr(vm, &local) == -1, "vmaddr of a stack address");
    CHECK(vmsize(vm, &local) == -1, "vmsize of a stack address");
    CHECK(vmaddr(vm, vm) == -1, "vmaddr of the region handle is not -1");
    for (int i = 0; i < 9; i += 2) {
        CHECK(vmfree(vm, p[i]) == 0, "vmfree");
        CHECK(vmsize(vm, p[i]) == -1, "vmsize of a freed block is not -1");
    }
    for (int i = 1; i < 9; i += 2)
        CHECK(vmaddr(vm, p[i] + 3) == 3, "vmaddr after neighbours were freed");
    CHECK(vmdbcheck(vm) == 0, "region damaged");
    CHECK(vmclose(vm) == 0, "vmclose");
}

/* ---- vmstat --------------------------------------------------------------- */

static void test_stat(void)
{
    Vmalloc_t* vm = vmopen(Vmdcsystem, Vmbest, 0);
    CHECK(vm, "vmopen");
    Vmstat_t st = stat_of(vm);
    CHECK(st.n_busy == 0 && st.s_busy == 0 && st.max_busy == 0, "a new region has busy blocks");
    CHECK(st.n_seg >= 1 && st.extent > 0, "a new region holds no segment");
    CHECK(st.mode == VM_MTBEST, "mode %#x, not VM_MTBEST", st.mode);

    char* p[3];
    size_t want[3] = {100, 2000, 30000}, total = 0, biggest = 0;
    for (int i = 0; i < 3; ++i) {
        p[i] = vmalloc(vm, want[i]);
        CHECK(p[i], "vmalloc");
        total += (size_t)vmsize(vm, p[i]);
        if ((size_t)vmsize(vm, p[i]) > biggest)
            biggest = (size_t)vmsize(vm, p[i]);
    }
    st = stat_of(vm);
    CHECK(st.n_busy == 3 && st.s_busy == total, "n_busy %zu s_busy %zu, want 3 and %zu",
          st.n_busy, st.s_busy, total);
    /* Vmbest counts blocks its thread caches hold as busy when it takes
     * them from its pages, so the peak may be higher than the true one. */
    CHECK(st.max_busy >= total, "max_busy %zu, want at least %zu", st.max_busy, total);
    size_t peak = st.max_busy;
    CHECK(st.m_busy == biggest, "m_busy %zu, want %zu", st.m_busy, biggest);
    CHECK(st.extent >= st.s_busy + st.s_free, "extent %zu < busy %zu + free %zu", st.extent,
          st.s_busy, st.s_free);
    CHECK(st.m_free <= st.s_free && (st.n_free > 0 || st.s_free == 0), "free counts inconsistent");

    size_t s1 = (size_t)vmsize(vm, p[1]);
    CHECK(vmfree(vm, p[1]) == 0, "vmfree");
    st = stat_of(vm);
    CHECK(st.n_busy == 2 && st.s_busy == total - s1, "counts after a free");
    CHECK(st.max_busy == peak, "max_busy is a peak: %zu, want %zu", st.max_busy, peak);
    CHECK(st.n_free >= 1 && st.s_free >= s1, "the freed block is not counted free");

    p[0] = vmresize(vm, p[0], 5000, VM_RSCOPY);
    CHECK(p[0], "vmresize");
    st = stat_of(vm);
    CHECK(st.s_busy == (size_t)vmsize(vm, p[0]) + (size_t)vmsize(vm, p[2]),
          "s_busy after a resize: %zu", st.s_busy);

    CHECK(vmset(vm, VM_TRACE, 1) == 0, "vmset");
    CHECK(stat_of(vm).mode == (VM_MTBEST | VM_TRACE), "mode does not show VM_TRACE");
    CHECK(vmset(vm, VM_TRACE, 0) == VM_TRACE, "vmset");

    CHECK(vmclear(vm) == 0, "vmclear");
    st = stat_of(vm);
    CHECK(st.n_busy == 0 && st.s_busy == 0 && st.max_busy == 0, "vmclear left busy counts");
    CHECK(st.m_busy == 0, "vmclear left m_busy %zu", st.m_busy);

    Vmalloc_t* pool = vmopen(Vmdcsystem, Vmpool, VM_TRACE);
    Vmalloc_t* last = vmopen(Vmdcsystem, Vmlast, VM_TRUST);
    CHECK(pool && last, "vmopen");
    CHECK(stat_of(pool).mode == (VM_MTPOOL | VM_TRACE), "pool mode %#x", stat_of(pool).mode);
    CHECK(stat_of(last).mode == (VM_MTLAST | VM_TRUST), "last mode %#x", stat_of(last).mode);
    CHECK(vmclose(pool) == 0 && vmclose(last) == 0 && vmclose(vm) == 0, "vmclose");
}

/* ---- vmset ----------------------------------------------------------------- */

static void test_set(void)
{
    Vmalloc_t* vm = vmopen(Vmdcsystem, Vmbest, VM_TRACE);
    CHECK(vm, "vmopen");
    CHECK(vmset(vm, 0, 1) == VM_TRACE, "vmset(vm, 0, 1) does not report the flags");
    CHECK(vmset(vm, VM_TRUST, 1) == VM_TRACE, "vmset returned a wrong old value");
    CHECK(vmset(vm, 0, 0) == (VM_TRACE | VM_TRUST), "VM_TRUST was not turned on");
    void* p = vmalloc(vm, 10); /* a trusted region still allocates */
    CHECK(p && vmfree(vm, p) == 0, "alloc/free with VM_TRUST");
    CHECK(vmset(vm, VM_TRUST | VM_TRACE, 0) == (VM_TRACE | VM_TRUST), "vmset off");
    CHECK(vmset(vm, 0, 1) == 0, "flags not turned off");
    CHECK(vmset(vm, 0x40000, 1) == 0 && vmset(vm, 0, 1) == 0, "an unknown flag was kept");
    CHECK(vmset(vm, VM_DBCHECK | VM_DBABORT, 1) == 0, "vmset");
    CHECK(stat_of(vm).mode == (VM_MTBEST | VM_DBCHECK | VM_DBABORT), "mode %#x",
          stat_of(vm).mode);
    CHECK(vmclose(vm) == 0, "vmclose");
}

/* ---- vmdisc ---------------------------------------------------------------- */

static void test_disc_change(void)
{
    Rec_t a, b;
    rec_init(&a);
    rec_init(&b);
    Vmalloc_t* vm = vmopen(&a.disc, Vmbest, 0);
    CHECK(vm, "vmopen");
    CHECK(vmdisc(vm, NULL) == &a.disc, "vmdisc(vm, NULL) is not the discipline");

    void* big[4];
    for (int i = 0; i < 2; ++i)
        big[i] = vmalloc(vm, 2 << 20); /* large enough to need segments of their own */
    long asegs = a.segs;
    CHECK(asegs >= 2, "large blocks took %ld segments from the discipline", asegs);

    /* Refused by the old discipline: nothing changes. */
    a.ret[VM_DISC] = -1;
    int from = a.n;
    errno = 0;
    CHECK(vmdisc(vm, &b.disc) == NULL, "a refused vmdisc returned non-NULL");
    CHECK(a.n == from + 1 && a.type[from] == VM_DISC && a.obj[from] == &b.disc,
          "VM_DISC not announced with the new discipline as obj");
    CHECK(vmdisc(vm, NULL) == &a.disc, "a refused vmdisc changed the discipline");

    Vmdisc_t broken = {NULL, NULL, 0};
    errno = 0;
    CHECK(vmdisc(vm, &broken) == NULL && errno == EINVAL, "vmdisc accepted a discipline without memoryf");

    a.ret[VM_DISC] = 0;
    CHECK(vmdisc(vm, &b.disc) == &a.disc, "vmdisc did not return the old discipline");
    CHECK(vmdisc(vm, NULL) == &b.disc, "vmdisc did not change the discipline");
    for (int i = 2; i < 4; ++i)
        big[i] = vmalloc(vm, 2 << 20);
    CHECK(big[0] && big[1] && big[2] && big[3], "vmalloc of large blocks");
    CHECK(b.segs >= 2 && a.segs == asegs, "new segments came from the old discipline");
    /* Segments go back to the discipline that gave them. */
    CHECK(vmfree(vm, big[0]) == 0 && vmfree(vm, big[3]) == 0, "vmfree");
    CHECK(a.segs == asegs - 1 && b.segs >= 1, "a freed segment went to the wrong discipline");
    CHECK(vmdbcheck(vm) == 0, "region damaged by a discipline change");
    CHECK(vmclose(vm) == 0, "vmclose");
    CHECK(a.segs == 0 && b.segs == 0, "after vmclose: %ld and %ld segments not given back", a.segs,
          b.segs);
}

/* ---- vmstrdup, vmnewof, vmoldof ------------------------------------------- */

static void test_strdup_newof(void)
{
    Vmalloc_t* vm = vmopen(Vmdcsystem, Vmbest, 0);
    CHECK(vm, "vmopen");
    const char* s = "regions, disciplines, methods";
    char* d = vmstrdup(vm, s);
    CHECK(d && d != s && strcmp(d, s) == 0, "vmstrdup");
    CHECK(vmregion(d) == vm && vmsize(vm, d) >= (long)strlen(s) + 1, "vmstrdup's block");
    char* e = vmstrdup(vm, "");
    CHECK(e && e[0] == 0 && e != d, "vmstrdup of an empty string");

    char* junk = vmalloc(vm, 4000);
    memset(junk, 0xAA, 4000);
    vmfree(vm, junk); /* so that vmnewof has dirty memory to zero */
    int* v = vmnewof(vm, NULL, int, 10, 0);
    CHECK(v && vmsize(vm, v) >= 10 * (long)sizeof(int), "vmnewof(NULL)");
    CHECK(all_zero(v, 10 * sizeof(int)), "vmnewof(NULL) is not zeroed");
    for (int i = 0; i < 10; ++i)
        v[i] = i + 1;
    v = vmnewof(vm, v, int, 1000, 0);
    CHECK(v, "vmnewof grow");
    for (int i = 0; i < 10; ++i)
        CHECK(v[i] == i + 1, "vmnewof lost element %d", i);
    CHECK(all_zero(v + 10, 990 * sizeof(int)), "vmnewof did not zero the new space");
    v = vmoldof(vm, v, int, 5, 0);
    CHECK(v && v[0] == 1 && v[4] == 5, "vmoldof shrink lost content");
    v = vmoldof(vm, v, int, 2000, 0);
    CHECK(v && v[0] == 1 && v[4] == 5 && vmsize(vm, v) >= 2000 * (long)sizeof(int), "vmoldof grow");
    char* x = vmnewof(vm, NULL, char, 2, 3);
    CHECK(x && vmsize(vm, x) >= 5 && all_zero(x, 5), "vmnewof with extra bytes");

    /* n * sizeof(type) + x must not wrap. */
    errno = 0;
    CHECK(vmnewof(vm, v, double, SIZE_MAX / 4, 0) == NULL && errno == ENOMEM,
          "vmnewof overflow of n*size");
    CHECK(v[0] == 1 && v[4] == 5 && vmsize(vm, v) >= 2000 * (long)sizeof(int),
          "a failed vmnewof changed the block");
    errno = 0;
    CHECK(vmoldof(vm, NULL, char, SIZE_MAX, 1) == NULL && errno == ENOMEM, "vmoldof overflow of +x");
    errno = 0;
    CHECK(vmnewof(vm, NULL, char, SIZE_MAX / 2, SIZE_MAX / 2 + 2) == NULL && errno == ENOMEM,
          "vmnewof overflow of n + x");
    /* n == 0, x == 0 with a block frees it, as vmresize(b, 0) does. */
    CHECK(vmnewof(vm, x, char, 0, 0) == NULL && vmsize(vm, x) == -1, "vmnewof(.., 0, 0) kept x");
    CHECK(vmdbcheck(vm) == 0, "region damaged");
    CHECK(vmclose(vm) == 0, "vmclose");
}

/* ---- vmregion, vmsegment, vmwalk ------------------------------------------ */

typedef struct {
    Vmalloc_t* vm;
    void* blocks[16];
    size_t sizes[16];
    int seen[16];
    int visits, foreign, stop_at;
} Walk_t;

static int walk_visit(Vmalloc_t* vm, void* block, size_t size, Vmdisc_t* disc, void* arg)
{
    Walk_t* w = arg;
    if (vm != w->vm) {
        w->foreign += 1;
        return 0;
    }
    CHECK(disc == vmdisc(vm, NULL), "vmwalk gave a wrong discipline");
    w->visits += 1;
    for (int i = 0; i < 16; ++i) {
        if (w->blocks[i] == block) {
            CHECK(size == w->sizes[i], "vmwalk size %zu, vmsize %zu", size, w->sizes[i]);
            w->seen[i] += 1;
        }
    }
    return w->stop_at && w->visits == w->stop_at ? 42 : 0;
}

static void test_region_segment_walk(void)
{
    Vmalloc_t* vm = vmopen(Vmdcsystem, Vmbest, 0);
    Vmalloc_t* inner = vmopen(Vmdcheap, Vmbest, 0);
    CHECK(vm && inner, "vmopen");

    void* hb = vmalloc(Vmheap, 77);
    CHECK(vmregion(hb) == Vmheap, "vmregion of a Vmheap block");
    void* ib = vmalloc(inner, 100);
    void* ib2 = vmalloc(inner, 200000);
    CHECK(ib && ib2, "vmalloc from a Vmdcheap region");
    CHECK(vmregion(ib) == inner && vmregion(ib2) == inner,
          "vmregion of a block of a region nested in Vmheap is %p, not the inner %p",
          (void*)vmregion(ib), (void*)inner);
    CHECK(vmregion(inner) == inner, "vmregion of the region handle itself");
    void* seg = vmsegment(inner, ib);
    CHECK(seg && (char*)seg <= (char*)ib, "vmsegment of an inner block");
    CHECK(vmsize(Vmheap, seg) > 0, "a Vmdcheap segment is not a Vmheap block");
    CHECK(vmsegment(inner, hb) == NULL, "vmsegment of another region's block");
    int local;
    CHECK(vmsegment(vm, &local) == NULL, "vmsegment of a stack address");
    CHECK(vmregion(&local) == NULL, "vmregion of a stack address");

    Walk_t w;
    memset(&w, 0, sizeof w);
    w.vm = vm;
    for (int i = 0; i < 16; ++i) {
        w.blocks[i] = vmalloc(vm, (size_t)(i + 1) * 100);
        CHECK(w.blocks[i], "vmalloc");
        void* s = vmsegment(vm, w.blocks[i]);
        CHECK(s && (char*)s <= (char*)w.blocks[i] && vmregion(w.blocks[i]) == vm,
              "vmsegment/vmregion of block %d", i);
    }
    for (int i = 0; i < 16; i += 3) { /* holes in the walk */
        vmfree(vm, w.blocks[i]);
        w.blocks[i] = NULL;
    }
    for (int i = 0; i < 16; ++i)
        w.sizes[i] = w.blocks[i] ? (size_t)vmsize(vm, w.blocks[i]) : 0;
    CHECK(vmwalk(vm, walk_visit, &w) == 0, "vmwalk");
    CHECK(w.foreign == 0, "vmwalk(vm) visited other regions");
    for (int i = 0; i < 16; ++i)
        CHECK(w.seen[i] == (w.blocks[i] ? 1 : 0), "vmwalk visited block %d %d times", i, w.seen[i]);
    CHECK(w.visits == (int)stat_of(vm).n_busy, "vmwalk visited %d blocks, n_busy %zu", w.visits,
          stat_of(vm).n_busy);

    /* A non-zero answer stops the walk and comes back. */
    memset(w.seen, 0, sizeof w.seen);
    w.visits = 0;
    w.stop_at = 3;
    CHECK(vmwalk(vm, walk_visit, &w) == 42 && w.visits == 3, "vmwalk did not stop");

    /* vmwalk(NULL) sees every region: ours, the inner one, Vmheap. */
    memset(w.seen, 0, sizeof w.seen);
    w.visits = 0;
    w.stop_at = 0;
    w.foreign = 0;
    CHECK(vmwalk(NULL, walk_visit, &w) == 0, "vmwalk(NULL)");
    for (int i = 0; i < 16; ++i)
        CHECK(w.seen[i] == (w.blocks[i] ? 1 : 0), "vmwalk(NULL) visited block %d %d times", i,
              w.seen[i]);
    CHECK(w.foreign >= 3, "vmwalk(NULL) did not visit other regions (%d blocks)", w.foreign);

    CHECK(vmclose(inner) == 0, "vmclose inner");
    CHECK(vmclose(inner) == -1, "a second vmclose succeeded");
    CHECK(vmclose(vm) == 0, "vmclose");
    CHECK(vmregion(w.blocks[1]) == NULL, "vmregion finds a block of a closed region");
    vmfree(Vmheap, hb);
}

/* ---- tracing --------------------------------------------------------------- */

/* Read everything from fd into buf (NUL-terminated). */
static size_t slurp(int fd, char* buf, size_t cap)
{
    size_t n = 0;
    ssize_t r;
    while (n + 1 < cap && (r = read(fd, buf + n, cap - 1 - n)) > 0)
        n += (size_t)r;
    buf[n] = 0;
    return n;
}

static void expect_line(char** cur, const void* old, const void* new, size_t size,
                        const Vmalloc_t* vm, const char* meth)
{
    char want[256];
    snprintf(want, sizeof want, "0x%" PRIxPTR ":0x%" PRIxPTR ":%zu:0x%" PRIxPTR ":%s:",
             (uintptr_t)old, (uintptr_t)new, size, (uintptr_t)vm, meth);
    char* nl = strchr(*cur, '\n');
    CHECK(nl, "trace ended; expected '%s'", want);
    *nl = 0;
    CHECK(strcmp(*cur, want) == 0, "trace line '%s', expected '%s'", *cur, want);
    *cur = nl + 1;
}

/* A region record: 0x0:0x0:0:REGION:METHOD:what: */
static void expect_region(char** cur, const Vmalloc_t* vm, const char* meth, const char* what)
{
    char want[256];
    snprintf(want, sizeof want, "0x0:0x0:0:0x%" PRIxPTR ":%s:%s:", (uintptr_t)vm, meth, what);
    char* nl = strchr(*cur, '\n');
    CHECK(nl, "trace ended; expected '%s'", want);
    *nl = 0;
    CHECK(strcmp(*cur, want) == 0, "trace line '%s', expected '%s'", *cur, want);
    *cur = nl + 1;
}

/* Lines are buffered: vmtrace(-1) writes them to the old descriptor. */
static void test_trace(void)
{
    int fds[2];
    CHECK(pipe2(fds, O_NONBLOCK) == 0, "pipe");
    CHECK(vmtrace(fds[1]) == -1, "the default trace descriptor is not -1");

    Vmalloc_t* vm = vmopen(Vmdcsystem, Vmbest, VM_TRACE);
    Vmalloc_t* quiet = vmopen(Vmdcsystem, Vmbest, 0);
    Vmalloc_t* pool = vmopen(Vmdcsystem, Vmpool, VM_TRACE);
    Vmalloc_t* last = vmopen(Vmdcsystem, Vmlast, VM_TRACE);
    CHECK(vm && quiet && pool && last, "vmopen");

    vmfree(quiet, vmalloc(quiet, 10)); /* not traced */
    char* a = vmalloc(vm, 10);
    char* b = vmresize(vm, a, 5000, VM_RSCOPY);
    size_t bsz = (size_t)vmsize(vm, b);
    int local;
    vmfree(vm, &local);               /* refused: not traced */
    vmfree(vm, b);
    char* c = vmalloc(vm, 0);
    vmset(vm, VM_TRACE, 0);
    vmfree(vm, c); /* tracing is off again */
    void* pp = vmalloc(pool, 24);
    size_t ppsz = (size_t)vmsize(pool, pp);
    vmfree(pool, pp);
    void* lp = vmalloc(last, 33);
    void* quietp = vmalloc(quiet, 5);
    size_t qsz = (size_t)vmsize(quiet, quietp);
    vmset(quiet, VM_TRACE, 1);
    vmfree(quiet, quietp);

    CHECK(vmtrace(-1) == fds[1], "vmtrace did not return the old descriptor");
    vmfree(last, lp); /* no descriptor: not traced */
    close(fds[1]);
    char buf[4096];
    slurp(fds[0], buf, sizeof buf);
    close(fds[0]);

    char* cur = buf;
    expect_region(&cur, vm, "best", "open");
    expect_region(&cur, pool, "pool", "open");
    expect_region(&cur, last, "last", "open");
    expect_line(&cur, NULL, a, 10, vm, "best");
    expect_line(&cur, a, b, 5000, vm, "best");
    expect_line(&cur, b, NULL, bsz, vm, "best");
    expect_line(&cur, NULL, c, 0, vm, "best");
    expect_line(&cur, NULL, pp, 24, pool, "pool");
    expect_line(&cur, pp, NULL, ppsz, pool, "pool");
    expect_line(&cur, NULL, lp, 33, last, "last");
    expect_line(&cur, quietp, NULL, qsz, quiet, "best"); /* traced once vmset turned it on */
    CHECK(*cur == 0, "unexpected trace lines: '%s'", cur);

    CHECK(vmclose(vm) == 0 && vmclose(quiet) == 0 && vmclose(pool) == 0 && vmclose(last) == 0,
          "vmclose");
}

/* ---- vmview ---------------------------------------------------------------- */

/* The arena picture: an SVG document with one bar per busy block (a block
 * crossing a row boundary gives one more), written without allocating. */
static void test_view(void)
{
    Vmalloc_t* vm = vmopen(Vmdcsystem, Vmbest, 0);
    CHECK(vm, "vmopen");
    for (int i = 0; i < 10; ++i)
        CHECK(vmalloc(vm, 100), "vmalloc");
    int fds[2];
    CHECK(pipe(fds) == 0, "pipe");
    CHECK(vmview(vm, fds[1], 0) == 0, "vmview failed");
    close(fds[1]);
    static char buf[1 << 16];
    slurp(fds[0], buf, sizeof buf);
    close(fds[0]);
    CHECK(strncmp(buf, "<svg", 4) == 0, "vmview output does not start with <svg: %.40s", buf);
    CHECK(strstr(buf, "</svg>") != NULL, "vmview output is not closed");
    int bars = 0;
    for (char* p = buf; (p = strstr(p, "<rect x=")) != NULL; ++p)
        bars++;
    CHECK(bars >= 10, "vmview drew %d bars for 10 busy blocks", bars);
    errno = 0;
    CHECK(vmview(vm, -1, 0) == -1 && errno == EBADF, "vmview(fd -1) did not fail with EBADF");
    int null = open("/dev/null", O_WRONLY);
    CHECK(null >= 0 && vmview(NULL, null, 4096) == 0, "vmview(NULL): every region");
    close(null);
    CHECK(vmclose(vm) == 0, "vmclose");
}

/* ---- Vmpool and Vmlast ----------------------------------------------------- */

static void test_pool(void)
{
    Vmalloc_t* vm = vmopen(Vmdcsystem, Vmpool, 0);
    CHECK(vm, "vmopen pool");
    /* A failed first call does not fix the size. */
    errno = 0;
    CHECK(vmalloc(vm, SIZE_MAX) == NULL && errno == ENOMEM, "pool: vmalloc(SIZE_MAX)");
    CHECK(vmalloc(vm, (size_t)1 << 62) == NULL, "pool: vmalloc(2^62)");
    void* p[100];
    for (int i = 0; i < 100; ++i) {
        p[i] = vmalloc(vm, 40);
        CHECK(p[i] && is_aligned(p[i], natural(40)) && vmsize(vm, p[i]) == 40,
              "pool: vmalloc(40) #%d", i);
        fill(p[i], 40, (unsigned)i);
    }
    static const size_t other[] = {0, 1, 8, 32, 41, 48, 4096};
    for (size_t i = 0; i < sizeof other / sizeof other[0]; ++i) {
        errno = 0;
        void* q = vmalloc(vm, other[i]);
        CHECK(q == NULL && errno != 0, "pool: vmalloc(%zu) in a pool of 40 gave %p", other[i], q);
    }
    /* Sizes are rounded up to multiples of 8: 33..40 are the pool's size. */
    void* same = vmalloc(vm, 33);
    CHECK(same && vmsize(vm, same) == 40 && vmfree(vm, same) == 0, "pool: vmalloc(33) in a pool of 40");
    CHECK(vmresize(vm, p[0], 80, VM_RSCOPY) == NULL, "pool: resized to another size");
    CHECK(vmresize(vm, p[0], 40, 0) == p[0], "pool: resizing to its own size failed");
    for (int i = 0; i < 100; i += 2)
        CHECK(vmfree(vm, p[i]) == 0, "pool: vmfree");
    for (int i = 0; i < 100; i += 2)
        CHECK(vmfree(vm, p[i]) == -1, "pool: double free accepted");
    for (int i = 1; i < 100; i += 2)
        CHECK(intact(p[i], 40, (unsigned)i), "pool: block %d damaged", i);
    Vmstat_t st = stat_of(vm);
    CHECK(st.n_busy == 50, "pool: n_busy %zu", st.n_busy);
    CHECK(vmdbcheck(vm) == 0, "pool: damaged");
    /* After vmclear a new size may be chosen. */
    CHECK(vmclear(vm) == 0, "pool: vmclear");
    void* q = vmalloc(vm, 200);
    CHECK(q && vmsize(vm, q) >= 200, "pool: new size after vmclear");
    CHECK(vmalloc(vm, 40) == NULL, "pool: old size still accepted after vmclear");
    CHECK(vmdbcheck(vm) == 0, "pool: damaged after clear");
    CHECK(vmclose(vm) == 0, "pool: vmclose");

    /* A pool whose first request is 0 bytes still hands out distinct blocks. */
    vm = vmopen(Vmdcsystem, Vmpool, 0);
    void* z1 = vmalloc(vm, 0);
    void* z2 = vmalloc(vm, 0);
    CHECK(z1 && z2 && z1 != z2, "pool: vmalloc(0) blocks are not distinct");
    CHECK(vmfree(vm, z1) == 0 && vmfree(vm, z2) == 0, "pool: vmfree of 0-byte blocks");
    CHECK(vmclose(vm) == 0, "pool: vmclose");
}

static void test_last(void)
{
    Rec_t rec;
    rec_init(&rec);
    Vmalloc_t* vm = vmopen(&rec.disc, Vmlast, 0);
    CHECK(vm, "vmopen last");
    char* p[10];
    for (int i = 0; i < 10; ++i) {
        p[i] = vmalloc(vm, 100 + (size_t)i);
        CHECK(p[i] && is_aligned(p[i], natural(100 + (size_t)i)), "last: vmalloc");
        fill(p[i], 100 + (size_t)i, (unsigned)i);
    }
    /* Only the last block can be freed: the others are refused without a
     * VM_BADADDR, since they are good blocks. */
    for (int i = 0; i < 9; ++i) {
        int from = rec.n;
        errno = 0;
        CHECK(vmfree(vm, p[i]) == -1 && errno == EINVAL, "last: freed block %d, not the last", i);
        CHECK(rec_count(&rec, from, VM_BADADDR) == 0, "last: a refusal was announced as VM_BADADDR");
    }
    CHECK(vmresize(vm, p[3], 500, VM_RSCOPY) == NULL, "last: resized a block that is not last");
    for (int i = 0; i < 10; ++i)
        CHECK(intact(p[i], 100 + (size_t)i, (unsigned)i), "last: block %d damaged", i);
    /* The last block can grow and shrink, and is freed. */
    char* r = vmresize(vm, p[9], 5000, VM_RSCOPY);
    CHECK(r && intact(r, 109, 9) && vmsize(vm, r) >= 5000, "last: resize of the last block");
    p[9] = r;
    CHECK(intact(p[8], 108, 8), "last: resize of the last block damaged its predecessor");
    Vmstat_t st = stat_of(vm);
    CHECK(vmfree(vm, p[9]) == 0, "last: vmfree of the last block");
    CHECK(stat_of(vm).n_busy == st.n_busy - 1, "last: n_busy after vmfree");
    CHECK(vmfree(vm, p[9]) == -1, "last: the last block freed twice");
    CHECK(vmdbcheck(vm) == 0, "last: damaged");

    /* vmclear recycles: repeating the same work does not grow the arena. */
    size_t extent = 0, nseg = 0;
    for (int round = 0; round < 10; ++round) {
        CHECK(vmclear(vm) == 0, "last: vmclear");
        CHECK(stat_of(vm).n_busy == 0, "last: vmclear left blocks");
        for (int i = 0; i < 2000; ++i) {
            char* q = vmalloc(vm, 200);
            CHECK(q, "last: vmalloc");
            memset(q, round, 200);
        }
        st = stat_of(vm);
        CHECK(st.n_busy == 2000, "last: n_busy %zu", st.n_busy);
        if (round == 1) {
            extent = st.extent;
            nseg = st.n_seg;
        }
        if (round > 1)
            CHECK(st.extent == extent && st.n_seg == nseg,
                  "last: the arena grows under vmclear: %zu -> %zu bytes", extent, st.extent);
    }
    CHECK(vmdbcheck(vm) == 0, "last: damaged");
    CHECK(vmclose(vm) == 0, "last: vmclose");
    CHECK(rec.segs == 0, "last: %ld segments not given back", rec.segs);
}

/* ---- every method: a healthy region checks clean ------------------------- */

static void test_dbcheck_all(void)
{
    Vmethod_t* meths[] = {Vmbest, Vmpool, Vmlast};
    const char* names[] = {"best", "pool", "last"};
    Vmdisc_t* discs[] = {Vmdcsystem, Vmdcheap, Vmdcsbrk};
    for (int m = 0; m < 3; ++m) {
        for (int d = 0; d < 3; ++d) {
            Vmalloc_t* vm = vmopen(discs[d], meths[m], 0);
            CHECK(vm, "%s: vmopen over discipline %d", names[m], d);
            CHECK(vmdbcheck(vm) == 0, "%s: a new region checks bad", names[m]);
            void* p[300];
            for (int i = 0; i < 300; ++i) {
                p[i] = vmalloc(vm, m == 1 ? 56 : (size_t)(i * 37 % 3000));
                CHECK(p[i], "%s: vmalloc", names[m]);
            }
            if (m != 2)
                for (int i = 0; i < 300; i += 3)
                    CHECK(vmfree(vm, p[i]) == 0, "%s: vmfree", names[m]);
            else
                CHECK(vmfree(vm, p[299]) == 0, "%s: vmfree", names[m]);
            CHECK(vmdbcheck(vm) == 0, "%s: vmdbcheck of a healthy region over disc %d", names[m],
                  d);
            CHECK(vmcompact(vm) == 0 && vmdbcheck(vm) == 0, "%s: vmcompact", names[m]);
            CHECK(vmclear(vm) == 0 && vmdbcheck(vm) == 0, "%s: vmclear", names[m]);
            CHECK(vmclose(vm) == 0, "%s: vmclose", names[m]);
        }
    }
    CHECK(vmdbcheck(Vmheap) == 0, "Vmheap checks bad");
}

/* ---- large blocks ----------------------------------------------------------- */

static void test_large(void)
{
    const size_t G = (size_t)1 << 30, page = 4096;
    Vmalloc_t* vm = vmopen(Vmdcsystem, Vmbest, 0);
    CHECK(vm, "vmopen");
    Vmalloc_t* regions[] = {vm, Vmheap};
    for (int k = 0; k < 2; ++k) {
        Vmalloc_t* r = regions[k];
        /* A heap this big starts the malloc heap's upkeep thread, whose
         * pthread_create allocates there: start it before counting. */
        vmfree(r, vmalloc(r, (size_t)64 << 20));
        Vmstat_t st0 = stat_of(r);
        char* p = vmalloc(r, G);
        CHECK(p, "vmalloc(1 GiB) failed");
        CHECK(vmsize(r, p) >= (long)G && vmregion(p) == r, "1 GiB block");
        p[0] = 1; /* touch only a few pages */
        p[G / 2] = 2;
        p[G - 1] = 3;
        CHECK(vmaddr(r, p + G - 1) == (long)(G - 1), "vmaddr in a 1 GiB block");
        Vmstat_t st1 = stat_of(r);
        CHECK(st1.s_busy >= st0.s_busy + G && st1.extent >= st0.extent + G, "1 GiB not counted");
        char* q = vmresize(r, p, G + 64 * page, VM_RSCOPY);
        CHECK(q && q[0] == 1 && q[G / 2] == 2 && q[G - 1] == 3, "growing 1 GiB lost content");
        q[G + 64 * page - 1] = 4;
        p = vmresize(r, q, 16 * page, 0);
        CHECK(p == q && p[0] == 1, "shrinking a huge block in place failed");
        CHECK(vmfree(r, p) == 0, "vmfree of a huge block");
        Vmstat_t st2 = stat_of(r);
        CHECK(st2.s_busy == st0.s_busy && st2.extent < st1.extent,
              "a freed huge block is still held: extent %zu -> %zu", st1.extent, st2.extent);
        CHECK(vmdbcheck(r) == 0, "region damaged by huge blocks");
    }
    /* Several huge blocks alive at once, and an aligned one. */
    char* h[4];
    for (int i = 0; i < 4; ++i) {
        h[i] = vmalloc(vm, (size_t)(i + 1) * (G / 4));
        CHECK(h[i], "vmalloc of %d/4 GiB", i + 1);
        h[i][0] = (char)i;
    }
    char* al = vmalign(vm, G / 2, (size_t)1 << 21);
    CHECK(al && is_aligned(al, (size_t)1 << 21), "vmalign(512 MiB, 2 MiB)");
    for (int i = 0; i < 4; ++i)
        CHECK(h[i][0] == (char)i && vmfree(vm, h[i]) == 0, "huge block %d", i);
    CHECK(vmfree(vm, al) == 0, "vmfree of a huge aligned block");
    CHECK(vmdbcheck(vm) == 0, "region damaged");
    CHECK(vmclose(vm) == 0, "vmclose");
}

int main(void)
{
    test_null_region();
    test_trace(); /* first: it checks vmtrace's default */

    Vmalloc_t* vm = vmopen(Vmdcsystem, Vmbest, 0);
    test_sizes(vm, "best", 0);
    test_zero_and_align(vm, "best", 0);
    vmclose(vm);
    test_sizes(Vmheap, "Vmheap", 0);
    test_zero_and_align(Vmheap, "Vmheap", 0);
    vm = vmopen(Vmdcsystem, Vmlast, 0);
    test_sizes(vm, "last", 0);
    test_zero_and_align(vm, "last", 1);
    vmclose(vm);
    vm = vmopen(Vmdcsystem, Vmpool, 0);
    test_sizes(vm, "pool", 1);
    vmclose(vm);

    test_resize();
    test_bad_addresses(Vmbest, "best", 0);
    test_bad_addresses(Vmpool, "pool", 0);
    test_bad_addresses(Vmlast, "last", 1);
    test_size_addr();
    test_stat();
    test_set();
    test_disc_change();
    test_strdup_newof();
    test_region_segment_walk();
    test_pool();
    test_last();
    test_dbcheck_all();
    test_large();
    test_view();
    return T_DONE();
}
