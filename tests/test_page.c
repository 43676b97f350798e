/*
 * test_page.c — Vmbest's small-block layer (src/method/page.c) through the
 * public API: size classes, the O(1) rejections of bad addresses, the
 * per-thread caches (cross-thread frees, threads that come and go, vmclear
 * and vmclose with caches out), growth slack, memory going back to the
 * system, and thin pages (their free parts purged; alone and under
 * threads). The shadow-model test (test_best) covers the rest.
 */
#define _DEFAULT_SOURCE /* mincore */
#define _POSIX_C_SOURCE 200809L
#include "t.h"

#include <errno.h>
#include <pthread.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <unistd.h>
#include <vmalloc.h>

static Vmstat_t stat_of(Vmalloc_t* vm)
{
    Vmstat_t st;
    CHECK(vmstat(vm, &st) == 0, "vmstat");
    return st;
}

static int badaddr_events;

static int count_badaddr(Vmalloc_t* vm, int type, void* obj, Vmdisc_t* disc)
{
    (void)vm;
    (void)obj;
    (void)disc;
    if (type == VM_BADADDR)
        badaddr_events++;
    return 0;
}

/* The smallest class of at least n bytes: 16-byte steps up to 256, then 8
 * steps per doubling (the rule page.h states, computed here independently
 * of page.c's table and formula). */
static size_t class_size(size_t n)
{
    size_t c = 16;
    while (c < n)
        c += c < 256 ? 16 : ((size_t)1 << (63 - __builtin_clzll(c))) / 8;
    return c;
}

/* Sizes up to 16 KiB are rounded to classes: at most 12.5% above 256 bytes,
 * at most 15 bytes below; every block is 16-byte aligned. Every size up to
 * 2 KiB is tried (page.c looks classes up in a table there). */
static void test_classes(void)
{
    Vmalloc_t* vm = vmopen(Vmdcsystem, Vmbest, 0);
    CHECK(vm, "vmopen");
    for (size_t n = 0; n <= 17000; n += (n < 2100 ? 1 : n < 4096 ? 7 : 61)) {
        char* p = vmalloc(vm, n);
        CHECK(p && ((uintptr_t)p & 15) == 0, "vmalloc(%zu) = %p", n, (void*)p);
        long got = vmsize(vm, p);
        size_t m = n ? n : 1;
        CHECK(got >= (long)m && (m <= 256 ? got < (long)m + 16 : got <= (long)(m + m / 8)),
              "vmalloc(%zu) has usable size %ld", n, got);
        CHECK(m > 16384 || got == (long)class_size(m), "vmalloc(%zu): usable %ld, class %zu", n,
              got, class_size(m));
        memset(p, 0xab, (size_t)got);
        CHECK(vmaddr(vm, p + got - 1) == got - 1 && vmaddr(vm, p) == 0, "vmaddr in %zu", n);
        CHECK(vmfree(vm, p) == 0, "vmfree(%zu)", n);
    }
    CHECK(vmdbcheck(vm) == 0 && vmclose(vm) == 0, "region intact");
}

/* Double frees, interior, stale and foreign pointers: -1, EINVAL, one
 * VM_BADADDR event each, and nothing changes. */
