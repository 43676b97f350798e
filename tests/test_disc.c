/*
 * test_disc.c — disciplines and events, with every method.
 *
 *   - a discipline of our own over a static buffer at an odd address with a
 *     round that is not a power of two (the paper's Figure 3 pattern: the
 *     discipline struct embeds Vmdisc_t first and memoryf casts back): sizes
 *     are multiples of round, the region and its blocks stay in the buffer,
 *     and running out is a clean ENOMEM;
 *   - the events VM_OPEN, VM_ENDOPEN, VM_CLOSE, VM_ENDCLOSE in order, and the
 *     refusals a negative answer makes;
 *   - VM_NOMEM: a positive answer retries; a handler may free blocks of the
 *     very region that ran out (the core calls handlers unlocked);
 *   - Vmdcsbrk and Vmdcheap regions, and memory going back to Vmheap;
 *   - fault injection: a discipline that fails its k-th request, for k = 1,
 *     2, ... until a scripted run sees no fault. Every step must succeed or
 *     fail cleanly, the region must stay intact and nothing may leak.
 */
#include "t.h"
#include "vmalloc.h"

#include <errno.h>
#include <stdint.h>
#include <string.h>

static Vmethod_t* meths[3];
static const char* mnames[3] = {"best", "pool", "last"};
enum { BEST, POOL, LAST };

static Vmstat_t stat_of(Vmalloc_t* vm)
{
    Vmstat_t st;
    CHECK(vmstat(vm, &st) == 0, "vmstat failed");
    return st;
}

/* ---- a discipline over a static buffer (paper Figure 3) ------------------- */

/* Segments are carved from the buffer as a stack: a released segment below
 * the top is only counted, since a buffer has no free list. */
typedef struct {
    Vmdisc_t disc; /* first, so (Buf_t*)disc is the whole struct */
    char* base;
    size_t cap;
    size_t used;   /* [base, base + used) is handed out */
    long segs;     /* segments out */
    long calls;
} Buf_t;

static void* buf_memory(Vmalloc_t* vm, void* addr, size_t csz, size_t nsz, Vmdisc_t* disc)
{
    Buf_t* b = (Buf_t*)disc;
    (void)vm;
    b->calls += 1;
    CHECK(csz % disc->round == 0 && nsz % disc->round == 0,
          "memoryf sizes %zu -> %zu are not multiples of round %zu", csz, nsz, disc->round);
    CHECK(csz || nsz, "memoryf called with both sizes 0");
    if (csz == 0) {
        if (nsz > b->cap - b->used)
            return NULL;
        char* p = b->base + b->used;
        b->used += nsz;
        b->segs += 1;
        return p;
    }
    char* a = addr;
    CHECK(a >= b->base && a + csz <= b->base + b->used, "memoryf got a segment %p not ours",
          addr);
    int top = a + csz == b->base + b->used;
    if (nsz == 0) {
        if (top)
            b->used -= csz;
        b->segs -= 1;
        return addr;
    }
    if (!top || nsz > b->cap - (size_t)(a - b->base))
        return NULL;
    b->used = (size_t)(a - b->base) + nsz;
    return addr;
}

static _Alignas(64) char arena[3 << 20];

static void buf_init(Buf_t* b, char* base, size_t cap, size_t round)
{
    memset(b, 0, sizeof *b);
    b->disc.memoryf = buf_memory;
    b->disc.round = round;
    b->base = base;
    b->cap = cap;
}

static int inside(const Buf_t* b, const void* p, size_t n)
{
    const char* c = p;
    return c >= b->base && c + n <= b->base + b->cap;
}

