/*
 * test_malloc.c — the malloc-compatible interface of libvmalloc.so, linked
 * directly (the program's own malloc is vmalloc's; the first check says so).
 *
 *   - every call of the family goes to Vmregion (Vmheap unless set), and
 *     libc's internal allocations (strdup) come from it too;
 *   - standards: 16-byte alignment of every result, malloc(0) unique and
 *     freeable, calloc/reallocarray overflow (NULL, ENOMEM), calloc zeroes
 *     reused memory, posix_memalign (EINVAL returned for bad alignments, up
 *     to 1 MiB and beyond), aligned_alloc (EINVAL for a non-power of two),
 *     memalign rounding a non-power of two up, valloc/pvalloc, realloc(p, 0)
 *     frees p and returns NULL, realloc(NULL, n) is malloc(n), a refused
 *     realloc leaves the block intact, malloc_usable_size;
 *   - free() keeps errno, and ignores what no region owns (a stack or static
 *     address), interior and already-freed pointers, leaving Vmheap intact;
 *   - blocks of a region the program opened go back to that region through
 *     free() and realloc(); realloc of a foreign pointer is NULL with EINVAL;
 *   - free() of a good block of another region than Vmregion raises no
 *     VM_BADADDR event on anyone's discipline;
 *   - Vmregion redirects the whole family (paper §4);
 *   - mallinfo2, malloc_trim, mallopt and malloc_stats give sane answers.
 *
 * Built with -fno-builtin so that the compiler cannot fold malloc/free pairs
 * away: every call below reaches the library. Registered only when the
 * library is built with VMALLOC_MALLOC=ON.
 */
#define _GNU_SOURCE
#include "t.h"
#include "vmalloc.h"

#include <errno.h>
#include <malloc.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* The compiler must not see through these: freeing a stack address on
 * purpose would otherwise be a warning (and, with -Werror, an error). */
static void* volatile launder_slot;
static void* launder(void* p)
{
    launder_slot = p;
    return launder_slot;
}
static size_t volatile size_slot;
static size_t opaque(size_t n)
{
    size_slot = n;
    return size_slot;
}

static int aligned(const void* p, size_t a) { return ((uintptr_t)p & (a - 1)) == 0; }

static Vmstat_t stat_of(Vmalloc_t* vm)
{
    Vmstat_t st;
    CHECK(vmstat(vm, &st) == 0, "vmstat failed");
    return st;
}


/* ---- the program's malloc is vmalloc's -------------------------------------- */

static void test_ours(void)
{
    CHECK(Vmregion == Vmheap, "Vmregion %p is not Vmheap %p at start", (void*)Vmregion,
          (void*)Vmheap);
    Vmstat_t before = stat_of(Vmheap);
    void* p = malloc(10);
    CHECK(p, "malloc(10) failed");
    CHECK(vmregion(p) == Vmheap, "malloc(10) = %p is not a Vmheap block (region %p): the "
          "program's malloc is not vmalloc's", p, (void*)vmregion(p));
    EXPECT(vmsize(Vmheap, p) >= 10, "vmsize(Vmheap, malloc(10)) = %ld", vmsize(Vmheap, p));
    Vmstat_t mid = stat_of(Vmheap);
    EXPECT(mid.n_busy == before.n_busy + 1, "n_busy %zu -> %zu after one malloc", before.n_busy,
           mid.n_busy);
    free(p);
    Vmstat_t after = stat_of(Vmheap);
    EXPECT(after.n_busy == before.n_busy, "n_busy %zu -> %zu after malloc+free", before.n_busy,
           after.n_busy);

    /* libc's own allocations are interposed too. */
    char* s = strdup("interposed");
    CHECK(s, "strdup failed");
    EXPECT(vmregion(s) == Vmheap, "strdup's block %p is not in Vmheap", (void*)s);
    free(s);

    void* q = calloc(3, 7);
    void* r = realloc(NULL, 33);
    void* a = aligned_alloc(64, 128);
    void* m = memalign(32, 40);
    void* v = valloc(100);
    void* pm = NULL;
    EXPECT(posix_memalign(&pm, 256, 300) == 0, "posix_memalign(256, 300) failed");
    void* all[] = {q, r, a, m, v, pm};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; ++i) {
        EXPECT(all[i] && vmregion(all[i]) == Vmheap, "call %zu: %p is not a Vmheap block", i,
               all[i]);
        free(all[i]);
    }
    EXPECT(vmdbcheck(Vmheap) == 0, "Vmheap is damaged");
}