static void test_bad_addresses(void)
{
    static Vmdisc_t disc;
    disc = *Vmdcsystem;
    disc.exceptf = count_badaddr;
    Vmalloc_t* vm = vmopen(Vmdcsystem, Vmbest, 0);
    Vmalloc_t* other = vmopen(Vmdcsystem, Vmbest, 0);
    CHECK(vm && other, "vmopen");
    CHECK(vmdisc(vm, &disc) == Vmdcsystem, "vmdisc");
    char* p = vmalloc(vm, 40);
    char* q = vmalloc(vm, 40);
    char* o = vmalloc(other, 40);
    CHECK(p && q && o, "vmalloc");
    int stack;
    struct {
        void* addr;
        const char* what;
    } bad[] = {{p + 16, "interior"}, {p + 1, "misaligned"}, {o, "another region's block"},
               {&stack, "the stack"}, {(void*)test_classes, "code"}};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; ++i) {
        badaddr_events = 0;
        errno = 0;
        CHECK(vmfree(vm, bad[i].addr) == -1 && errno == EINVAL && badaddr_events == 1,
              "vmfree of %s: events %d errno %d", bad[i].what, badaddr_events, errno);
        CHECK(vmsize(vm, bad[i].addr) == -1, "vmsize of %s", bad[i].what);
        CHECK(vmresize(vm, bad[i].addr, 10, VM_RSCOPY) == NULL, "vmresize of %s", bad[i].what);
    }
    CHECK(vmfree(vm, p) == 0, "vmfree");
    badaddr_events = 0;
    CHECK(vmfree(vm, p) == -1 && errno == EINVAL && badaddr_events == 1, "double free accepted");
    CHECK(vmresize(vm, p, 100, VM_RSCOPY) == NULL, "resize of a freed block accepted");
    /* Freed, then the block's page handed out again: still caught. */
    for (int i = 0; i < 1000; ++i)
        CHECK(vmalloc(vm, 400) != NULL, "vmalloc");
    CHECK(vmfree(vm, p) == -1, "double free accepted later");
    CHECK(stat_of(vm).n_busy == 1001, "n_busy %zu", stat_of(vm).n_busy);
    /* After vmclear every old pointer is stale. */
    CHECK(vmclear(vm) == 0, "vmclear");
    CHECK(vmfree(vm, q) == -1 && vmsize(vm, q) == -1, "a block survived vmclear");
    CHECK(vmdbcheck(vm) == 0 && vmdbcheck(other) == 0, "regions intact");
    CHECK(vmfree(other, o) == 0, "the other region's block");
    CHECK(vmclose(vm) == 0 && vmclose(other) == 0, "vmclose");
}

/* A page's blocks are carved a few at a time: an address of a block not
 * carved yet is refused like any foreign one, even where the page's memory
 * is mapped and the address lies on a block boundary. And a 64 KiB page of
 * 4 KiB blocks (its blocks end at its last byte) takes back every one. */
static void test_uncarved(void)
{
    Vmalloc_t* vm = vmopen(Vmdcsystem, Vmbest, 0);
    CHECK(vm, "vmopen");
    char* p = vmalloc(vm, 2048); /* a fresh page: 2 blocks carved of 15 or 16 */
    CHECK(p, "vmalloc");
    for (int i = 2; i < 8; ++i) {
        errno = 0;
        CHECK(vmfree(vm, p + (size_t)i * 2048) == -1 && errno == EINVAL,
              "block %d, never carved, freed", i);
        CHECK(vmsize(vm, p + (size_t)i * 2048) == -1, "vmsize of uncarved block %d", i);
    }
    CHECK(vmfree(vm, p + 2048) == -1, "a carved free block freed again");
    enum { NB = 64 };
    static char* b[NB];
    for (int i = 0; i < NB; ++i)
        CHECK((b[i] = vmalloc(vm, 4096)) != NULL, "vmalloc 4096");
    CHECK(vmdbcheck(vm) == 0, "region damaged");
    for (int i = NB - 1; i >= 0; --i)
        CHECK(vmfree(vm, b[i]) == 0, "vmfree of 4 KiB block %d", i);
    CHECK(vmfree(vm, p) == 0 && vmdbcheck(vm) == 0 && vmclose(vm) == 0, "region intact");
}

/* realloc-style growth moves a block O(log n) times (the paper's Figure 4
 * grows one block by 32 bytes 10,000 times between 24-byte allocations). */