static void test_buffer(int m)
{
    Buf_t b;
    /* An odd address and a round that is no power of two. */
    buf_init(&b, arena + 3, sizeof arena - 3, 1000);
    Vmalloc_t* vm = vmopen(&b.disc, meths[m], 0);
    CHECK(vm, "%s: vmopen over a buffer", mnames[m]);
    CHECK(inside(&b, vm, 64), "%s: the region handle %p lies outside the buffer", mnames[m],
          (void*)vm);
    CHECK(vmregion(vm) == vm, "%s: vmregion of the handle", mnames[m]);

    enum { MAXB = 100000 };
    static char* blk[MAXB];
    static size_t bsz[MAXB];
    int n = 0;
    size_t s = 0;
    for (;;) {
        size_t want = m == POOL ? 72 : (size_t)(n * 7919 % 9000) + 1;
        errno = 0;
        char* p = vmalloc(vm, want);
        if (!p) {
            CHECK(errno == ENOMEM, "%s: exhaustion gave errno %d", mnames[m], errno);
            break;
        }
        CHECK(n < MAXB, "%s: more blocks than the buffer can hold", mnames[m]);
        CHECK(inside(&b, p, want), "%s: block %p lies outside the buffer", mnames[m], (void*)p);
        CHECK(vmregion(p) == vm, "%s: vmregion of a buffer block", mnames[m]);
        char* seg = vmsegment(vm, p);
        CHECK(seg && inside(&b, seg, 1) && seg <= p, "%s: vmsegment in a buffer", mnames[m]);
        fill(p, want, (unsigned)n);
        blk[n] = p;
        bsz[n] = want;
        s += want;
        n++;
    }
    CHECK(s > (sizeof arena) / 2, "%s: only %zu of %zu bytes used before exhaustion", mnames[m], s,
          sizeof arena);
    CHECK(vmdbcheck(vm) == 0, "%s: region damaged at exhaustion", mnames[m]);
    for (int i = 0; i < n; ++i)
        CHECK(intact(blk[i], bsz[i], (unsigned)i), "%s: block %d damaged", mnames[m], i);
    /* The buffer's own first bytes are no block. */
    CHECK(vmfree(vm, b.base) == -1 && vmfree(vm, b.base + 13) == -1,
          "%s: freed the start of the buffer", mnames[m]);

    /* After freeing, the same memory serves again. */
    if (m == LAST)
        CHECK(vmclear(vm) == 0, "last: vmclear");
    else
        for (int i = 0; i < n; i += 2)
            CHECK(vmfree(vm, blk[i]) == 0, "%s: vmfree", mnames[m]);
    for (int i = 0; i < n / 4; ++i) {
        char* p = vmalloc(vm, m == POOL ? 72 : 64);
        CHECK(p && inside(&b, p, 64), "%s: no reuse after free", mnames[m]);
    }
    CHECK(vmcompact(vm) == 0 && vmdbcheck(vm) == 0, "%s: vmcompact", mnames[m]);
    CHECK(vmclose(vm) == 0, "%s: vmclose", mnames[m]);
    CHECK(b.segs == 0, "%s: %ld segments not given back", mnames[m], b.segs);

    /* A buffer too small for even the region is a clean failure. */
    buf_init(&b, arena + 5, 200, 100);
    errno = 0;
    CHECK(vmopen(&b.disc, meths[m], 0) == NULL && errno == ENOMEM,
          "%s: vmopen in 200 bytes gave errno %d", mnames[m], errno);
    CHECK(b.segs == 0, "%s: a failed vmopen kept a segment", mnames[m]);
}

/* ---- events ------------------------------------------------------------------ */

typedef struct {
    Vmdisc_t disc;
    int n;
    int type[64];
    Vmalloc_t* vm[64];
    void* obj[64];
    int ret[8];      /* the answer to each event type */
    int refuse;      /* memoryf refuses every request for more memory */
    int nomem_left;  /* VM_NOMEM: answer 1 this many times; the last one also
                        ends the refusal, as if the handler had found memory */
    long segs;
    /* a VM_NOMEM handler that frees blocks of the region itself */
    Vmalloc_t* owner;
    char** victims;
    int nvictims;
    int freed;
    int per;         /* blocks the handler frees per event */
} Ev_t;

static void* ev_memory(Vmalloc_t* vm, void* addr, size_t csz, size_t nsz, Vmdisc_t* disc)
{
    Ev_t* e = (Ev_t*)disc;
    if (e->refuse && nsz > csz)
        return NULL;
    void* p = Vmdcsystem->memoryf(vm, addr, csz, nsz, Vmdcsystem);
    if (p && csz == 0)
        e->segs += 1;
    if (p && nsz == 0)
        e->segs -= 1;
    return p;
}