/* ---- alignment, malloc(0), usable size --------------------------------------- */

static void test_alignment(void)
{
    enum { N = 600 };
    static void* blk[N];
    size_t sizes[N];
    uint64_t s = 88172645463325252ull;
    for (int i = 0; i < N; ++i) {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        size_t n = i < 300 ? (size_t)i : (size_t)(s % (i < 590 ? 5000 : 3u << 20));
        sizes[i] = n;
        blk[i] = malloc(n);
        CHECK(blk[i], "malloc(%zu) failed", n);
        EXPECT(aligned(blk[i], 16), "malloc(%zu) = %p is not 16-aligned (max_align_t)", n, blk[i]);
        EXPECT(_Alignof(max_align_t) <= 16 && aligned(blk[i], _Alignof(max_align_t)),
               "malloc(%zu) = %p is not aligned for max_align_t", n, blk[i]);
        EXPECT(malloc_usable_size(blk[i]) >= n, "malloc_usable_size(malloc(%zu)) = %zu", n,
               malloc_usable_size(blk[i]));
        fill(blk[i], n, (unsigned)i);
    }
    for (int i = 0; i < N; ++i) {
        EXPECT(intact(blk[i], sizes[i], (unsigned)i), "block %d of %zu bytes was overwritten", i,
               sizes[i]);
        free(blk[i]);
    }
    EXPECT(malloc_usable_size(NULL) == 0, "malloc_usable_size(NULL) = %zu",
           malloc_usable_size(NULL));

    /* malloc(0): a unique pointer each time, freeable. */
    void* z[8];
    for (int i = 0; i < 8; ++i) {
        z[i] = malloc(opaque(0));
        CHECK(z[i], "malloc(0) returned NULL");
        EXPECT(aligned(z[i], 16), "malloc(0) = %p is not 16-aligned", z[i]);
        for (int j = 0; j < i; ++j)
            EXPECT(z[i] != z[j], "malloc(0) returned %p twice", z[i]);
    }
    for (int i = 0; i < 8; ++i)
        free(z[i]);
    void* c0 = calloc(0, 0);
    EXPECT(c0 != NULL, "calloc(0, 0) returned NULL");
    free(c0);

    /* malloc of an impossible size */
    errno = 0;
    EXPECT(malloc(opaque(SIZE_MAX)) == NULL && errno == ENOMEM, "malloc(SIZE_MAX): errno %d",
           errno);
    errno = 0;
    EXPECT(malloc(opaque((size_t)PTRDIFF_MAX + 1)) == NULL && errno == ENOMEM,
           "malloc(PTRDIFF_MAX + 1): errno %d", errno);
    EXPECT(vmdbcheck(Vmheap) == 0, "Vmheap is damaged");
}

/* ---- calloc and reallocarray -------------------------------------------------- */

static void test_calloc(void)
{
    /* Dirty memory freed and taken again must come back zeroed. */
    for (size_t n = 1; n <= (size_t)3 << 20; n = n * 3 + 5) {
        unsigned char* d = malloc(n);
        CHECK(d, "malloc(%zu) failed", n);
        memset(d, 0xa5, n);
        free(d);
        unsigned char* c = calloc(1, n);
        CHECK(c, "calloc(1, %zu) failed", n);
        EXPECT(all_zero(c, n), "calloc(1, %zu) is not zeroed", n);
        memset(c, 0x5a, n);
        free(c);
        c = calloc(n, 1);
        CHECK(c, "calloc(%zu, 1) failed", n);
        EXPECT(all_zero(c, n), "calloc(%zu, 1) after a dirty block is not zeroed", n);
        free(c);
    }

    struct {
        size_t n, m;
    } over[] = {
        {SIZE_MAX, 2},
        {2, SIZE_MAX},
        {SIZE_MAX / 2 + 1, 2},
        {(size_t)1 << 32, (size_t)1 << 32},
        {SIZE_MAX, SIZE_MAX},
        {(size_t)1 << 40, (size_t)1 << 30},
    };
    for (size_t i = 0; i < sizeof over / sizeof over[0]; ++i) {
        errno = 0;
        void* p = calloc(opaque(over[i].n), opaque(over[i].m));
        EXPECT(p == NULL && errno == ENOMEM, "calloc(%zu, %zu) = %p, errno %d (want NULL, ENOMEM)",
               over[i].n, over[i].m, p, errno);
    }

    /* reallocarray: the product is checked; a refusal leaves the block. */
    int* a = reallocarray(NULL, 10, sizeof(int));
    CHECK(a, "reallocarray(NULL, 10, 4) failed");
    EXPECT(vmregion(a) == Vmheap, "reallocarray's block is not in Vmheap");
    for (int i = 0; i < 10; ++i)
        a[i] = i * i;
    for (size_t i = 0; i < sizeof over / sizeof over[0]; ++i) {
        errno = 0;
        void* p = reallocarray(launder(a), opaque(over[i].n), opaque(over[i].m));
        EXPECT(p == NULL && errno == ENOMEM, "reallocarray(a, %zu, %zu) = %p, errno %d", over[i].n,
               over[i].m, p, errno);
    }
    int* b = reallocarray(launder(a), 1000, sizeof(int));
    CHECK(b, "reallocarray(a, 1000, 4) failed");
    for (int i = 0; i < 10; ++i)
        EXPECT(b[i] == i * i, "reallocarray lost element %d", i);
    free(b);
    EXPECT(vmdbcheck(Vmheap) == 0, "Vmheap is damaged");
}