static void test_growth(void)
{
    Vmalloc_t* vm = vmopen(Vmdcsystem, Vmbest, 0);
    CHECK(vm, "vmopen");
    size_t size = 32;
    char* big = vmalloc(vm, size);
    int moves = 0;
    for (int i = 0; i < 10000; ++i) {
        CHECK(vmalloc(vm, 24), "vmalloc");
        size += 32;
        char* nb = vmresize(vm, big, size, VM_RSCOPY);
        CHECK(nb, "vmresize to %zu", size);
        moves += nb != big;
        nb[size - 1] = (char)i;
        if (i > 0)
            CHECK(nb[size - 33] == (char)(i - 1), "content lost at %zu", size);
        big = nb;
    }
    EXPECT(moves <= 12, "%d moves for 10,000 growing resizes (the paper: 12)", moves);
    Vmstat_t st = stat_of(vm);
    /* The bound for the paper's pattern: the arena within 1.2x the
     * bytes asked for. The pages of the classes the block grew through go
     * back once it has left them, the last one too (it left by a locked
     * resize, whose free must count as the owner's for pg_retire to see
     * the page empty). */
    size_t asked = 10000 * 24 + size;
    EXPECT((double)st.extent <= 1.2 * (double)asked, "extent %zu for %zu bytes asked (%.3fx)",
           st.extent, asked, (double)st.extent / (double)asked);
    CHECK(vmdbcheck(vm) == 0 && vmclose(vm) == 0, "region intact");
}

/* ---- threads ---------------------------------------------------------------- */

#define NTHREADS 4
#define PER 20000

typedef struct {
    Vmalloc_t* vm;
    int id;
    void** mine;    /* allocated here */
    void** theirs;  /* the previous thread's, freed here */
} Worker;

static pthread_barrier_t barrier;

static void* worker(void* arg)
{
    Worker* w = arg;
    for (int i = 0; i < PER; ++i) {
        size_t n = (size_t)(16 + (i * 37 + w->id * 11) % 2000);
        w->mine[i] = vmalloc(w->vm, n);
        CHECK(w->mine[i], "thread %d: vmalloc", w->id);
        memset(w->mine[i], w->id, n < 16 ? n : 16);
    }
    pthread_barrier_wait(&barrier);
    for (int i = 0; i < PER; ++i) { /* the other thread's blocks: cross-thread frees */
        CHECK(*(unsigned char*)w->theirs[i] == (unsigned char)((w->id + NTHREADS - 1) % NTHREADS),
              "thread %d: a block changed hands", w->id);
        CHECK(vmfree(w->vm, w->theirs[i]) == 0, "thread %d: vmfree", w->id);
    }
    for (int i = 0; i < 1000; ++i) /* leave some in the cache at exit */
        vmfree(w->vm, vmalloc(w->vm, (size_t)(16 + i % 512)));
    return NULL;
}

static void test_threads(void)
{
    Vmalloc_t* vm = vmopen(Vmdcsystem, Vmbest, 0);
    CHECK(vm, "vmopen");
    static void* blocks[NTHREADS][PER];
    Worker w[NTHREADS];
    pthread_t t[NTHREADS];
    pthread_barrier_init(&barrier, NULL, NTHREADS);
    for (int round = 0; round < 3; ++round) {
        for (int i = 0; i < NTHREADS; ++i)
            w[i] = (Worker){vm, i, blocks[i], blocks[(i + NTHREADS - 1) % NTHREADS]};
        for (int i = 0; i < NTHREADS; ++i)
            CHECK(pthread_create(&t[i], NULL, worker, &w[i]) == 0, "pthread_create");
        for (int i = 0; i < NTHREADS; ++i)
            pthread_join(t[i], NULL);
        /* The threads are gone: their caches went back to the pages. */
        Vmstat_t st = stat_of(vm);
        CHECK(st.n_busy == 0 && st.s_busy == 0, "round %d: %zu blocks (%zu bytes) busy", round,
              st.n_busy, st.s_busy);
        CHECK(vmdbcheck(vm) == 0, "round %d: region damaged", round);
    }
    pthread_barrier_destroy(&barrier);
    CHECK(vmcompact(vm) == 0, "vmcompact");
    Vmstat_t st = stat_of(vm);
    EXPECT(st.extent < ((size_t)1 << 20), "extent %zu after vmcompact of an empty region",
           st.extent);
    CHECK(vmclose(vm) == 0, "vmclose");
}