static int ev_except(Vmalloc_t* vm, int type, void* obj, Vmdisc_t* disc)
{
    Ev_t* e = (Ev_t*)disc;
    if (e->n < 64) {
        e->type[e->n] = type;
        e->vm[e->n] = vm;
        e->obj[e->n] = obj;
    }
    e->n += 1;
    if (type == VM_NOMEM && e->victims) {
        /* Free two blocks of the region that ran out: it must not be locked. */
        CHECK(vm == e->owner, "VM_NOMEM for region %p, not %p", (void*)vm, (void*)e->owner);
        int done = 0;
        while (e->freed < e->nvictims && done < e->per) {
            CHECK(vmfree(vm, e->victims[e->freed]) == 0, "the handler could not free a block");
            e->freed += 1;
            done += 1;
        }
        return done ? 1 : 0;
    }
    if (type == VM_NOMEM && e->nomem_left > 0) {
        if (--e->nomem_left == 0)
            e->refuse = 0;
        return 1;
    }
    return type >= 0 && type < 8 ? e->ret[type] : 0;
}

static void ev_init(Ev_t* e)
{
    memset(e, 0, sizeof *e);
    e->disc.memoryf = ev_memory;
    e->disc.exceptf = ev_except;
}

static void test_events(int m)
{
    const char* name = mnames[m];
    Ev_t e;
    ev_init(&e);

    /* A normal life: four events, in order. */
    Vmalloc_t* vm = vmopen(&e.disc, meths[m], 0);
    CHECK(vm, "%s: vmopen", name);
    CHECK(e.n == 2 && e.type[0] == VM_OPEN && e.vm[0] == NULL && e.type[1] == VM_ENDOPEN &&
              e.vm[1] == vm,
          "%s: opening announced %d events (%d vm %p, %d)", name, e.n, e.type[0], (void*)e.vm[0],
          e.type[1]);
    for (int i = 0; i < 100; ++i)
        CHECK(vmalloc(vm, 64), "%s: vmalloc", name);
    CHECK(vmclear(vm) == 0 && vmcompact(vm) == 0, "%s: vmclear, vmcompact", name);
    CHECK(e.n == 2, "%s: ordinary calls announced %d events", name, e.n - 2);
    CHECK(vmclose(vm) == 0, "%s: vmclose", name);
    CHECK(e.n == 4 && e.type[2] == VM_CLOSE && e.vm[2] == vm && e.type[3] == VM_ENDCLOSE &&
              e.vm[3] == vm,
          "%s: closing announced %d events (%d, %d)", name, e.n - 2, e.type[2], e.type[3]);
    CHECK(e.segs == 0, "%s: %ld segments left", name, e.segs);

    /* A negative VM_OPEN refuses the region before any memory is taken. */
    ev_init(&e);
    e.ret[VM_OPEN] = -1;
    CHECK(vmopen(&e.disc, meths[m], 0) == NULL, "%s: a refused VM_OPEN made a region", name);
    CHECK(e.n == 1 && e.type[0] == VM_OPEN && e.segs == 0,
          "%s: refused open: %d events, %ld segments", name, e.n, e.segs);

    /* A negative VM_CLOSE refuses vmclose; the region stays usable. */
    ev_init(&e);
    e.ret[VM_CLOSE] = -1;
    vm = vmopen(&e.disc, meths[m], 0);
    CHECK(vm, "%s: vmopen", name);
    char* p = vmalloc(vm, 64);
    CHECK(p, "%s: vmalloc", name);
    fill(p, 64, 1);
    CHECK(vmclose(vm) == -1, "%s: a refused VM_CLOSE closed the region", name);
    CHECK(e.type[e.n - 1] == VM_CLOSE, "%s: the refusal was followed by event %d", name,
          e.type[e.n - 1]);
    CHECK(intact(p, 64, 1) && vmsize(vm, p) >= 64 && vmdbcheck(vm) == 0,
          "%s: a refused vmclose changed the region", name);
    char* q = vmalloc(vm, 64);
    CHECK(q && vmfree(vm, q) == 0, "%s: region unusable after a refused vmclose", name);
    CHECK(vmregion(p) == vm, "%s: a refused vmclose unlisted the region", name);
    e.ret[VM_CLOSE] = 0;
    CHECK(vmclose(vm) == 0 && e.segs == 0, "%s: vmclose after the refusal", name);

    /* VM_NOMEM: a positive answer retries. The discipline refuses memory
     * until the handler has said "try again" three times. */
    ev_init(&e);
    e.refuse = 1;
    e.nomem_left = 3;
    vm = vmopen(&e.disc, meths[m], 0);
    CHECK(vm, "%s: vmopen with VM_NOMEM retries", name);
    CHECK(vmregion(vm) == vm, "%s: vmregion", name);
    int nomem = 0;
    for (int i = 0; i < e.n && i < 64; ++i)
        nomem += e.type[i] == VM_NOMEM;
    CHECK(nomem == 3 && e.refuse == 0, "%s: %d VM_NOMEM events for 3 retries", name, nomem);
    e.refuse = 1;
    e.nomem_left = 2;
    int from = e.n;
    p = vmalloc(vm, 1 << 20); /* needs a new segment whatever the method */
    CHECK(p, "%s: vmalloc after VM_NOMEM retries", name);
    nomem = 0;
    for (int i = from; i < e.n && i < 64; ++i) {
        nomem += e.type[i] == VM_NOMEM;
        CHECK(e.type[i] != VM_NOMEM || (e.vm[i] == vm && (size_t)e.obj[i] >= (1u << 20)),
              "%s: VM_NOMEM with vm %p obj %zu", name, (void*)e.vm[i], (size_t)e.obj[i]);
    }
    CHECK(nomem == 2, "%s: %d VM_NOMEM events for 2 retries", name, nomem);
    /* Without a retry the call fails with ENOMEM after one event. */
    e.refuse = 1;
    e.nomem_left = 0;
    from = e.n;
    errno = 0;
    if (m == POOL)
        CHECK(vmclear(vm) == 0, "pool: vmclear"); /* to choose a new size */
    q = vmalloc(vm, 3 << 20);
    CHECK(q == NULL && errno == ENOMEM, "%s: refused memory gave %p errno %d", name, (void*)q,
          errno);
    CHECK(e.n == from + 1 && e.type[from] == VM_NOMEM, "%s: %d events for one failure", name,
          e.n - from);
    CHECK(vmdbcheck(vm) == 0, "%s: region damaged by VM_NOMEM", name);
    e.refuse = 0;
    CHECK(vmclose(vm) == 0 && e.segs == 0, "%s: vmclose after VM_NOMEM", name);
}