/* ---- aligned allocation ---------------------------------------------------------- */

static void test_aligned(void)
{
    long page = sysconf(_SC_PAGESIZE);
    size_t bad[] = {0, 1, 2, 4, 12, 24, 48, 100, 4095, 4097, (size_t)3 << 20, SIZE_MAX};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; ++i) {
        void* p = (void*)&bad; /* must not be touched on failure with a good pointer either */
        errno = 1234;
        int r = posix_memalign(&p, opaque(bad[i]), 16);
        EXPECT(r == EINVAL, "posix_memalign(align %zu) returned %d, want EINVAL", bad[i], r);
        EXPECT(errno == 1234, "posix_memalign(align %zu) changed errno to %d", bad[i], errno);
    }
    for (size_t al = sizeof(void*); al <= ((size_t)4 << 20); al <<= 1) {
        size_t sizes[] = {1, 100, al, 3 * al + 1};
        for (int k = 0; k < 4; ++k) {
            void* p = NULL;
            int r = posix_memalign(&p, al, sizes[k]);
            EXPECT(r == 0 && p, "posix_memalign(%zu, %zu) returned %d", al, sizes[k], r);
            if (!p)
                continue;
            EXPECT(aligned(p, al), "posix_memalign(%zu, %zu) = %p is misaligned", al, sizes[k], p);
            EXPECT(malloc_usable_size(p) >= sizes[k], "usable size %zu < %zu",
                   malloc_usable_size(p), sizes[k]);
            memset(p, 0x33, sizes[k]);
            free(p);
        }
    }
    {
        void* p = NULL;
        errno = 0;
        int r = posix_memalign(&p, 64, opaque(SIZE_MAX - 4096));
        EXPECT(r == ENOMEM, "posix_memalign(64, SIZE_MAX-4096) returned %d, want ENOMEM", r);
    }

    /* aligned_alloc: a power of two, else NULL with EINVAL */
    size_t abad[] = {3, 24, 100, 4095};
    for (size_t i = 0; i < sizeof abad / sizeof abad[0]; ++i) {
        errno = 0;
        void* p = aligned_alloc(opaque(abad[i]), 64);
        EXPECT(p == NULL && errno == EINVAL, "aligned_alloc(%zu, 64) = %p, errno %d", abad[i], p,
               errno);
        free(p);
    }
    for (size_t al = 1; al <= ((size_t)1 << 20); al <<= 1) {
        void* p = aligned_alloc(al, al * 2);
        EXPECT(p && aligned(p, al < 16 ? 16 : al), "aligned_alloc(%zu, %zu) = %p", al, al * 2, p);
        if (p)
            memset(p, 1, al * 2);
        free(p);
    }

    /* memalign: a non-power of two is rounded up to the next one */
    struct {
        size_t ask, want;
    } mr[] = {{24, 32}, {48, 64}, {100, 128}, {3000, 4096}, {65535, 65536}, {(size_t)1 << 20, (size_t)1 << 20}};
    for (size_t i = 0; i < sizeof mr / sizeof mr[0]; ++i) {
        void* p = memalign(opaque(mr[i].ask), 77);
        EXPECT(p && aligned(p, mr[i].want), "memalign(%zu, 77) = %p, want %zu-aligned", mr[i].ask,
               p, mr[i].want);
        free(p);
    }

    /* valloc and pvalloc: page-aligned; pvalloc rounds the size to pages */
    void* v = valloc(10);
    EXPECT(v && aligned(v, (size_t)page), "valloc(10) = %p", v);
    free(v);
    void* pv = pvalloc(10);
    EXPECT(pv && aligned(pv, (size_t)page), "pvalloc(10) = %p", pv);
    EXPECT(pv && malloc_usable_size(pv) >= (size_t)page, "pvalloc(10) has %zu usable bytes",
           pv ? malloc_usable_size(pv) : 0);
    if (pv)
        memset(pv, 2, (size_t)page);
    free(pv);
    EXPECT(vmdbcheck(Vmheap) == 0, "Vmheap is damaged");
}