/* A region closed while another thread holds a cache of it, and a new
 * region opened (maybe at the same address): the thread must not use the
 * stale cache. */
static Vmalloc_t* shared_vm;
static pthread_barrier_t b2;

static void* holder(void* arg)
{
    (void)arg;
    void* p = vmalloc(shared_vm, 64); /* makes this thread's cache of the region */
    CHECK(p && vmfree(shared_vm, p) == 0, "holder: first region");
    pthread_barrier_wait(&b2); /* main closes the region and opens another */
    pthread_barrier_wait(&b2);
    for (int i = 0; i < 1000; ++i) {
        p = vmalloc(shared_vm, 64);
        CHECK(p && vmregion(p) == shared_vm, "holder: a block of the new region");
        CHECK(vmfree(shared_vm, p) == 0, "holder: vmfree");
    }
    return NULL;
}

static void test_close_with_caches(void)
{
    pthread_t t;
    pthread_barrier_init(&b2, NULL, 2);
    shared_vm = vmopen(Vmdcsystem, Vmbest, 0);
    CHECK(shared_vm && pthread_create(&t, NULL, holder, NULL) == 0, "setup");
    pthread_barrier_wait(&b2);
    CHECK(vmclose(shared_vm) == 0, "vmclose with another thread's cache");
    shared_vm = vmopen(Vmdcsystem, Vmbest, 0);
    CHECK(shared_vm, "vmopen");
    pthread_barrier_wait(&b2);
    pthread_join(t, NULL);
    pthread_barrier_destroy(&b2);
    CHECK(vmdbcheck(shared_vm) == 0 && stat_of(shared_vm).n_busy == 0, "new region intact");
    CHECK(vmclose(shared_vm) == 0, "vmclose");
}

/* ---- memory back to the system ----------------------------------------------- */

static long resident_kb(void)
{
    long size = 0, res = 0;
    FILE* f = fopen("/proc/self/statm", "r");
    if (!f)
        return -1;
    if (fscanf(f, "%ld %ld", &size, &res) != 2)
        res = -1;
    fclose(f);
    return res < 0 ? -1 : res * (sysconf(_SC_PAGESIZE) / 1024);
}

static void test_purge(void)
{
    enum { N = 1 << 19, SIZE = 128 }; /* 64 MiB */
    static char* blocks[N];
    Vmalloc_t* vm = vmopen(Vmdcsystem, Vmbest, 0);
    CHECK(vm, "vmopen");
    long before = resident_kb();
    for (int i = 0; i < N; ++i) {
        blocks[i] = vmalloc(vm, SIZE);
        CHECK(blocks[i], "vmalloc");
        memset(blocks[i], 1, SIZE);
    }
    long peak = resident_kb();
    for (int i = N / 64; i < N; ++i) /* keep the first 1/64 */
        CHECK(vmfree(vm, blocks[i]) == 0, "vmfree");
    long after = resident_kb();
    CHECK(vmcompact(vm) == 0, "vmcompact");
    long compacted = resident_kb();
    if (before >= 0) {
        long grown = peak - before;
        printf("test_page: resident KiB before %ld, peak %ld, after the frees %ld, after "
               "vmcompact %ld\n", before, peak, after, compacted);
        /* Without vmcompact: what is above the 32 MiB kept for reuse goes back
         * at once; vmcompact gives back the rest. */
        EXPECT(after - before < grown * 3 / 4, "the frees gave back too little");
        EXPECT(compacted - before < grown / 4, "vmcompact gave back too little");
    }
    for (int i = 0; i < N / 64; ++i)
        CHECK(blocks[i][SIZE - 1] == 1 && vmfree(vm, blocks[i]) == 0, "a kept block");
    CHECK(vmdbcheck(vm) == 0 && stat_of(vm).n_busy == 0, "region intact");
    CHECK(vmclose(vm) == 0, "vmclose");
}


/* ---- thin pages: a few survivors per page ------------------------------------ */