/* A VM_NOMEM handler frees blocks of the region that ran out and retries:
 * the region must not be locked while the handler runs. */
static void test_nomem_frees(int m)
{
    const char* name = mnames[m];
    static char* held[200000];
    Ev_t e;
    ev_init(&e);
    Vmalloc_t* vm = vmopen(&e.disc, meths[m], 0);
    CHECK(vm, "%s: vmopen", name);
    size_t bs = 48;
    int n = 0;
    /* Fill what the region has, then refuse all new memory. */
    while (n < 2000) {
        held[n] = vmalloc(vm, bs);
        CHECK(held[n], "%s: vmalloc", name);
        fill(held[n], bs, (unsigned)n);
        n++;
    }
    e.refuse = 1;
    while (n < 200000) {
        char* p = vmalloc(vm, bs);
        if (!p)
            break;
        fill(p, bs, (unsigned)n);
        held[n++] = p;
    }
    CHECK(n < 200000, "%s: the region never ran out", name);
    /* Vmlast frees only its newest block: hand the handler the newest ones. */
    static char* victims[200000];
    for (int i = 0; i < n; ++i)
        victims[i] = held[m == LAST ? n - 1 - i : i];
    e.owner = vm;
    e.victims = victims;
    e.nvictims = n;
    e.per = m == LAST ? 1 : 2;
    int from = e.n;
    char* p = vmalloc(vm, bs);
    CHECK(p, "%s: the handler freed blocks but the allocation failed", name);
    CHECK(e.freed >= 1 && e.type[from] == VM_NOMEM, "%s: handler freed %d blocks", name,
          e.freed);
    CHECK(vmdbcheck(vm) == 0, "%s: damaged by a handler that freed", name);
    for (int i = e.freed; i < n; ++i) {
        char* h = victims[i];
        int seed = m == LAST ? n - 1 - i : i;
        CHECK(intact(h, bs, (unsigned)seed), "%s: block %d damaged", name, seed);
    }
    e.victims = NULL;
    e.refuse = 0;
    CHECK(vmclose(vm) == 0 && e.segs == 0, "%s: vmclose", name);
}