/* ---- realloc -------------------------------------------------------------------------- */

static void test_realloc(void)
{
    /* realloc(NULL, n) == malloc(n) */
    Vmstat_t st0 = stat_of(Vmheap);
    char* p = realloc(NULL, 100);
    CHECK(p, "realloc(NULL, 100) failed");
    EXPECT(vmregion(p) == Vmheap && stat_of(Vmheap).n_busy == st0.n_busy + 1,
           "realloc(NULL, 100) did not allocate a Vmheap block");

    /* growing and shrinking keep the content, through sizes that move */
    fill(p, 100, 9);
    size_t have = 100;
    size_t steps[] = {200, 5000, 70000, (size_t)2 << 20, 3000, 50, 16, (size_t)5 << 20, 1};
    for (size_t i = 0; i < sizeof steps / sizeof steps[0]; ++i) {
        size_t n = steps[i];
        char* q = realloc(p, n);
        CHECK(q, "realloc(p, %zu) failed", n);
        size_t keep = have < n ? have : n;
        EXPECT(intact(q, keep, 9), "realloc %zu -> %zu lost the content", have, n);
        EXPECT(malloc_usable_size(q) >= n, "usable %zu < %zu", malloc_usable_size(q), n);
        fill(q, n, 9);
        p = q;
        have = n;
    }

    /* a realloc that cannot be served returns NULL (ENOMEM) and keeps p */
    errno = 0;
    void* q = realloc(p, opaque(SIZE_MAX - 64));
    EXPECT(q == NULL && errno == ENOMEM, "realloc(p, SIZE_MAX-64) = %p, errno %d", q, errno);
    EXPECT(intact(p, have, 9) && vmsize(Vmheap, p) >= 0, "the refused realloc damaged p");

    /* realloc(p, 0) frees p and returns NULL */
    Vmstat_t st1 = stat_of(Vmheap);
    q = realloc(p, opaque(0));
    EXPECT(q == NULL, "realloc(p, 0) = %p, want NULL (glibc)", q);
    Vmstat_t st2 = stat_of(Vmheap);
    EXPECT(st2.n_busy == st1.n_busy - 1, "realloc(p, 0) did not free p: n_busy %zu -> %zu",
           st1.n_busy, st2.n_busy);
    EXPECT(st2.n_busy == st0.n_busy, "n_busy %zu at start, %zu at the end", st0.n_busy,
           st2.n_busy);
    EXPECT(vmdbcheck(Vmheap) == 0, "Vmheap is damaged");
}

/* ---- errno and pointers nobody owns ------------------------------------------------------ */

static char static_buf[256];