/* Resident 4 KiB pages among the 32 KiB pages holding the blocks b[0..n). */
static long resident_in_pages(char** b, size_t n)
{
    long total = 0;
    char* last = NULL;
    for (size_t i = 0; i < n; ++i) {
        char* P = (char*)((uintptr_t)b[i] & ~(uintptr_t)32767);
        if (P == last)
            continue;
        last = P;
        unsigned char vec[8];
        CHECK(mincore(P, 32768, vec) == 0, "mincore");
        for (int j = 0; j < 8; ++j)
            total += vec[j] & 1;
    }
    return total;
}

/* Pages left with a survivor or two by their owner go to the region, which
 * purges their free parts (vmcompact at once; the timed upkeep after a
 * quiet step): the survivors stay intact, the freed blocks stay refused as
 * bad addresses, every figure stays exact, and the blocks come back when
 * the pages are used again. A second thread frees the last blocks of some
 * of those pages (held, thin: each empties at the last one). */
#define THIN_N 32768 /* 64 pages of 64-byte blocks */
#define THIN_PER 512
static char* thin_b[THIN_N];

static void* thin_other(void* arg)
{
    Vmalloc_t* vm = arg;
    for (size_t i = THIN_PER / 2 + 3; i < THIN_N; i += 2 * THIN_PER)
        CHECK(vmfree(vm, thin_b[i]) == 0, "vmfree by another thread");
    return NULL;
}

static void test_thin(void)
{
    static Vmdisc_t disc;
    disc = *Vmdcsystem;
    disc.exceptf = count_badaddr;
    Vmalloc_t* vm = vmopen(Vmdcsystem, Vmbest, 0); /* pages: Vmdcsystem's own */
    CHECK(vm && vmdisc(vm, &disc) == Vmdcsystem, "vmopen");
    for (size_t i = 0; i < THIN_N; ++i) {
        thin_b[i] = vmalloc(vm, 64);
        CHECK(thin_b[i], "vmalloc");
        memset(thin_b[i], (int)(i & 0xff), 64);
    }
    /* Two survivors per page (block 7 and the one in the page's middle
     * third), the rest freed in a scrambled order. */
    size_t kept = 0;
    for (size_t r = 0; r < THIN_N; ++r) {
        size_t i = (r * 7919) % THIN_N; /* 7919 is prime: a permutation */
        size_t k = i % THIN_PER;
        if (k == 7 || k == THIN_PER / 2 + 3)
            continue;
        CHECK(vmfree(vm, thin_b[i]) == 0, "vmfree");
        thin_b[i] = NULL;
    }
    pthread_t t;
    CHECK(pthread_create(&t, NULL, thin_other, vm) == 0 && pthread_join(t, NULL) == 0, "thread");
    for (size_t i = THIN_PER / 2 + 3; i < THIN_N; i += 2 * THIN_PER)
        thin_b[i] = NULL;
    char* live[THIN_N];
    for (size_t i = 0; i < THIN_N; ++i)
        if (thin_b[i])
            live[kept++] = thin_b[i];
    long before = resident_in_pages(live, kept);
    CHECK(vmcompact(vm) == 0, "vmcompact");
    long after = resident_in_pages(live, kept);
    /* Each 32 KiB page keeps the OS pages of its survivors (one is the
     * thread's first page, which it keeps whole, and page 0 of a segment
     * keeps its headers). */
    EXPECT(after <= (long)kept + 2 * 16, "thin pages not purged: %ld of %ld OS pages resident "
           "for %zu survivors", after, before, kept);
    Vmstat_t st = stat_of(vm);
    CHECK(st.n_busy == kept && st.s_busy == kept * 64, "vmstat: %zu busy (%zu bytes), %zu kept",
          st.n_busy, st.s_busy, kept);
    CHECK(vmdbcheck(vm) == 0, "region damaged by the sweep");
    size_t n = 0;
    CHECK(vmwalk(vm, t_count_blocks, &n) == 0 && n == kept, "vmwalk saw %zu of %zu", n, kept);
    for (size_t i = 0; i < THIN_N; ++i)
        if (thin_b[i])
            for (int j = 0; j < 64; ++j)
                CHECK(thin_b[i][j] == (char)(i & 0xff), "survivor %zu changed", i);
    /* A freed block in a purged part: refused, and nothing changes. */
    char* stale = (char*)((uintptr_t)live[kept / 2] & ~(uintptr_t)32767) + 32768 - 64;
    badaddr_events = 0;
    errno = 0;
    CHECK(vmfree(vm, stale) == -1 && errno == EINVAL && badaddr_events == 1,
          "free of a purged free block: events %d", badaddr_events);
    CHECK(vmsize(vm, stale) == -1 && vmaddr(vm, stale + 8) == -1, "a purged block is busy");
    CHECK(vmdbcheck(vm) == 0 && stat_of(vm).n_busy == kept, "region changed by a bad free");
    /* The pages fill up again: every block handed out once, none on a
     * survivor. */
    static char* again[THIN_N];
    for (size_t i = 0; i < THIN_N; ++i) {
        again[i] = vmalloc(vm, 64);
        CHECK(again[i], "vmalloc again");
        memset(again[i], 0x5a, 64);
    }
    for (size_t i = 0; i < THIN_N; ++i)
        if (thin_b[i])
            for (int j = 0; j < 64; ++j)
                CHECK(thin_b[i][j] == (char)(i & 0xff), "survivor %zu overwritten", i);
    st = stat_of(vm);
    CHECK(st.n_busy == kept + THIN_N, "vmstat after refill: %zu busy", st.n_busy);
    n = 0;
    CHECK(vmwalk(vm, t_count_blocks, &n) == 0 && n == kept + THIN_N, "vmwalk after refill: %zu", n);
    CHECK(vmdbcheck(vm) == 0, "region damaged by the refill");
    for (size_t i = 0; i < THIN_N; ++i) {
        CHECK(vmfree(vm, again[i]) == 0, "vmfree");
        if (thin_b[i])
            CHECK(vmfree(vm, thin_b[i]) == 0, "vmfree of a survivor");
    }
    CHECK(vmdbcheck(vm) == 0 && stat_of(vm).n_busy == 0, "region intact at the end");
    CHECK(vmclose(vm) == 0, "vmclose");
}