/* ---- the built-in disciplines ------------------------------------------------ */

static void exercise(Vmalloc_t* vm, int m, const char* what)
{
    const char* name = mnames[m];
    char* p[64];
    for (int i = 0; i < 64; ++i) {
        size_t sz = m == POOL ? 96 : (size_t)(i + 1) * 300;
        p[i] = vmalloc(vm, sz);
        CHECK(p[i], "%s over %s: vmalloc(%zu)", name, what, sz);
        CHECK(vmregion(p[i]) == vm, "%s over %s: vmregion", name, what);
        fill(p[i], m == POOL ? 96 : 300, (unsigned)i);
    }
    if (m == BEST) {
        for (int i = 0; i < 64; i += 2)
            CHECK(vmfree(vm, p[i]) == 0, "%s over %s: vmfree", name, what);
        for (int i = 1; i < 64; i += 2) {
            p[i] = vmresize(vm, p[i], 50000, VM_RSCOPY);
            CHECK(p[i] && intact(p[i], 300, (unsigned)i), "%s over %s: vmresize", name, what);
        }
    } else if (m == POOL) {
        for (int i = 0; i < 64; i += 2)
            CHECK(vmfree(vm, p[i]) == 0, "%s over %s: vmfree", name, what);
    } else {
        p[63] = vmresize(vm, p[63], 1 << 20, VM_RSCOPY);
        CHECK(p[63] && intact(p[63], 300, 63), "%s over %s: vmresize", name, what);
        CHECK(vmfree(vm, p[63]) == 0, "%s over %s: vmfree", name, what);
    }
    for (int i = 1; i < 63; i += 2)
        CHECK(intact(p[i], m == POOL ? 96 : 300, (unsigned)i), "%s over %s: block %d", name, what,
              i);
    CHECK(vmdbcheck(vm) == 0, "%s over %s: damaged", name, what);
}

static void test_sbrk(int m)
{
    Vmalloc_t* vm = vmopen(Vmdcsbrk, meths[m], 0);
    CHECK(vm, "%s: vmopen(Vmdcsbrk)", mnames[m]);
    exercise(vm, m, "Vmdcsbrk");
    CHECK(vmclear(vm) == 0 && vmcompact(vm) == 0 && vmdbcheck(vm) == 0, "%s: sbrk clear",
          mnames[m]);
    exercise(vm, m, "Vmdcsbrk");
    CHECK(vmclose(vm) == 0, "%s: vmclose(Vmdcsbrk region)", mnames[m]);
}