static void test_errno_and_foreign(void)
{
    size_t sizes[] = {0, 24, 1000, 100000, (size_t)2 << 20};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; ++i) {
        void* p = malloc(sizes[i]);
        CHECK(p, "malloc(%zu) failed", sizes[i]);
        errno = 4242;
        free(p);
        EXPECT(errno == 4242, "free of a %zu-byte block changed errno to %d", sizes[i], errno);
    }
    errno = 4243;
    free(NULL);
    EXPECT(errno == 4243, "free(NULL) changed errno to %d", errno);

    char stack_buf[64];
    memset(stack_buf, 'x', sizeof stack_buf);
    memset(static_buf, 'y', sizeof static_buf);
    char* inner = malloc(200);
    CHECK(inner, "malloc(200) failed");
    memset(inner, 'z', 200);
    char* gone = malloc(300);
    CHECK(gone, "malloc(300) failed");
    free(gone);

    Vmstat_t before = stat_of(Vmheap);
    void* foreign[] = {stack_buf, stack_buf + 8, static_buf, static_buf + 16, inner + 16,
                       inner + 1, gone, (void*)(uintptr_t)0x1000, (void*)(uintptr_t)0x10,
                       (void*)(uintptr_t)0x7ff0deadbee0};
    for (size_t i = 0; i < sizeof foreign / sizeof foreign[0]; ++i) {
        errno = 4244;
        free(launder(foreign[i]));
        EXPECT(errno == 4244, "free(foreign %zu = %p) changed errno to %d", i, foreign[i], errno);
        EXPECT(vmdbcheck(Vmheap) == 0, "free(foreign %zu = %p) damaged Vmheap", i, foreign[i]);
    }
    Vmstat_t after = stat_of(Vmheap);
    EXPECT(after.n_busy == before.n_busy && after.s_busy == before.s_busy,
           "foreign frees changed Vmheap: n_busy %zu -> %zu", before.n_busy, after.n_busy);
    for (size_t i = 0; i < sizeof stack_buf; ++i)
        EXPECT(stack_buf[i] == 'x', "the stack buffer changed at %zu", i);
    for (size_t i = 0; i < sizeof static_buf; ++i)
        EXPECT(static_buf[i] == 'y', "the static buffer changed at %zu", i);
    for (size_t i = 0; i < 200; ++i)
        EXPECT(inner[i] == 'z', "the block whose interior was freed changed at %zu", i);
    EXPECT(vmsize(Vmheap, inner) >= 200, "the block whose interior was freed is gone");

    /* realloc of what nobody owns: NULL with EINVAL, nothing touched */
    void* rfor[] = {stack_buf, static_buf, inner + 16, gone};
    for (size_t i = 0; i < sizeof rfor / sizeof rfor[0]; ++i) {
        errno = 0;
        void* q = realloc(launder(rfor[i]), 50);
        EXPECT(q == NULL && errno == EINVAL, "realloc(foreign %zu = %p, 50) = %p, errno %d", i,
               rfor[i], q, errno);
        free(q);
    }
    EXPECT(stack_buf[0] == 'x' && static_buf[0] == 'y' && inner[0] == 'z',
           "a foreign realloc wrote somewhere");
    free(inner);
    EXPECT(vmdbcheck(Vmheap) == 0, "Vmheap is damaged");
}

/* ---- blocks of other regions -------------------------------------------------------- */

static void test_other_regions(void)
{
    struct {
        Vmdisc_t* disc;
        Vmethod_t* meth;
        const char* name;
    } kinds[] = {
        {Vmdcsystem, Vmbest, "Vmbest/Vmdcsystem"},
        {Vmdcheap, Vmbest, "Vmbest/Vmdcheap"},
        {Vmdcsystem, Vmpool, "Vmpool/Vmdcsystem"},
        {Vmdcheap, Vmlast, "Vmlast/Vmdcheap"},
    };
    for (size_t k = 0; k < sizeof kinds / sizeof kinds[0]; ++k) {
        Vmalloc_t* vm = vmopen(kinds[k].disc, kinds[k].meth, 0);
        CHECK(vm, "vmopen(%s) failed", kinds[k].name);
        Vmstat_t heap0 = stat_of(Vmheap);
        void* a = vmalloc(vm, 48);
        void* b = vmalloc(vm, 48);
        CHECK(a && b, "%s: vmalloc failed", kinds[k].name);
        EXPECT(vmregion(a) == vm && vmregion(b) == vm, "%s: vmregion does not find the region",
               kinds[k].name);
        EXPECT(malloc_usable_size(b) >= 48, "%s: malloc_usable_size(b) = %zu", kinds[k].name,
               malloc_usable_size(b));
        errno = 555;
        free(b); /* for Vmlast, b is the last block: it can go */
        EXPECT(errno == 555, "%s: free changed errno to %d", kinds[k].name, errno);
        EXPECT(stat_of(vm).n_busy == 1, "%s: free() of a region block left n_busy %zu",
               kinds[k].name, stat_of(vm).n_busy);
        EXPECT(stat_of(Vmheap).n_busy <= heap0.n_busy + 1,
               "%s: free() of a region block went elsewhere", kinds[k].name);
        if (kinds[k].meth == Vmbest) {
            char* c = realloc(a, 5000);
            EXPECT(c && vmregion(c) == vm, "%s: realloc of a region block = %p, region %p",
                   kinds[k].name, (void*)c, c ? (void*)vmregion(c) : NULL);
            if (c)
                a = c;
            void* d = realloc(NULL, 5000);
            EXPECT(d && vmregion(d) == Vmheap, "realloc(NULL, n) must go to Vmregion");
            free(d);
        }
        if (kinds[k].meth == Vmlast) {
            void* c = vmalloc(vm, 48);
            errno = 556;
            free(a); /* not the last block: Vmlast refuses, free() says nothing */
            EXPECT(errno == 556, "%s: a refused free changed errno to %d", kinds[k].name, errno);
            EXPECT(stat_of(vm).n_busy == 2, "%s: n_busy %zu", kinds[k].name, stat_of(vm).n_busy);
            free(c);
        }
        free(a);
        EXPECT(vmdbcheck(vm) == 0, "%s: region damaged", kinds[k].name);
        EXPECT(vmclose(vm) == 0, "%s: vmclose failed", kinds[k].name);
    }
    EXPECT(vmdbcheck(Vmheap) == 0, "Vmheap is damaged");
}