/* Thin pages under threads: two workers allocate, free most of what they
 * allocated (their pages thin out and go to the region), and hand the
 * survivors to each other to free (a held page empties at its last
 * block), while a third thread sweeps the held pages with vmcompact over
 * and over. Every block keeps its contents to the end; the region is
 * intact and empty afterwards. (TSan runs this: the lock-free frees read a
 * held page's owner, used count and purged eighths as the sweeps change
 * them.) */
#define TT_ROUNDS 40
#define TT_N 2048
#define TT_OUT (TT_N / 8 + 1)
typedef struct {
    Vmalloc_t* vm;
    unsigned seed;
    char* out[TT_OUT]; /* survivors for this worker to free, under tt_lock */
    size_t nout;
} Thinworker;
static pthread_mutex_t tt_lock = PTHREAD_MUTEX_INITIALIZER;
static Thinworker tt_w[2];
static int tt_done;

static void tt_fill(char* p, size_t n)
{
    for (size_t i = 0; i < n; ++i)
        p[i] = (char)(((uintptr_t)p >> 4) + i);
}

/* Check the first n bytes of p's pattern, then free it. */
static void tt_check_free(Vmalloc_t* vm, char* p, size_t n)
{
    for (size_t i = 0; i < n; ++i)
        CHECK(p[i] == (char)(((uintptr_t)p >> 4) + i), "block %p changed at %zu", (void*)p, i);
    CHECK(vmfree(vm, p) == 0, "vmfree of a live block");
}