static void test_heapdisc(int m)
{
    const char* name = mnames[m];
    size_t base = stat_of(Vmheap).s_busy;
    Vmalloc_t* vm = vmopen(Vmdcheap, meths[m], 0);
    CHECK(vm, "%s: vmopen(Vmdcheap)", name);
    CHECK(vmregion(vm) == vm, "%s: vmregion of a Vmdcheap region's handle", name);
    CHECK(vmsize(Vmheap, vmsegment(vm, vm)) > 0, "%s: its home is not a Vmheap block", name);
    exercise(vm, m, "Vmdcheap");
    char* big[40];
    for (int i = 0; i < 40; ++i) {
        big[i] = vmalloc(vm, m == POOL ? 96 : 100000);
        CHECK(big[i], "%s: vmalloc", name);
    }
    size_t peak = stat_of(Vmheap).s_busy;
    CHECK(peak > base + 1000000 / (m == POOL ? 1000 : 1), "%s: Vmheap did not grow (%zu -> %zu)",
          name, base, peak);
    CHECK(vmclear(vm) == 0 && vmcompact(vm) == 0, "%s: vmclear, vmcompact", name);
    size_t after = stat_of(Vmheap).s_busy;
    CHECK(after < peak, "%s: vmcompact gave nothing back to Vmheap (%zu -> %zu)", name, peak,
          after);
    CHECK(vmdbcheck(vm) == 0 && vmdbcheck(Vmheap) == 0, "%s: damaged", name);
    CHECK(vmclose(vm) == 0, "%s: vmclose", name);
    CHECK(stat_of(Vmheap).s_busy == base, "%s: Vmheap holds %zu bytes more after vmclose", name,
          stat_of(Vmheap).s_busy - base);
}

/* ---- fault injection ------------------------------------------------------------ */

/* Fails its k-th request for memory (new segment or resize); releases always
 * succeed so that what the region gives back can be counted. */
typedef struct {
    Vmdisc_t disc;
    long k, calls, faults;
    long segs;
    size_t bytes;
} Fault_t;

static void* fault_memory(Vmalloc_t* vm, void* addr, size_t csz, size_t nsz, Vmdisc_t* disc)
{
    Fault_t* f = (Fault_t*)disc;
    if (nsz != 0 && ++f->calls == f->k) {
        f->faults += 1;
        return NULL;
    }
    void* p = Vmdcsystem->memoryf(vm, addr, csz, nsz, Vmdcsystem);
    if (p) {
        f->segs += csz == 0 ? 1 : nsz == 0 ? -1 : 0;
        f->bytes = f->bytes - csz + nsz;
    }
    return p;
}

/* A step that must either work or fail cleanly, leaving the region intact. */
typedef struct {
    Vmalloc_t* vm;
    int m;
    long k;
    char* blk[16];
    size_t sz[16];
} Script_t;

static void verify(Script_t* s, const char* step)
{
    CHECK(vmdbcheck(s->vm) == 0, "%s k=%ld: damaged after %s", mnames[s->m], s->k, step);
    size_t n = 0;
    for (int i = 0; i < 16; ++i) {
        if (!s->blk[i])
            continue;
        n++;
        CHECK(intact(s->blk[i], s->sz[i], (unsigned)i), "%s k=%ld: block %d damaged after %s",
              mnames[s->m], s->k, i, step);
    }
    CHECK(stat_of(s->vm).n_busy == n, "%s k=%ld: n_busy %zu, %zu blocks held after %s",
          mnames[s->m], s->k, stat_of(s->vm).n_busy, n, step);
}

static void s_alloc(Script_t* s, int i, size_t size)
{
    errno = 0;
    char* p = vmalloc(s->vm, size);
    if (p) {
        fill(p, size, (unsigned)i);
        s->blk[i] = p;
        s->sz[i] = size;
    } else
        CHECK(errno == ENOMEM, "%s k=%ld: vmalloc(%zu) failed with errno %d", mnames[s->m], s->k,
              size, errno);
    verify(s, "vmalloc");
}

static void s_resize(Script_t* s, int i, size_t size, int type)
{
    if (!s->blk[i])
        return;
    errno = 0;
    char* p = vmresize(s->vm, s->blk[i], size, type);
    if (p) {
        size_t keep = s->sz[i] < size ? s->sz[i] : size;
        CHECK(intact(p, keep, (unsigned)i), "%s k=%ld: resize lost content", mnames[s->m], s->k);
        fill(p, size, (unsigned)i);
        s->blk[i] = p;
        s->sz[i] = size;
    } else
        CHECK(errno == ENOMEM, "%s k=%ld: vmresize(%zu, %d) failed with errno %d", mnames[s->m],
              s->k, size, type, errno);
    verify(s, "vmresize");
}