/* free() and realloc() of a good block must not look like a bad address to
 * anyone: a discipline's exceptf that counts (or aborts on) VM_BADADDR sees
 * no event when the block belongs to another region than Vmregion. */
static volatile int badaddr_events; /* written by the exceptf, behind the compiler's back */
static int count_badaddr(Vmalloc_t* vm, int type, void* obj, Vmdisc_t* disc)
{
    (void)vm;
    (void)obj;
    (void)disc;
    badaddr_events += type == VM_BADADDR;
    return 0;
}

static void test_no_false_alarm(void)
{
    Vmdisc_t disc = {Vmdcsystem->memoryf, count_badaddr, 0};
    Vmalloc_t* vm = vmopen(&disc, Vmbest, 0);
    CHECK(vm, "vmopen failed");
    void* h1 = malloc(100);
    void* h2 = malloc(100);
    void* v1 = vmalloc(vm, 100);
    void* v2 = vmalloc(vm, 100);
    CHECK(h1 && h2 && v1 && v2, "allocation failed");
    free(v1); /* Vmregion is Vmheap; v1 is vm's */
    EXPECT(badaddr_events == 0, "free() of a block of a region with an exceptf: %d VM_BADADDR "
           "events", badaddr_events);
    Vmregion = vm;
    badaddr_events = 0;
    free(h1); /* Vmregion is vm; h1 is Vmheap's */
    void* h3 = realloc(h2, 200);
    Vmregion = Vmheap;
    EXPECT(badaddr_events == 0, "free()/realloc() of a Vmheap block while Vmregion has an "
           "exceptf: %d VM_BADADDR events on Vmregion's discipline", badaddr_events);
    EXPECT(h3 && vmregion(h3) == Vmheap, "realloc of a Vmheap block left Vmheap");
    free(h3);
    free(v2);
    EXPECT(stat_of(vm).n_busy == 0, "the region kept %zu blocks", stat_of(vm).n_busy);
    char local[16];
    EXPECT(malloc_usable_size(launder(local)) == 0, "malloc_usable_size(stack) = %zu",
           malloc_usable_size(launder(local)));
    vmclose(vm);
}

/* Vmregion redirects the whole family (paper §4). Nothing in here may print:
 * stdio would allocate in the region too. */
static void test_vmregion(void)
{
    Vmalloc_t* vm = vmopen(Vmdcsystem, Vmbest, 0);
    CHECK(vm, "vmopen failed");
    Vmregion = vm;
    void* p = malloc(100);
    void* c = calloc(10, 10);
    void* r = realloc(NULL, 100);
    void* al = NULL;
    int ar = posix_memalign(&al, 128, 100);
    void* aa = aligned_alloc(256, 256);
    char* s = strdup("redirected");
    Vmregion = Vmheap;
    void* all[] = {p, c, r, al, aa, s};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; ++i)
        EXPECT(all[i] && vmregion(all[i]) == vm, "redirected call %zu: %p not in the region", i,
               all[i]);
    EXPECT(ar == 0, "posix_memalign returned %d", ar);
    EXPECT(stat_of(vm).n_busy == 6, "the region holds %zu blocks, want 6", stat_of(vm).n_busy);
    /* Vmregion is back to Vmheap; free() still finds the region by address. */
    for (size_t i = 0; i < sizeof all / sizeof all[0]; ++i)
        free(all[i]);
    EXPECT(stat_of(vm).n_busy == 0, "free() left %zu blocks in the region", stat_of(vm).n_busy);
    EXPECT(vmclose(vm) == 0, "vmclose failed");
}