static void* tt_worker(void* arg)
{
    Thinworker* w = arg;
    Thinworker* other = &tt_w[w == &tt_w[0]];
    static __thread char* b[TT_N];
    static __thread size_t sz[TT_N];
    for (int r = 0; r < TT_ROUNDS; ++r) {
        for (size_t i = 0; i < TT_N; ++i) {
            sz[i] = 16 + rand_r(&w->seed) % 497;
            b[i] = vmalloc(w->vm, sz[i]);
            CHECK(b[i], "vmalloc");
            tt_fill(b[i], sz[i]);
        }
        /* One in eight survives, the rest is freed in a scrambled order. */
        char* keep[TT_OUT];
        size_t nkeep = 0;
        for (size_t i = 0; i < TT_N; ++i) {
            size_t j = (i * 617) % TT_N; /* 617 is prime: a permutation */
            if (j % 8 == 0)
                keep[nkeep++] = b[j];
            else
                tt_check_free(w->vm, b[j], sz[j]);
        }
        /* Trade: take what the other one left us, leave it ours (or free
         * them here if it has not taken the last ones yet). */
        pthread_mutex_lock(&tt_lock);
        char* theirs[TT_OUT];
        size_t ntheirs = w->nout;
        memcpy(theirs, w->out, ntheirs * sizeof *theirs);
        w->nout = 0;
        int sent = nkeep <= TT_OUT - other->nout;
        if (sent) {
            memcpy(other->out + other->nout, keep, nkeep * sizeof *keep);
            other->nout += nkeep;
        }
        pthread_mutex_unlock(&tt_lock);
        if (!sent)
            for (size_t i = 0; i < nkeep; ++i)
                tt_check_free(w->vm, keep[i], 16);
        for (size_t i = 0; i < ntheirs; ++i)
            tt_check_free(w->vm, theirs[i], 16);
    }
    return NULL;
}

static void* tt_sweeper(void* arg)
{
    Vmalloc_t* vm = arg;
    while (!__atomic_load_n(&tt_done, __ATOMIC_ACQUIRE)) {
        CHECK(vmcompact(vm) == 0, "vmcompact");
        Vmstat_t st;
        CHECK(vmstat(vm, &st) == 0, "vmstat");
    }
    return NULL;
}

static void test_thin_threads(void)
{
    Vmalloc_t* vm = vmopen(Vmdcsystem, Vmbest, 0);
    CHECK(vm, "vmopen");
    pthread_t t[3];
    for (int i = 0; i < 2; ++i) {
        tt_w[i].vm = vm;
        tt_w[i].seed = 12345u + (unsigned)i;
        tt_w[i].nout = 0;
    }
    tt_done = 0;
    CHECK(pthread_create(&t[2], NULL, tt_sweeper, vm) == 0, "pthread_create");
    for (int i = 0; i < 2; ++i)
        CHECK(pthread_create(&t[i], NULL, tt_worker, &tt_w[i]) == 0, "pthread_create");
    for (int i = 0; i < 2; ++i)
        CHECK(pthread_join(t[i], NULL) == 0, "pthread_join");
    __atomic_store_n(&tt_done, 1, __ATOMIC_RELEASE);
    CHECK(pthread_join(t[2], NULL) == 0, "pthread_join");
    for (int i = 0; i < 2; ++i)
        for (size_t j = 0; j < tt_w[i].nout; ++j)
            tt_check_free(vm, tt_w[i].out[j], 16);
    CHECK(vmdbcheck(vm) == 0, "region damaged by thin pages under threads");
    CHECK(stat_of(vm).n_busy == 0, "blocks left: %zu", stat_of(vm).n_busy);
    CHECK(vmclose(vm) == 0, "vmclose");
}

/* A write after free that breaks a free list: the list is dropped where
 * it breaks (a bounded leak that vmdbcheck reports), and no block is
 * handed out twice or outside the page. Once on the owner's own list, once
 * on a list of blocks another thread freed (collected without a walk when
 * the owner's page is dry, and checked block by block as it is handed
 * out). */
enum { WAF_N = 64, WAF_SIZE = 48 };
static Vmalloc_t* waf_vm;
static void* waf_blocks[WAF_N];

static void* waf_free_all(void* arg)
{
    (void)arg;
    for (int i = 0; i < WAF_N; ++i)
        CHECK(vmfree(waf_vm, waf_blocks[i]) == 0, "vmfree by another thread");
    return NULL;
}