static void s_free(Script_t* s, int i)
{
    if (!s->blk[i])
        return;
    CHECK(vmfree(s->vm, s->blk[i]) == 0, "%s k=%ld: vmfree failed", mnames[s->m], s->k);
    s->blk[i] = NULL;
    verify(s, "vmfree");
}

static void script(Script_t* s)
{
    int m = s->m;
    if (m == POOL) {
        for (int i = 0; i < 12; ++i)
            s_alloc(s, i, 200);
        for (int round = 0; round < 3; ++round) { /* enough blocks to need new segments */
            static void* extra[6000];
            int n = 0;
            while (n < 6000 && (extra[n] = vmalloc(s->vm, 200)))
                n++;
            CHECK(vmdbcheck(s->vm) == 0, "pool k=%ld: damaged by a run of vmalloc", s->k);
            while (n--)
                CHECK(vmfree(s->vm, extra[n]) == 0, "pool k=%ld: vmfree", s->k);
        }
        s_resize(s, 3, 152, 0); /* a size the block's alignment suits */
        s_free(s, 2);
        s_free(s, 5);
        s_alloc(s, 2, 200);
    } else {
        static const size_t sizes[] = {16, 100, 5000, 100000, 2 << 20, 0, 777, 64 << 10};
        for (int i = 0; i < 8; ++i)
            s_alloc(s, i, sizes[i]);
        if (m == BEST) {
            s_resize(s, 1, 300000, VM_RSCOPY);
            s_resize(s, 2, 9000, 0);
            s_resize(s, 4, 4 << 20, VM_RSCOPY | VM_RSCLEAR);
            s_resize(s, 4, 1 << 20, 0);
            s_free(s, 3);
            s_free(s, 0);
            s_alloc(s, 8, 3 << 20);
            s_alloc(s, 9, 40);
        } else {
            s_resize(s, 7, 1 << 20, VM_RSCOPY);
            s_resize(s, 7, 3 << 20, 0);
            s_resize(s, 7, 100, 0);
            s_free(s, 7);
            s_alloc(s, 8, 200000);
        }
    }
    CHECK(vmclear(s->vm) == 0, "%s k=%ld: vmclear", mnames[m], s->k);
    memset(s->blk, 0, sizeof s->blk);
    verify(s, "vmclear");
    s_alloc(s, 0, m == POOL ? 64 : 1000);
    s_alloc(s, 1, m == POOL ? 64 : 3 << 20);
    CHECK(vmcompact(s->vm) == 0, "%s k=%ld: vmcompact", mnames[m], s->k);
    verify(s, "vmcompact");
}

static void test_faults(int m)
{
    long k;
    for (k = 1;; ++k) {
        Fault_t f;
        memset(&f, 0, sizeof f);
        f.disc.memoryf = fault_memory;
        f.k = k;
        Script_t s;
        memset(&s, 0, sizeof s);
        s.m = m;
        s.k = k;
        errno = 0;
        s.vm = vmopen(&f.disc, meths[m], 0);
        if (s.vm) {
            script(&s);
            CHECK(vmclose(s.vm) == 0, "%s k=%ld: vmclose", mnames[m], k);
        } else
            CHECK(errno == ENOMEM && f.faults == 1, "%s k=%ld: vmopen failed with errno %d",
                  mnames[m], k, errno);
        CHECK(f.segs == 0 && f.bytes == 0, "%s k=%ld: %ld segments, %zu bytes leaked", mnames[m],
              k, f.segs, f.bytes);
        if (f.faults == 0)
            break; /* the whole script ran without meeting the fault */
        CHECK(k < 100000, "%s: the script never ran without a fault", mnames[m]);
    }
    CHECK(k > 3, "%s: the script made only %ld requests", mnames[m], k - 1);
}

int main(void)
{
    meths[BEST] = Vmbest;
    meths[POOL] = Vmpool;
    meths[LAST] = Vmlast;
    for (int m = 0; m < 3; ++m) {
        test_buffer(m);
        test_events(m);
        test_nomem_frees(m);
        test_sbrk(m);
        test_heapdisc(m);
        test_faults(m);
    }
    return T_DONE();
}