/* ---- mallinfo2, malloc_trim, mallopt, malloc_stats ----------------------------------------- */

static void test_info(void)
{
    enum { NB = 96, BS = 60000 };
    static void* b[NB];
    for (int i = 0; i < NB; ++i) {
        b[i] = malloc(BS);
        CHECK(b[i], "malloc(%d) failed", BS);
        memset(b[i], 7, BS);
    }
    Vmstat_t st = stat_of(Vmheap);
    struct mallinfo2 mi = mallinfo2();
    EXPECT(mi.arena == st.extent, "mallinfo2().arena %zu, vmstat extent %zu", mi.arena, st.extent);
    EXPECT(mi.uordblks == st.s_busy, "uordblks %zu, s_busy %zu", mi.uordblks, st.s_busy);
    EXPECT(mi.fordblks == st.s_free, "fordblks %zu, s_free %zu", mi.fordblks, st.s_free);
    EXPECT(mi.ordblks == st.n_free, "ordblks %zu, n_free %zu", mi.ordblks, st.n_free);
    EXPECT(mi.hblkhd == 0, "hblkhd %zu", mi.hblkhd);
    EXPECT(mi.uordblks >= (size_t)NB * BS, "uordblks %zu with %d blocks of %d live", mi.uordblks,
           NB, BS);

    for (int i = 0; i < NB; ++i)
        free(b[i]);
    Vmstat_t freed = stat_of(Vmheap);
    int t = malloc_trim(0);
    Vmstat_t trimmed = stat_of(Vmheap);
    EXPECT(t == 0 || t == 1, "malloc_trim returned %d", t);
    EXPECT(t == (trimmed.extent < freed.extent),
           "malloc_trim returned %d while the extent went %zu -> %zu", t, freed.extent,
           trimmed.extent);
    EXPECT(t == 1, "malloc_trim gave nothing back after %d blocks of %d were freed (extent %zu)",
           NB, BS, trimmed.extent);
    EXPECT(vmdbcheck(Vmheap) == 0, "Vmheap is damaged by malloc_trim");
    void* again = malloc(BS);
    EXPECT(again != NULL, "malloc after malloc_trim failed");
    free(again);

    EXPECT(mallopt(M_MMAP_THRESHOLD, 65536) == 1, "mallopt(M_MMAP_THRESHOLD) did not return 1");
    EXPECT(mallopt(M_ARENA_MAX, 1) == 1, "mallopt(M_ARENA_MAX) did not return 1");
    EXPECT(mallopt(-12345, 0) == 1, "mallopt(unknown) did not return 1");

    /* malloc_stats writes to stderr: catch it in a file. */
    fflush(stderr);
    char path[] = "/tmp/vmalloc-stats-XXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0, "mkstemp failed");
    unlink(path);
    int saved = dup(2);
    CHECK(saved >= 0 && dup2(fd, 2) == 2, "dup2 failed");
    malloc_stats();
    fflush(stderr);
    CHECK(dup2(saved, 2) == 2, "restoring stderr failed");
    close(saved);
    char buf[4096];
    ssize_t n = pread(fd, buf, sizeof buf - 1, 0);
    close(fd);
    EXPECT(n > 0, "malloc_stats printed nothing on stderr");
    if (n > 0) {
        buf[n] = 0;
        EXPECT(strchr(buf, '\n') != NULL, "malloc_stats printed no whole line: '%s'", buf);
    }
}

int main(void)
{
    test_ours();
    test_alignment();
    test_calloc();
    test_aligned();
    test_realloc();
    test_errno_and_foreign();
    test_other_regions();
    test_no_false_alarm();
    test_vmregion();
    test_info();
    EXPECT(vmdbcheck(Vmheap) == 0, "Vmheap is damaged at the end");
    return T_DONE();
}