static void waf_check_refill(const char* what)
{
    void* got[2 * WAF_N];
    for (int i = 0; i < 2 * WAF_N; ++i) {
        got[i] = vmalloc(waf_vm, WAF_SIZE);
        CHECK(got[i] && vmsize(waf_vm, got[i]) >= WAF_SIZE, "%s: vmalloc %d", what, i);
        memset(got[i], 0x5a, WAF_SIZE);
        for (int j = 0; j < i; ++j)
            CHECK(got[j] != got[i], "%s: block %p handed out twice", what, got[i]);
    }
    CHECK(vmdbcheck(waf_vm) > 0, "%s: the broken list was not reported", what);
    for (int i = 0; i < 2 * WAF_N; ++i)
        CHECK(vmfree(waf_vm, got[i]) == 0, "%s: vmfree", what);
}

static void test_write_after_free(void)
{
    for (int cross = 0; cross < 2; ++cross) {
        const char* what = cross ? "another thread's frees" : "the owner's frees";
        waf_vm = vmopen(Vmdcsystem, Vmbest, 0);
        CHECK(waf_vm, "vmopen");
        for (int i = 0; i < WAF_N; ++i)
            CHECK((waf_blocks[i] = vmalloc(waf_vm, WAF_SIZE)) != NULL, "vmalloc");
        /* A carve's worth more: only the few carved blocks left after
         * these stand before the freed ones on the page's own list, so the
         * refill reaches the freed blocks on the list itself (the owner's)
         * or through a collection of the dry page (another thread's). */
        void* rest[4096 / WAF_SIZE];
        int nrest = 0;
        while (nrest < (int)(sizeof rest / sizeof rest[0])) {
            void* p = vmalloc(waf_vm, WAF_SIZE);
            CHECK(p, "vmalloc");
            rest[nrest++] = p;
        }
        if (cross) {
            pthread_t t;
            CHECK(pthread_create(&t, NULL, waf_free_all, NULL) == 0, "pthread_create");
            CHECK(pthread_join(t, NULL) == 0, "pthread_join");
        } else
            waf_free_all(NULL);
        /* The user writes into a freed block in the middle of the list. */
        memset(waf_blocks[WAF_N / 2], 0xa5, WAF_SIZE);
        waf_check_refill(what);
        for (int i = 0; i < nrest; ++i)
            CHECK(vmfree(waf_vm, rest[i]) == 0, "vmfree");
        CHECK(vmclose(waf_vm) == 0, "vmclose");
    }
}

/* Under an address-space limit (ulimit -v), whose budget the page map's
 * 32 GiB of addresses would eat, the map is a window around the process's
 * mappings (page.c): pages still serve small blocks (test_classes sees class sizes,
 * which best fit would not give), bad addresses are still refused, threads
 * still work. The limit must be set before the library opens its first
 * region, so the test runs itself again under it. */
#define LIMITED_AS ((rlim_t)8 << 30)
static int run_limited(char** argv)
{
    struct rlimit rl;
    CHECK(getrlimit(RLIMIT_AS, &rl) == 0, "getrlimit");
    if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur <= LIMITED_AS) {
        test_classes();
        test_bad_addresses();
        test_threads();
        printf("test_page --rlimit-as: ok (limit %llu MiB)\n",
               (unsigned long long)(rl.rlim_cur >> 20));
        return T_DONE();
    }
    rl.rlim_cur = LIMITED_AS;
    CHECK(setrlimit(RLIMIT_AS, &rl) == 0, "setrlimit");
    execv("/proc/self/exe", argv);
    CHECK(0, "execv /proc/self/exe");
    return 1;
}

int main(int argc, char** argv)
{
    if (argc > 1 && strcmp(argv[1], "--rlimit-as") == 0)
        return run_limited(argv);
    test_classes();
    test_bad_addresses();
    test_uncarved();
    test_growth();
    test_threads();
    test_close_with_caches();
    test_purge();
    test_thin();
    test_thin_threads();
    test_write_after_free();
    printf("test_page: ok\n");
    return T_DONE();
}
