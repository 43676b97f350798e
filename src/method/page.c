/*
 * method/page.c — Vmbest's small blocks: size classes in 32 and 64 KiB pages,
 * each page owned by one thread's heap, so that malloc and free of small
 * sizes take no lock.
 *
 * Algorithm (the glossary is page.h).
 *   - A request of at most PG_MAXCLASS (16 KiB) is rounded up to its class
 *     (64 classes; waste <= 12.5% above 256 bytes, < 16 bytes below) and
 *     served from a page holding only blocks of that class, with no
 *     per-block header: a 32 KiB page up to 2 KiB, a 64 KiB page above.
 *     Whether an address is in a page at all, and which, is a pointer per
 *     32 KiB to the page's descriptor (in its segment's first page) in a
 *     process-wide map (one flat array of 2^32 pointers: 32 GiB of
 *     addresses that read as NULL, written and so backed only where pages
 *     are), so a foreign pointer is recognised in O(1) without touching its
 *     memory.
 *   - Each thread has, per region, a heap: per class, a queue of the pages
 *     it owns. malloc pops the first page's free list; a free by the owner
 *     pushes onto its page's free list; both with no lock and no atomic
 *     instruction. A free by any other thread pushes onto the page's xfree
 *     list with one compare-and-swap; the owner collects it when its free
 *     list runs dry, in O(1): the list becomes the free list as it is, and
 *     its blocks are checked as they are handed out (pg_collect_dry). A
 *     push that leaves every block out of the page on xfree hands the
 *     page back to the region, unless it is the first of
 *     its owner's queue (pg_reclaim): an owner that stops allocating never
 *     collects, and would pin it for good. The free lists are sharded by
 *     page, so blocks handed out one after another are neighbours (mimalloc's design: Leijen, Zorn
 *     and de Moura, "Mimalloc: Free List Sharding in Action", 2019).
 *   - When the first page has nothing left, the heap collects it, then
 *     links up to PG_EXTEND bytes of its never-used blocks, then looks at
 *     up to PG_SCAN more pages of the queue (each one that has nothing goes
 *     to the tail, so the scan reaches every page in turn), and only then
 *     takes a page from the region under its lock: a held page with room
 *     (left by a thread that ended), or an empty one.
 *   - A page whose last block its owner frees goes back to the region's
 *     empty pages at once; the first page of its queue stays, until the
 *     heap's next PG_RETIRE to 2 PG_RETIRE slow calls if it stays empty
 *     (pg_retire). A thread that ends gives its pages to the region (a
 *     pthread key destructor); they are held there, on partial[cls],
 *     collected and reused by the next heap that needs a page of their
 *     class, or emptied by the timed tick.
 *   - Page segments come from Vmdcsystem's aligned twin, which reserves
 *     room after each (disc/system.c): the newest segment of a kind grows
 *     in place by an eighth of its pages (at least one) up to pg_maxseg, so
 *     the arena follows the pages in use; a new segment starts at pg_minseg
 *     pages once one has grown (x1.25 the last one where none could).
 *   - Empty pages are dirty (touched since their last purge) or clean.
 *     Dirty pages beyond max(32 MiB, half the active pages) are purged at
 *     once (madvise): a program that frees a peak drops to about that much
 *     over its live data without waiting, while one that frees and refills
 *     its memory in a loop does not fault its pages in again each time. The
 *     rest ages: Vmbest's timed upkeep (vm_best_tick, every BEST_TICK_MS at
 *     most, from slow-path calls or the upkeep thread) purges the pages that
 *     were already dirty at its previous step (pg_age), so a page is purged
 *     one to two steps after its last use, and gives wholly empty page
 *     segments back to the discipline; vmcompact purges all at once. A
 *     segment also goes back at once when the empty pages left elsewhere
 *     exceed the limit.
 *   - A page that a few survivors keep active (thin: at most min(cap/8,
 *     PG_THIN) blocks out) is handed by its owner to the region when a free
 *     thins it, unless it is the first of its queue; a held page left alone
 *     for a whole step is swept (pg_sweep): each eighth of it that no busy
 *     block overlaps is purged, and the free blocks starting there leave
 *     its free list (d->gone records those eighths) until the page hands
 *     out blocks again (pg_relink). A survivor then pins an OS page, not
 *     the whole page.
 *
 * Bounds. malloc/free: O(1) with no lock while the first page has a block
 * (or the freed block's page is the thread's own). A dry first page costs a
 * collection (O(1) for a page whose free list is empty, else O(blocks
 * other threads freed to it)), a link of at most PG_EXTEND bytes of blocks, or a look at
 * PG_SCAN pages, and at worst one
 * take under the lock; a free that thins a page other than the first, one
 * more; a free by another thread that leaves no user of a page, one more
 * (pg_reclaim: O(blocks on its xfree)). A sweep: O(blocks of the
 * page) and a madvise per run of eighths. Page lookup: a shift, a compare
 * and the entry's load. Space: 0 header bytes per block; page 0 of a segment gives its
 * first 3968 bytes (2176 for 64 KiB pages) to the segment's counters and
 * the descriptors of every page it may grow to, and 8 bytes per page (16
 * for a 64 KiB page) go to the map; each thread keeps the pages it owns,
 * at most one of them empty per class (for PG_RETIRE slow calls or so).
 *
 * Locking. Empty pages, held pages and their free lists, page segments,
 * ownership (d->owner changes only under the region lock) and the region's
 * heap list are guarded by the region lock. An owned page's free list,
 * used count and carving belong to its owner; other threads read only its
 * descriptor's fixed fields and relaxed counts (vmstat), and a held page's
 * gone mask (changed under the lock) to refuse a free of a purged block;
 * but a page whose every block out is on its xfree, and that is not the
 * first of its owner's queue, is taken back by pg_reclaim under the region
 * lock and the owner's qlock (tried), which the owner holds while it
 * changes which page is first without the region lock (pg_q_rotate).
 * vmclear empties every heap (clearing a region while other threads use it
 * is an error).
 * vm_cache_lock (the core's) guards the creation and death of heaps; it is
 * taken before a region lock, never after (a thread holding a region lock
 * only tries it).
 */
#include "page.h"

#include <pthread.h>
#include <stddef.h>

#define PG_SEGINFO 64  /* the segment's counters, in page 0 */
#define PG_DESCS 128   /* the pages' descriptors, in page 0, 64 bytes each */
/* Pages in the first page segment of a kind, then x1.25, at most (the
 * headers fit in 4 KiB; a segment is at most ~2 MiB): the arena overshoots
 * by at most a fifth (x1.5 made it a third, and the vmstat extent of a
 * small heap 5-9% larger on the study's traces). */
#define PG_MAXSEG0 60
#define PG_MAXSEG1 32
static const size_t pg_minseg[2] = {4, 2}, pg_maxseg[2] = {PG_MAXSEG0, PG_MAXSEG1};
#define PG_MAXSEG PG_MAXSEG0 /* the most of either kind */
#define PG_DIRTYMIN ((size_t)32 << 20) /* empty bytes kept unpurged, or half the active ones */
#define PG_SCAN 8      /* pages a dry heap looks at before it takes one from the region */
#define PG_EXTEND 4096 /* bytes of never-used blocks linked at a time: one OS page */
#define PG_REFUSALS 8  /* new page segments outside the map's window before a kind stops */

/* A page's state. An active page held by the region also ages, so that
 * the timed upkeep sweeps only pages nobody has touched for a whole step:
 * PG_AGED (quiet since the last step) and PG_SWEPT (its wholly free OS pages
 * purged since, nothing changed). Ownership and every change of a held page
 * set it back to PG_ACTIVE. */
enum { PG_EMPTY = 0, PG_ACTIVE = 1, PG_AGED = 2, PG_SWEPT = 3 };

struct pg_page {
    Vmalloc_t* vm;         /* the region while active; NULL while empty */
    void* free;            /* free blocks, linked through word 0 (owner's, or locked) */
    uintptr_t xfree;       /* atomic: blocks freed by threads other than the owner: the
                            * list's head in the low PG_XSHIFT bits, its length above */
    Pgpage_t *next, *prev; /* in its owner's queue, partial[cls], or the dirty or clean list */
    Pgheap_t* owner;       /* atomic, changed under the lock: the owning heap, or NULL */
    uint16_t lim;          /* atomic: min(bump * bsize, 65535), the bytes from block 0 that
                            * are carved: read by any free (pg_index) */
    uint16_t base;         /* = (P + start) mod 2^16, the low bits of block 0's address */
    uint16_t used;         /* owner's (or locked); read by vmstat: relaxed atomic */
    uint16_t bump;         /* owner's (or locked): blocks carved (pg_set_bump), relaxed atomic;
                            * cap, bsize, start: pg_cap, pg_bsize, pg_start_of */
    uint32_t divc;         /* = pg_divc[cls]: pg_index reads it with base, on one line */
    uint8_t cls, state;
    union {
        uint8_t dirty;     /* empty: touched since its last purge */
        uint8_t gone;      /* active: atomic, changed under the lock: bit u set when the
                            * eighth u of the page was purged while held (pg_sweep);
                            * the blocks that start there are free and on no list */
    };
    uint8_t kind;          /* 0: a PG_SIZE page, 1: a PG_LSIZE page */
};                         /* 64 bytes: a page's index is its descriptor's */

/* A page segment's counters, at page 0 + PG_SEGINFO; its pages' descriptors
 * follow at page 0 + PG_DESCS, so a wholly purged page keeps nothing
 * resident, and page 0 only its first OS page. */
typedef struct pg_seginfo {
    uint32_t npages, nactive;
    Vmseg_t* seg;
    char* first;   /* page 0 */
    unsigned kind; /* its pages' */
} Pgseg_t;

#define PG_TABMAX 1024 /* sizes up to this have their class in a table */
#define PG_NDIRECT (PG_TABMAX / 16 + 1)

struct pg_heap {
    Vmalloc_t* vm;  /* atomic: NULL once the region is closed */
    uint64_t key;   /* = pg->key, on the line the fast paths read anyway */
    Pgstate_t* pg;
    Pgheap_t* tnext;         /* the thread's heaps, most recently used first */
    Pgheap_t *rnext, *rprev; /* the region's heaps */
    size_t mapsize;
    /* page[k] = head[k], or &pg_nopage when the queue is empty: malloc
     * reads page[k]->free with no test for NULL. direct[j] = page[k] for
     * the class k of the sizes 16 j - 15 .. 16 j (up to PG_TABMAX), so
     * malloc of a common size finds its page by its size. */
    Pgpage_t* direct[PG_NDIRECT];
    Pgpage_t* page[PG_NCLASS];
    Pgpage_t *head[PG_NCLASS], *tail[PG_NCLASS];
    uint32_t npages[PG_NCLASS]; /* atomic: pg_reclaim lowers it */
    /* The owner's: classes whose first page its free emptied, this epoch
     * and the one before, and the slow-path calls that make the epochs
     * (pg_retire). */
    uint64_t retnew, retold;
    unsigned slowcalls;
    /* Held by the owner while it changes which page of a queue is first
     * without the region lock (pg_q_rotate), and tried by pg_reclaim (with
     * the region lock) while it takes a page that is not first. */
    pthread_mutex_t qlock;
};

_Static_assert(sizeof(Pgpage_t) == 64, "a page descriptor is 64 bytes");
_Static_assert(sizeof(Vmseg_t) <= PG_SEGINFO, "a segment header must fit before the counters");
_Static_assert(PG_SEGINFO + sizeof(Pgseg_t) <= PG_DESCS, "segment counters too big");
_Static_assert(PG_DESCS + PG_MAXSEG * 64 <= 4096, "a segment's headers fit in its first OS page");

/* The classes, and for each 2^32 / size + 1 (pg_index). */
#define PG_CLASSES(X)                                                                              \
    X(16) X(32) X(48) X(64) X(80) X(96) X(112) X(128) X(144) X(160) X(176) X(192) X(208) X(224)    \
    X(240) X(256) X(288) X(320) X(352) X(384) X(416) X(448) X(480) X(512) X(576) X(640) X(704)     \
    X(768) X(832) X(896) X(960) X(1024) X(1152) X(1280) X(1408) X(1536) X(1664) X(1792) X(1920)   \
    X(2048) X(2304) X(2560) X(2816) X(3072) X(3328) X(3584) X(3840) X(4096) X(4608) X(5120)       \
    X(5632) X(6144) X(6656) X(7168) X(7680) X(8192) X(9216) X(10240) X(11264) X(12288) X(13312)   \
    X(14336) X(15360) X(16384)
#define PG_SIZE_OF(s) s,
#define PG_DIVC_OF(s) (UINT32_MAX / (s) + 1),
static const uint16_t pg_csize[PG_NCLASS] = {PG_CLASSES(PG_SIZE_OF)};
static const uint32_t pg_divc[PG_NCLASS] = {PG_CLASSES(PG_DIVC_OF)};

static inline unsigned pg_kind_of(unsigned k) { return k >= PG_NSMALL; }
static inline size_t pg_psize(unsigned kind) { return PG_SIZE << kind; /* no branch */ }

/* The class of a request of n <= PG_MAXCLASS bytes: by computation. */
static inline unsigned pg_class_of(size_t n)
{
    if (n <= 256)
        return n ? (unsigned)((n + 15) >> 4) - 1 : 0;
    unsigned b = 63u - (unsigned)__builtin_clzll((unsigned long long)(n - 1));
    return 16 + (b - 8) * 8 + (unsigned)((n - 1 - ((size_t)1 << b)) >> (b - 3));
}

/* And by a table up to PG_TABMAX, indexed by (n + 15) / 16: the common
 * sizes cost one load of a hot line instead of a count of leading zeros
 * and four shifts (test_page compares the two for every size). The
 * lock-free mallocs skip even that: a heap's direct[] has the page of
 * each entry's class. */
static const uint8_t pg_class_tab[PG_NDIRECT] = {
    0,  0,  1,  2,  3,  4,  5,  6,  7,  8,  9,  10, 11, 12, 13, 14, 15, 16, 16, 17, 17, 18,
    18, 19, 19, 20, 20, 21, 21, 22, 22, 23, 23, 24, 24, 24, 24, 25, 25, 25, 25, 26, 26, 26,
    26, 27, 27, 27, 27, 28, 28, 28, 28, 29, 29, 29, 29, 30, 30, 30, 30, 31, 31, 31, 31,
};

static inline unsigned pg_class(size_t n)
{
    return n <= PG_TABMAX ? pg_class_tab[(n + 15) >> 4] : pg_class_of(n);
}

/* ---- the page map: is an address in a page? ------------------------------ */

/* One flat array, a descriptor pointer per PG_SIZE granule of the 2^47 bytes
 * below the kernel: 2^32 entries, 32 GiB of addresses reserved once and
 * read as zeros (NULL: no page) wherever nothing was written, so a lookup
 * is a shift, a bound and one load, with no level that may be missing.
 * Only the OS pages of it that cover page segments take memory: one per
 * 16 MiB of pages. Under an address-space limit (RLIMIT_AS), whose budget
 * 32 GiB of addresses would eat, or where they cannot be had, the map is
 * PG_MAPSMALL entries covering a window of 128 GiB around its own address,
 * where the kernel places a process's mappings, mostly downwards: a page
 * segment outside it is refused (pg_map_range) and its blocks come from the
 * best-fit tree instead. Entry i is the granule base + i; n is 0 until the
 * map exists (and for good if not even the window can be reserved: regions
 * then do without pages), and bounds the index in the same compare. base is
 * read plainly by every lookup and written only in window mode, before n is
 * published: a lookup racing with that write finds n == 0 and ignores what
 * it read. */
#define PG_MAPN ((uintptr_t)1 << (47 - PG_SHIFT))
#define PG_MAPSMALL ((uintptr_t)1 << 22)
static struct __attribute__((aligned(64))) { /* a line of its own: every free reads it */
    uintptr_t n;    /* atomic */
    uintptr_t base; /* set once, before n */
    Pgpage_t** map; /* set once, before n */
} pg_mapv;

/* Make the map, once for the process (Vmheap's opening, as a rule, before
 * any thread): 0, or -1 if it cannot be reserved. A failure is not tried
 * again: each region opened after it would pay a doomed mmap. */
static int pg_map_open(void)
{
    static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
    static int tried; /* atomic: a failure returns without the lock */
    if (__atomic_load_n(&pg_mapv.n, __ATOMIC_ACQUIRE))
        return 0;
    if (__atomic_load_n(&tried, __ATOMIC_ACQUIRE))
        return -1;
    pthread_mutex_lock(&lock);
    uintptr_t n = __atomic_load_n(&pg_mapv.n, __ATOMIC_RELAXED);
    if (!n && !__atomic_load_n(&tried, __ATOMIC_RELAXED)) {
        Pgpage_t** map = NULL;
        if (!vm_os_as_limited())
            map = vm_os_reserve_zero(PG_MAPN * sizeof(Pgpage_t*));
        uintptr_t base = 0;
        n = PG_MAPN;
        if (!map && (map = vm_os_reserve_zero(PG_MAPSMALL * sizeof(Pgpage_t*)))) {
            /* The window: 3/4 of it below the map, inside 2^47. */
            uintptr_t at = (uintptr_t)map >> PG_SHIFT;
            n = PG_MAPSMALL;
            base = at > n / 4 * 3 ? at - n / 4 * 3 : 0;
            base = base + n > PG_MAPN ? PG_MAPN - n : base;
        }
        if (map) {
            pg_mapv.map = map;
            if (base) /* a lookup before n is set reads base, to no effect */
                pg_mapv.base = base;
            __atomic_store_n(&pg_mapv.n, n, __ATOMIC_RELEASE);
        } else
            n = 0;
        __atomic_store_n(&tried, 1, __ATOMIC_RELEASE);
    }
    pthread_mutex_unlock(&lock);
    return n ? 0 : -1;
}

static inline char* pg_base(const void* p) { return (char*)((uintptr_t)p & ~(PG_SIZE - 1)); }
/* Page j of the segment whose page 0 is first: its descriptor. */
static inline Pgpage_t* pg_desc(char* first, size_t j) { return (Pgpage_t*)(first + PG_DESCS) + j; }
/* And back: a descriptor lives in its segment's page 0. */
static inline char* pg_first_of(const Pgpage_t* d) { return pg_base(d); }
static inline size_t pg_index_of(const Pgpage_t* d)
{
    return (size_t)(d - (const Pgpage_t*)(pg_first_of(d) + PG_DESCS));
}
static inline char* pg_page_addr(const Pgpage_t* d)
{
    return pg_first_of(d) + pg_index_of(d) * pg_psize(d->kind);
}
static inline Pgseg_t* pg_info_of(const Pgpage_t* d) { return (Pgseg_t*)(pg_first_of(d) + PG_SEGINFO); }
/* Where page j of a segment of the kind's pages has its first block: after
 * the headers in page 0, with room for the descriptors of every page the
 * segment may grow to (pg_grow_inplace). */
static inline size_t pg_start_kind(unsigned kind, size_t j)
{
    return j ? 0 : PG_DESCS + pg_maxseg[kind] * sizeof(Pgpage_t);
}
/* An active page's block size and first block's offset, which the
 * descriptor leaves to its class and place (free reads base and divc). */
static inline size_t pg_bsize(const Pgpage_t* d) { return pg_csize[d->cls]; }
static inline size_t pg_start_of(const Pgpage_t* d)
{
    return pg_start_kind(d->kind, pg_index_of(d));
}

/* The page holding p, or NULL if p is in no page. O(1): a shift, a compare
 * and the entry's load (after the map's words, on a line that is never
 * written again); reads no memory of p. */
static inline Pgpage_t* pg_page_of(const void* p)
{
    /* map and base are read plainly: they are written once, before the
     * release that this acquire pairs with. */
    uintptr_t n = __atomic_load_n(&pg_mapv.n, __ATOMIC_ACQUIRE);
    uintptr_t i = ((uintptr_t)p >> PG_SHIFT) - pg_mapv.base;
    if (i >= n)
        return NULL;
    return __atomic_load_n(&pg_mapv.map[i], __ATOMIC_RELAXED);
}

/* The map's entry for the granule at a, which the map covers. */
static inline Pgpage_t** pg_map_at(const void* a)
{
    return pg_mapv.map + (((uintptr_t)a >> PG_SHIFT) - pg_mapv.base);
}

/* Map page j (of the given kind) of the segment at first to its
 * descriptor, or to nothing. Its entries are writable (pg_map_range). */
static void pg_map_set(char* first, unsigned kind, size_t j, int on)
{
    size_t psize = pg_psize(kind);
    Pgpage_t* d = on ? pg_desc(first, j) : NULL;
    Pgpage_t** e = pg_map_at(first + j * psize);
    for (size_t g = 0; g < psize / PG_SIZE; ++g)
        __atomic_store_n(&e[g], d, __ATOMIC_RELAXED);
}

/* ---- blocks ------------------------------------------------------------- */

/* A page's xfree word: a list and its length in one word, so that a
 * thread pushing onto it learns at once whether every block out of the
 * page is on it (pg_give_other). Pages lie below 2^47 (the page map). */
#define PG_XSHIFT 48
static inline void* pg_xlist(uintptr_t x) { return (void*)(x & (((uintptr_t)1 << PG_XSHIFT) - 1)); }
static inline unsigned pg_xcount(uintptr_t x) { return (unsigned)(x >> PG_XSHIFT); }
static inline uintptr_t pg_xword(const Pgpage_t* d) { return __atomic_load_n(&d->xfree, __ATOMIC_ACQUIRE); }

/* The key of the free block at p. The secret has its top and bottom bits
 * set (pg_rekey), so a key is odd (never the 0 a busy block's word 1 gets,
 * nor the zeros of a purged one) and never a user-space pointer, which is
 * what word 1 of a busy block most often holds. A multiply would add
 * nothing: it is invertible, so one key read after a free gives the secret
 * either way; the xor spares 3 instructions on each malloc and free. */
static inline uint64_t pg_hash(uint64_t key, const void* p) { return (uint64_t)(uintptr_t)p ^ key; }

static inline uint64_t pg_key(const Pgstate_t* pg, const void* p) { return pg_hash(pg->key, p); }

static inline int pg_is_free(const Pgstate_t* pg, const void* p)
{
    return ((const uint64_t*)p)[1] == pg_key(pg, p);
}

static inline void pg_mark_free(const Pgstate_t* pg, void* p, void* next)
{
    ((void**)p)[0] = next;
    ((uint64_t*)p)[1] = pg_key(pg, p);
}

static inline void* pg_block(const Pgpage_t* d, unsigned i)
{
    return pg_page_addr(d) + pg_start_of(d) + (size_t)i * pg_bsize(d);
}

static inline unsigned pg_bump(const Pgpage_t* d) { return __atomic_load_n(&d->bump, __ATOMIC_RELAXED); }

/* The blocks a page of a class holds: a segment's page 0 (its headers
 * first: pg_start_kind) and the others. Tables, because free's thin test
 * reads them. */
#define PG_CAP0_OF(s)                                                                              \
    (uint16_t)(((s) <= PG_MAXSMALL ? PG_SIZE - PG_DESCS - PG_MAXSEG0 * 64                          \
                                   : PG_LSIZE - PG_DESCS - PG_MAXSEG1 * 64) / (s)),
#define PG_CAPN_OF(s) (uint16_t)(((s) <= PG_MAXSMALL ? PG_SIZE : PG_LSIZE) / (s)),
static const uint16_t pg_cap0[PG_NCLASS] = {PG_CLASSES(PG_CAP0_OF)};
static const uint16_t pg_capn[PG_NCLASS] = {PG_CLASSES(PG_CAPN_OF)};
static inline unsigned pg_cap(const Pgpage_t* d)
{
    int first = ((uintptr_t)d & (PG_SIZE - 1)) == PG_DESCS; /* page 0's descriptor */
    return first ? pg_cap0[d->cls] : pg_capn[d->cls];
}

/* The lim of a page with bump blocks of bsize bytes carved. */
static inline uint16_t pg_lim_of(size_t bsize, unsigned bump)
{
    size_t lim = (size_t)bump * bsize;
    return (uint16_t)(lim < 0xffff ? lim : 0xffff);
}

/* d has bump blocks carved: the count and the byte limit the frees check
 * (pg_index). The owner's, or locked. */
static inline void pg_set_bump(Pgpage_t* d, unsigned bump)
{
    __atomic_store_n(&d->lim, pg_lim_of(pg_bsize(d), bump), __ATOMIC_RELAXED);
    __atomic_store_n(&d->bump, (uint16_t)bump, __ATOMIC_RELAXED);
}

/* A page is purged in eighths while it is held (pg_sweep): 4 KiB units of
 * a 32 KiB page, 8 KiB of a 64 KiB one. */
#define PG_UNITS 8
static inline unsigned pg_ushift(const Pgpage_t* d) { return PG_SHIFT - 3 + d->kind; }
static inline unsigned pg_gone(const Pgpage_t* d) { return __atomic_load_n(&d->gone, __ATOMIC_RELAXED); }
/* The unit of d that address p lies in. */
static inline unsigned pg_unit_of(const Pgpage_t* d, const void* p)
{
    return (unsigned)(((uintptr_t)p & (pg_psize(d->kind) - 1)) >> pg_ushift(d));
}
/* Is the block starting at p, in d, in a purged unit (free, on no list)? */
static inline int pg_gone_at(const Pgpage_t* d, const void* p)
{
    unsigned g = pg_gone(d);
    return g && (g >> pg_unit_of(d, p) & 1);
}
/* The first block of d starting at or after offset off of the page. */
static inline unsigned pg_first_at(const Pgpage_t* d, size_t off)
{
    size_t start = pg_start_of(d), bsize = pg_bsize(d);
    return off <= start ? 0 : (unsigned)((off - start + bsize - 1) / bsize);
}
/* The blocks [*lo, *hi) of d that start in unit u, below lim. */
static inline void pg_unit_blocks(const Pgpage_t* d, unsigned u, unsigned lim, unsigned* lo,
                                  unsigned* hi)
{
    unsigned a = pg_first_at(d, (size_t)u << pg_ushift(d));
    unsigned b = pg_first_at(d, (size_t)(u + 1) << pg_ushift(d));
    *lo = a < lim ? a : lim;
    *hi = b < lim ? b : lim;
}
/* Carved blocks of d in its purged units: free, on no list. */
static inline unsigned pg_ngone(const Pgpage_t* d, unsigned bump)
{
    unsigned n = 0, lo, hi, g = pg_gone(d);
    for (unsigned u = 0; g; ++u, g >>= 1)
        if (g & 1) {
            pg_unit_blocks(d, u, bump, &lo, &hi);
            n += hi - lo;
        }
    return n;
}

/* Index of the block starting at p in active page d, or -1 if p is not the
 * start of a block carved from d. With c = 2^32 / bsize + 1, the 64-bit
 * product c * off holds the quotient off / bsize in its high half and, in
 * its low half, a value below c exactly when bsize divides off (Lemire,
 * Kaser and Kurz, "Faster remainder by direct computation", 2019: exact
 * for off < 2^16 and bsize <= 2^14, checked for every class and offset):
 * one multiply instead of a division. off is p's distance from block 0
 * modulo 2^16 (base holds block 0's low 16 bits: no page size, start or
 * class table to read), so an address of the page below block 0 (the
 * headers) wraps to at least 2^16 - start > page size - start >= lim. lim
 * (bump * bsize, or 65535 when that is 65536: no carved block starts
 * there) bounds off before the multiply, so the index itself is computed
 * only for callers that use it. */
static inline long pg_index_below(const Pgpage_t* d, const void* p, unsigned lim)
{
    uint32_t off = (uint16_t)((uint32_t)(uintptr_t)p - d->base);
    if (off >= lim)
        return -1; /* never carved (or the headers below block 0) */
    uint32_t c = d->divc;
    uint64_t m = (uint64_t)c * off;
    if ((uint32_t)m >= c)
        return -1;
    return (long)(m >> 32);
}
static inline long pg_index(const Pgpage_t* d, const void* p)
{
    return pg_index_below(d, p, __atomic_load_n(&d->lim, __ATOMIC_RELAXED));
}

/* Is p, keyed key when free, a busy block of page d, where p is known not
 * to be in a purged unit (an owned page has none: pg_relink)? Not if it is
 * no block's start, was never carved, or is free already (a second free is
 * refused here). Reads p only once it is known to be a block. */
static inline int pg_own_busy(const Pgpage_t* d, const void* p, uint64_t key)
{
    return __builtin_expect(pg_index(d, p) >= 0 && ((const uint64_t*)p)[1] != key, 1);
}

/* The same for the owner of d, which alone writes its lim: read plainly, a
 * compare with memory. */
static inline int pg_mine_busy(const Pgpage_t* d, const void* p, uint64_t key)
{
    return __builtin_expect(pg_index_below(d, p, d->lim) >= 0 && ((const uint64_t*)p)[1] != key, 1);
}

/* Is p a busy block of vm (in a page)? d is pg_page_of(p). d->vm is set
 * only while the page is active (pg_check verifies it), so it answers for
 * the state too. */
static inline int pg_busy(Vmalloc_t* vm, const Pgstate_t* pg, const Pgpage_t* d, const void* p)
{
    return d->vm == vm && !pg_gone_at(d, p) && pg_own_busy(d, p, pg_key(pg, p));
}

/* ---- page lists (locked) ------------------------------------------------ */

static void pg_push(Pgpage_t** head, Pgpage_t** tail, Pgpage_t* d)
{
    d->prev = NULL;
    d->next = *head;
    if (*head)
        (*head)->prev = d;
    else if (tail)
        *tail = d;
    *head = d;
}

static void pg_unlink(Pgpage_t** head, Pgpage_t** tail, Pgpage_t* d)
{
    if (d->prev)
        d->prev->next = d->next;
    else
        *head = d->next;
    if (d->next)
        d->next->prev = d->prev;
    else if (tail)
        *tail = d->prev;
    d->next = d->prev = NULL;
}

static inline int pg_has_room(const Pgpage_t* d)
{
    return d->free || d->bump < pg_cap(d) || pg_gone(d);
}

/* A page with at most this many blocks out (an eighth, and at most
 * PG_THIN: a page pinned by a few survivors) is thin: its owner gives it to
 * the region (pg_thinned) unless it allocates from it. */
#define PG_THIN 4u
static inline unsigned pg_thin(const Pgpage_t* d)
{
    unsigned t = pg_cap(d) >> 3;
    return t < PG_THIN ? t : PG_THIN;
}

static inline Pgseg_t* pg_seginfo(const Vmseg_t* seg) { return seg->mdata; }

/* Where page j of segment info has its first block. */
static inline size_t pg_start(const Pgseg_t* info, size_t j)
{
    return pg_start_kind(info->kind, j);
}

typedef struct pg_kind Pgkind_t;

/* One dirty page fewer. Pages leave the list at its head (reuse: the newest
 * first) or its tail (purge: the oldest), so the old ones, at the tail, are
 * the last to go: nold shrinks only when fewer pages than it are left. */
static inline void pg_dirty_dec(Pgkind_t* pk)
{
    if (--pk->ndirty < pk->nold)
        pk->nold = pk->ndirty;
}

static void pg_empty_unlink(Pgstate_t* pg, Pgpage_t* d)
{
    Pgkind_t* pk = &pg->kind[d->kind];
    if (d->dirty) {
        pg_unlink(&pk->empty, &pk->emptytail, d);
        pg_dirty_dec(pk);
    } else {
        pg_unlink(&pk->clean, NULL, d);
        pk->nclean--;
    }
}

/* Drop the content of an empty dirty page (page 0 keeps its first OS page:
 * the segment's headers). */
static void pg_purge(Pgstate_t* pg, Pgpage_t* d)
{
    Pgkind_t* pk = &pg->kind[d->kind];
    size_t psize = pg_psize(d->kind);
    size_t skip = pg_index_of(d) ? 0 : vm_os_pagesize();
    if (skip < psize)
        (void)vm_os_purge(pg_page_addr(d) + skip, psize - skip);
    pg_unlink(&pk->empty, &pk->emptytail, d);
    pg_dirty_dec(pk);
    d->dirty = 0;
    pg_push(&pk->clean, NULL, d);
    pk->nclean++;
}

static void pg_purge_to(Pgstate_t* pg, unsigned kind, size_t keep)
{
    Pgkind_t* pk = &pg->kind[kind];
    while (pk->ndirty > keep)
        pg_purge(pg, pk->emptytail);
}

static inline size_t pg_active(const Pgkind_t* pk) { return pk->npages - pk->ndirty - pk->nclean; }

/* Empty pages of a kind kept unpurged: PG_DIRTYMIN bytes, or half the
 * active pages. */
static size_t pg_dirty_limit(const Pgstate_t* pg, unsigned kind)
{
    size_t min = PG_DIRTYMIN / pg_psize(kind), half = pg_active(&pg->kind[kind]) / 2;
    return half > min ? half : min;
}

/* ---- page segments (locked) ---------------------------------------------- */

/* Pages [from, to) of the segment at first become empty, never-used pages
 * on the clean list, the lowest first; the segment counts them. */
static void pg_seg_add(Pgstate_t* pg, Pgseg_t* info, size_t from, size_t to)
{
    unsigned kind = info->kind;
    Pgkind_t* pk = &pg->kind[kind];
    for (size_t i = to; i-- > from;) {
        Pgpage_t* d = pg_desc(info->first, i);
        memset(d, 0, sizeof *d);
        d->state = PG_EMPTY;
        d->kind = (uint8_t)kind;
        pg_push(&pk->clean, NULL, d);
    }
    info->npages = (uint32_t)to;
    pk->nclean += to - from;
    pk->npages += to - from;
    pg->pagebytes += (to - from) * pg_psize(kind);
}

/* Map pages [from, to) of the segment at first to their descriptors: 0, or
 * with none of them mapped -2 (the map is missing, or the pages lie outside
 * it: window mode) or -1 (in strict overcommit the kernel refuses to open
 * their entries). */
static int pg_map_range(char* first, unsigned kind, size_t from, size_t to)
{
    char* lo = first + from * pg_psize(kind);
    char* hi = first + to * pg_psize(kind);
    if (pg_map_open() < 0 || ((uintptr_t)lo >> PG_SHIFT) < pg_mapv.base ||
        ((uintptr_t)hi >> PG_SHIFT) - pg_mapv.base > pg_mapv.n)
        return -2;
    size_t os = vm_os_pagesize();
    char* elo = (char*)((uintptr_t)pg_map_at(lo) & ~(uintptr_t)(os - 1));
    char* ehi = vm_ptr_up((char*)pg_map_at(hi), os);
    if (vm_os_commit(elo, (size_t)(ehi - elo)) < 0)
        return -1;
    for (size_t i = from; i < to; ++i)
        pg_map_set(first, kind, i, 1);
    return 0;
}

/* Grow the kind's newest segment in place by an eighth of its pages (at
 * least one), up to pg_maxseg pages: the arena then follows the pages in
 * use within ~1/8 instead of the x1.25 of a new segment. 1 if it grew, 0
 * if not. */
static int pg_grow_inplace(Vmalloc_t* vm, Pgstate_t* pg, Pgkind_t* pk)
{
    Pgseg_t* info = pk->grow;
    Vmseg_t* seg = info->seg;
    unsigned kind = info->kind;
    size_t psize = pg_psize(kind), np = info->npages;
    size_t add = np / 8 ? np / 8 : 1;
    if (np + add > pg_maxseg[kind])
        add = pg_maxseg[kind] - np;
    /* vm_seg_resize's size is data + minsize + VM_ALIGN, rounded. On any
     * failure (full, the span used up, the discipline's kept ranges to be
     * used first) pg_grow maps a new segment, which becomes the one to
     * grow. */
    size_t want = (size_t)(info->first - seg->data) + (np + add) * psize - VM_ALIGN;
    if (add == 0 || vm_seg_resize(vm, seg, want) < 0)
        return 0;
    size_t to = (size_t)(seg->end - info->first) / psize;
    if (to > pg_maxseg[kind])
        to = pg_maxseg[kind]; /* a granule may hold more pages than the descriptors */
    if (pg_map_range(info->first, kind, np, to) < 0)
        return 0; /* the segment keeps the bytes, unused until it goes */
    pg_seg_add(pg, info, np, to);
    pk->inplace = 1;
    return 1;
}

/* More empty pages of the kind: the growing segment grows in place, or a
 * new page segment comes (pg_minseg pages once segments have grown in place,
 * else x1.25 the last), its pages on the clean list. 0, or -1 with the
 * fault recorded. */
static int pg_grow(Vmalloc_t* vm, Pgstate_t* pg, unsigned kind)
{
    Pgkind_t* pk = &pg->kind[kind];
    vm_best_growing(vm);
    if (pk->grow && pg_grow_inplace(vm, pg, pk))
        return 0;
    if (pk->refused >= PG_REFUSALS)
        return -1; /* the kernel's placement and the map's window disagree */
    size_t psize = pg_psize(kind);
    size_t n = pk->inplace ? pg_minseg[kind] : pk->nextseg ? pk->nextseg : pg_minseg[kind];
    /* Vmdcsystem's aligned twin when the region is on Vmdcsystem. */
    Vmdisc_t* disc = vm->disc == &vm_dc_system ? &vm_dc_system_aligned : vm->disc;
    Vmseg_t* seg = vm_seg_get_from(vm, disc, n * psize - vm_seg_need(0, 0));
    if (!seg)
        return -1;
    /* Pages are the psize-aligned pieces of the segment; a segment header
     * may only precede page 0's counters. The aligned twin's are aligned. */
    char* first = vm_ptr_up(seg->addr, psize);
    size_t np = first + psize <= seg->end ? (size_t)(seg->end - first) / psize : 0;
    if (np > PG_MAXSEG)
        np = PG_MAXSEG; /* the descriptors must fit in page 0's first OS page */
    int mapped = np ? pg_map_range(first, kind, 0, np) : -1;
    if (mapped < 0) {
        pk->refused += mapped == -2;
        (void)vm_seg_put(vm, seg);
        vm_fault(vm, VM_NOMEM, (void*)(n * psize));
        return -1;
    }
    Pgseg_t* info = (Pgseg_t*)(first + PG_SEGINFO);
    info->nactive = 0;
    info->seg = seg;
    info->first = first;
    info->kind = kind;
    seg->mflags = SEG_PAGES;
    seg->mdata = info;
    pg_seg_add(pg, info, 0, np);
    size_t next = n + (n + 3) / 4;
    pk->nextseg = next > pg_maxseg[kind] ? pg_maxseg[kind] : next;
    pk->grow = info;
    return 0;
}

/* Give a wholly empty page segment back to its discipline. */
static void pg_release(Vmalloc_t* vm, Pgstate_t* pg, Vmseg_t* seg)
{
    Pgseg_t* info = pg_seginfo(seg);
    Pgkind_t* pk = &pg->kind[info->kind];
    size_t np = info->npages;
    char* first = info->first;
    unsigned kind = info->kind;
    if (pk->grow == info)
        pk->grow = NULL;
    for (size_t i = 0; i < np; ++i)
        pg_empty_unlink(pg, pg_desc(first, i));
    for (size_t i = 0; i < np; ++i)
        pg_map_set(first, kind, i, 0);
    pk->npages -= np;
    pg->pagebytes -= np * pg_psize(kind);
    if (vm_seg_put(vm, seg) == 0)
        return;
    /* The discipline keeps it: the pages stay ours, clean or not. */
    for (size_t i = 0; i < np; ++i) {
        Pgpage_t* d = pg_desc(first, i);
        pg_map_set(first, kind, i, 1);
        d->dirty = 1;
        pg_push(&pk->empty, &pk->emptytail, d);
        pk->ndirty++;
    }
    pk->npages += np;
    pg->pagebytes += np * pg_psize(kind);
}

/* Release every wholly empty page segment. Walk backwards: vm_seg_put
 * shifts the table's tail. */
static void pg_release_empty(Vmalloc_t* vm, Pgstate_t* pg)
{
    for (size_t i = vm->nsegs; i-- > 0;) {
        Vmseg_t* seg = vm->segs[i];
        if ((seg->mflags & SEG_PAGES) && pg_seginfo(seg)->nactive == 0)
            pg_release(vm, pg, seg);
    }
}

/* ---- pages ---------------------------------------------------------------- */

/* What malloc finds in a heap's class with no page: no free block. Never
 * written. */
static Pgpage_t pg_nopage;

static inline unsigned pg_used(const Pgpage_t* d) { return __atomic_load_n(&d->used, __ATOMIC_RELAXED); }
static inline void pg_set_used(Pgpage_t* d, unsigned n)
{
    __atomic_store_n(&d->used, (uint16_t)n, __ATOMIC_RELAXED);
}
static inline Pgheap_t* pg_owner(const Pgpage_t* d) { return __atomic_load_n(&d->owner, __ATOMIC_RELAXED); }

/* n blocks of bsize bytes more (or fewer: n < 0) busy in the region's
 * figures. Locked. */
static void pg_count(Vmalloc_t* vm, long n, size_t bsize)
{
    vm->n_busy += (size_t)n;
    vm->s_busy += (size_t)n * bsize;
    if (vm->s_busy > vm->max_busy)
        vm->max_busy = vm->s_busy;
}

static void pg_append(Pgpage_t** head, Pgpage_t** tail, Pgpage_t* d)
{
    d->next = NULL;
    d->prev = *tail;
    if (*tail)
        (*tail)->next = d;
    else
        *head = d;
    *tail = d;
}

/* An empty page made a page of class k, held by the region on no list.
 * Locked. */
static Pgpage_t* pg_assign(Vmalloc_t* vm, Pgstate_t* pg, unsigned k)
{
    unsigned kind = pg_kind_of(k);
    Pgkind_t* pk = &pg->kind[kind];
    Pgpage_t* d = pk->empty ? pk->empty : pk->clean;
    if (!d) {
        if (pg_grow(vm, pg, kind) < 0)
            return NULL;
        d = pk->clean;
    }
    pg_empty_unlink(pg, d);
    Pgseg_t* info = pg_info_of(d);
    d->vm = vm;
    d->free = NULL;
    __atomic_store_n(&d->xfree, 0, __ATOMIC_RELAXED);
    __atomic_store_n(&d->owner, NULL, __ATOMIC_RELAXED);
    size_t start = pg_start(info, pg_index_of(d));
    d->cls = (uint8_t)k;
    d->divc = pg_divc[k];
    d->base = (uint16_t)((uintptr_t)pg_page_addr(d) + start);
    pg_set_used(d, 0);
    pg_set_bump(d, 0);
    d->state = PG_ACTIVE;
    __atomic_store_n(&d->gone, 0, __ATOMIC_RELAXED);
    info->nactive++;
    return d;
}

/* Active page d, on no list, with no block out (used == 0, xfree empty):
 * back to the empty pages. Locked. */
static void pg_to_empty(Vmalloc_t* vm, Pgstate_t* pg, Pgpage_t* d)
{
    unsigned kind = d->kind;
    Pgkind_t* pk = &pg->kind[kind];
    d->vm = NULL;
    d->state = PG_EMPTY;
    d->dirty = 1;
    pg_push(&pk->empty, &pk->emptytail, d);
    pk->ndirty++;
    Pgseg_t* info = pg_info_of(d);
    if (--info->nactive == 0 && pk->ndirty + pk->nclean >= info->npages + pg_dirty_limit(pg, kind))
        pg_release(vm, pg, info->seg);
    pg_purge_to(pg, kind, pg_dirty_limit(pg, kind));
    vm_upkeep_note(vm);
}

/* A free list that met a block not keyed as free: a write after free, or a
 * double free from two threads at once that raced the check. The list
 * cannot be trusted past it: it is dropped, its blocks counted used for
 * good (a bounded leak) rather than handed out twice; vmdbcheck counts it.
 * The owner's, or locked. */
static void pg_damaged(Pgstate_t* pg, Pgpage_t* d)
{
    d->free = NULL;
    pg_set_used(d, pg_bump(d));
    __atomic_add_fetch(&pg->damaged, 1, __ATOMIC_RELAXED);
}

/* Move d's xfree onto its free list: the number of blocks moved (now no
 * longer used). Each block is checked first: one whose key or place is
 * wrong ends the list (the rest is lost, counted used). The owner's, or
 * locked for a held page. */
static uint32_t pg_collect(Pgstate_t* pg, Pgpage_t* d)
{
    if (!__atomic_load_n(&d->xfree, __ATOMIC_RELAXED))
        return 0;
    void* x = pg_xlist(__atomic_exchange_n(&d->xfree, 0, __ATOMIC_ACQUIRE));
    uint32_t n = 0, max = pg_used(d);
    void* last = NULL;
    for (void* b = x; b; b = *(void**)b) {
        if (n == max || pg_index(d, b) < 0 || pg_gone_at(d, b) || !pg_is_free(pg, b)) {
            __atomic_add_fetch(&pg->damaged, 1, __ATOMIC_RELAXED);
            break;
        }
        last = b;
        n++;
    }
    if (!last)
        return 0;
    *(void**)last = d->free;
    d->free = x;
    pg_set_used(d, pg_used(d) - n);
    return n;
}

/* pg_collect for the owner's malloc, on its page d whose free list is
 * empty (its first page, dry): the xfree list becomes the free list as it
 * is, its length taken from the xfree word, with no walk. Its blocks are
 * checked one by one as malloc hands them out (pg_heap_take), as the
 * owner's own frees are, instead of all at once here: the walk read every
 * block that another thread had freed, a line that thread last wrote, and
 * was 5% of the producer/consumer benchmark's samples. Pages the region
 * holds, and every other caller, keep the walk (their lists may be swept,
 * or handed out under the lock). */
static uint32_t pg_collect_dry(Pgstate_t* pg, Pgpage_t* d)
{
    if (d->free)
        return pg_collect(pg, d);
    if (!__atomic_load_n(&d->xfree, __ATOMIC_RELAXED))
        return 0;
    uintptr_t w = __atomic_exchange_n(&d->xfree, 0, __ATOMIC_ACQUIRE);
    uint32_t n = pg_xcount(w), used = pg_used(d);
    if (__builtin_expect(n > used, 0)) { /* cannot be: the word was written over */
        __atomic_add_fetch(&pg->damaged, 1, __ATOMIC_RELAXED);
        return 0;
    }
    d->free = pg_xlist(w);
    pg_set_used(d, used - n);
    return n;
}

/* Link up to PG_EXTEND bytes of d's never-used blocks, keyed as free, onto
 * its empty free list: how many. The owner's, or locked. */
static uint32_t pg_carve(const Pgstate_t* pg, Pgpage_t* d)
{
    unsigned bump = pg_bump(d), room = pg_cap(d) - bump;
    if (room == 0)
        return 0;
    size_t bsize = pg_bsize(d);
    unsigned n = PG_EXTEND / bsize;
    n = n == 0 ? 1 : n > room ? room : n;
    char* b = pg_block(d, bump);
    char* p = b;
    for (unsigned i = 0; i + 1 < n; ++i, p += bsize)
        pg_mark_free(pg, p, p + bsize);
    pg_mark_free(pg, p, d->free);
    d->free = b;
    pg_set_bump(d, bump + n);
    return n;
}

/* Push the keyed block p onto d's xfree (any thread): 1 if every block
 * out of d seems to be on it now (a hint, for pg_reclaim to check), else
 * 0. d's used count is read first: once p is on the list, the page may be
 * collected, emptied and its segment unmapped by another thread. */
__attribute__((noinline)) static int pg_xpush(Pgpage_t* d, void* p)
{
    unsigned used = pg_used(d);
    uintptr_t old = __atomic_load_n(&d->xfree, __ATOMIC_RELAXED), x;
    do {
        *(void**)p = pg_xlist(old);
        x = ((uintptr_t)(pg_xcount(old) + 1) << PG_XSHIFT) | (uintptr_t)p;
    } while (!__atomic_compare_exchange_n(&d->xfree, &old, x, 1, __ATOMIC_RELEASE, __ATOMIC_RELAXED));
    return pg_xcount(x) == used;
}

/* ---- held pages (locked) --------------------------------------------------- */

/* Collect held page d, with the region's figures; a page that changed ages
 * afresh. */
static void pg_collect_held(Vmalloc_t* vm, Pgstate_t* pg, Pgpage_t* d)
{
    uint32_t n = pg_collect(pg, d);
    if (n) {
        pg_count(vm, -(long)n, pg_bsize(d));
        d->state = PG_ACTIVE;
    }
}

static size_t pg_check_list(const Pgstate_t* pg, const Pgpage_t* d, void* b, size_t max,
                            uint64_t* map);

/* Mark d's carved blocks in its purged units in map (they are free). */
static void pg_map_gone(const Pgpage_t* d, unsigned bump, uint64_t* map)
{
    unsigned g = pg_gone(d), lo, hi;
    for (unsigned u = 0; g; ++u, g >>= 1)
        if (g & 1) {
            pg_unit_blocks(d, u, bump, &lo, &hi);
            for (unsigned i = lo; i < hi; ++i)
                map[i >> 6] |= (uint64_t)1 << (i & 63);
        }
}

/* Held page d is to hand out blocks (pg_held_room, the only way to a held
 * page's blocks and to its ownership): the blocks of its purged units go
 * back on its free list, in address order (writing their keys faults them
 * in again, as their use would), and it ages afresh. Locked. */
static void pg_relink(const Pgstate_t* pg, Pgpage_t* d)
{
    unsigned g = pg_gone(d), bump = pg_bump(d), lo, hi;
    for (unsigned u = PG_UNITS; g && u-- > 0;)
        if (g >> u & 1) {
            pg_unit_blocks(d, u, bump, &lo, &hi);
            for (unsigned i = hi; i-- > lo;) {
                void* b = pg_block(d, i);
                pg_mark_free(pg, b, d->free);
                d->free = b;
            }
        }
    __atomic_store_n(&d->gone, 0, __ATOMIC_RELAXED);
    d->state = PG_ACTIVE;
}

/* Purge the units (eighths) of held page d that hold no busy block; the
 * free blocks that start in them leave its list (the list lives in the
 * free blocks, which the purge zeroes). A page that one live block in
 * a thousand keeps active then costs an OS page or two, not 32 KiB. A list
 * that fails its check is left to the paths that report it. O(blocks of
 * d) and a madvise per run of units. Locked, d collected. */
static void pg_sweep(Pgstate_t* pg, Pgpage_t* d)
{
    uint64_t map[(PG_SIZE / 16 + 63) / 64];
    unsigned bump = pg_bump(d), g = pg_gone(d), sh = pg_ushift(d), lo, hi;
    size_t nfree = bump - pg_used(d) - pg_ngone(d, bump);
    if (nfree == 0 && bump == pg_cap(d))
        return; /* nothing free that is not already purged */
    memset(map, 0, sizeof map);
    if (pg_check_list(pg, d, d->free, nfree, map) != nfree)
        return;
    pg_map_gone(d, bump, map);
    unsigned fresh = 0;
    size_t start = pg_start_of(d), bsize = pg_bsize(d);
    for (unsigned u = 0; u < PG_UNITS; ++u) {
        size_t off = (size_t)u << sh;
        if ((g >> u & 1) || off < start)
            continue; /* purged already, or the segment's headers are there */
        /* Every block that overlaps the unit: the one the unit starts in too. */
        unsigned i = (unsigned)((off - start) / bsize);
        pg_unit_blocks(d, u, bump, &lo, &hi);
        while (i < hi && (map[i >> 6] >> (i & 63) & 1))
            ++i;
        if (i >= hi)
            fresh |= 1u << u;
    }
    if (!fresh)
        return;
    g |= fresh;
    for (void** pp = &d->free; *pp;) {
        void* b = *pp;
        if (g >> pg_unit_of(d, b) & 1)
            *pp = *(void**)b;
        else
            pp = (void**)b;
    }
    __atomic_store_n(&d->gone, (uint8_t)g, __ATOMIC_RELAXED);
    char* P = pg_page_addr(d);
    for (unsigned u = 0, v; u < PG_UNITS; u = v) {
        for (v = u + 1; (fresh >> u & 1) && v < PG_UNITS && (fresh >> v & 1);)
            ++v;
        if (fresh >> u & 1)
            (void)vm_os_purge(P + ((size_t)u << sh), (size_t)(v - u) << sh);
    }
}

/* A held page of class k with room, first on partial[k] (collected; those
 * looked at with none go to the tail), or a new one put there; NULL with
 * the fault recorded if there is no memory. */
static Pgpage_t* pg_held_room(Vmalloc_t* vm, Pgstate_t* pg, unsigned k)
{
    Pgpage_t* d;
    for (unsigned i = 0; i < PG_SCAN && (d = pg->partial[k]) != NULL; ++i) {
        pg_collect_held(vm, pg, d);
        if (pg_has_room(d)) {
            pg_relink(pg, d);
            return d;
        }
        if (d == pg->ptail[k])
            break;
        pg_unlink(&pg->partial[k], &pg->ptail[k], d);
        pg_append(&pg->partial[k], &pg->ptail[k], d);
    }
    if (!(d = pg_assign(vm, pg, k)))
        return NULL;
    pg_push(&pg->partial[k], &pg->ptail[k], d);
    return d;
}

/* Held page d lost its last block: to the empty pages, unless force is 0
 * and it is the only held page of its class (keeping it spares a new page
 * when the locked path allocates and frees one block over and over). */
static void pg_held_emptied(Vmalloc_t* vm, Pgstate_t* pg, Pgpage_t* d, int force)
{
    unsigned k = d->cls;
    if (!force && pg->partial[k] == d && !d->next)
        return;
    pg_unlink(&pg->partial[k], &pg->ptail[k], d);
    pg_to_empty(vm, pg, d);
}

/* Collect held page d; with no block out, it goes to the empty pages
 * (force as in pg_held_emptied). Locked. */
static void pg_held_settle(Vmalloc_t* vm, Pgstate_t* pg, Pgpage_t* d, int force)
{
    pg_collect_held(vm, pg, d);
    if (pg_used(d) == 0)
        pg_held_emptied(vm, pg, d, force);
}

/* The same for every held page. */
static void pg_collect_all_held(Vmalloc_t* vm, Pgstate_t* pg, int force)
{
    for (unsigned k = 0; k < PG_NCLASS; ++k)
        for (Pgpage_t *d = pg->partial[k], *next; d; d = next) {
            next = d->next;
            pg_held_settle(vm, pg, d, force);
        }
}

/* A block of class k for the locked path, from a held page (bump blocks
 * are not keyed); NULL with the fault recorded. Counted busy. */
static void* pg_take(Vmalloc_t* vm, Pgstate_t* pg, unsigned k)
{
    for (;;) {
        Pgpage_t* d = pg_held_room(vm, pg, k);
        if (!d)
            return NULL;
        void** b = d->free;
        if (b) {
            if (!pg_is_free(pg, b)) {
                unsigned used = pg_used(d);
                pg_damaged(pg, d);
                pg_count(vm, (long)pg_used(d) - (long)used, pg_bsize(d));
                continue;
            }
            d->free = b[0];
        } else {
            unsigned bump = pg_bump(d);
            b = pg_block(d, bump);
            pg_set_bump(d, bump + 1);
        }
        pg_set_used(d, pg_used(d) + 1);
        pg_count(vm, 1, pg_bsize(d));
        return b;
    }
}

/* One step of the held pages' ageing (collected first): those quiet since
 * the previous step are swept, the others now count as quiet; all: every
 * one not swept since its last change is swept now (vmcompact). 1 if some
 * wait for a later step. Locked. */
static int pg_age_held(Pgstate_t* pg, int all)
{
    int wait = 0;
    for (unsigned k = 0; k < PG_NCLASS; ++k)
        for (Pgpage_t* d = pg->partial[k]; d; d = d->next) {
            if (d->state == PG_SWEPT)
                continue;
            if (d->state == PG_ACTIVE && !all) {
                d->state = PG_AGED;
                wait = 1;
                continue;
            }
            pg_sweep(pg, d);
            d->state = PG_SWEPT;
        }
    return wait;
}

int pg_age(Vmalloc_t* vm, Pgstate_t* pg)
{
    pg_collect_all_held(vm, pg, 0);
    int wait = pg_age_held(pg, 0);
    for (unsigned kind = 0; kind < 2; ++kind) {
        Pgkind_t* pk = &pg->kind[kind];
        pg_purge_to(pg, kind, pk->ndirty - pk->nold);
        pk->nold = pk->ndirty;
    }
    pg_release_empty(vm, pg);
    return wait || pg->kind[0].ndirty + pg->kind[1].ndirty > 0;
}

/* ---- thread heaps ----------------------------------------------------------- */

static __thread Pgheap_t* pg_tls_first __attribute__((tls_model("initial-exec")));
/* What pg_tls_malloc is when the thread has no heap for malloc: a heap of
 * no region (vm NULL), which owns no page, so that malloc and free need no
 * test for NULL. Never written. */
static Pgheap_t pg_noheap;
/* The thread's heap of the region the malloc interface used last (one of
 * its list, never a VM_TRUST region's), or &pg_noheap: its calls reach it
 * with one load. */
static __thread Pgheap_t* pg_tls_malloc __attribute__((tls_model("initial-exec"))) = &pg_noheap;
static __thread int pg_tls_state __attribute__((tls_model("initial-exec"))); /* 1: key set; 2: exiting */
static pthread_key_t pg_tc_key;
static pthread_once_t pg_tc_once = PTHREAD_ONCE_INIT;

static inline Vmalloc_t* pg_heap_vm(const Pgheap_t* c) { return __atomic_load_n(&c->vm, __ATOMIC_ACQUIRE); }

/* The queue of class k of heap c (the owner's). */
static inline void pg_q_sync(Pgheap_t* c, unsigned k)
{
    Pgpage_t* d = c->head[k] ? c->head[k] : &pg_nopage;
    c->page[k] = d;
    if (pg_csize[k] <= PG_TABMAX) /* the sizes of class k, 16 at a time */
        for (size_t j = k ? pg_csize[k - 1] / 16u + 1 : 0; j <= pg_csize[k] / 16u; ++j)
            c->direct[j] = d;
}
static inline unsigned pg_q_count(const Pgheap_t* c, unsigned k)
{
    return __atomic_load_n(&c->npages[k], __ATOMIC_RELAXED);
}
static inline void pg_q_add(Pgheap_t* c, unsigned k, int n)
{
    __atomic_store_n(&c->npages[k], pg_q_count(c, k) + (unsigned)n, __ATOMIC_RELAXED);
}
/* Locked (the region lock). */
static void pg_q_push(Pgheap_t* c, unsigned k, Pgpage_t* d)
{
    pg_push(&c->head[k], &c->tail[k], d);
    pg_q_add(c, k, 1);
    pg_q_sync(c, k);
}
static void pg_q_unlink(Pgheap_t* c, unsigned k, Pgpage_t* d)
{
    pg_unlink(&c->head[k], &c->tail[k], d);
    pg_q_add(c, k, -1);
    pg_q_sync(c, k);
}
/* The first page to the tail: it has nothing to give now. The owner's,
 * without the region lock: under qlock, so that pg_reclaim never takes the
 * page that becomes first. */
static void pg_q_rotate(Pgheap_t* c, unsigned k)
{
    /* A queue of one page stays as it is, and only grows by the owner:
     * no lock (a dry single page made dot's replay take it 8,907 times). */
    if (pg_q_count(c, k) <= 1)
        return;
    pthread_mutex_lock(&c->qlock);
    Pgpage_t* d = c->head[k];
    if (d != c->tail[k]) {
        pg_unlink(&c->head[k], &c->tail[k], d);
        pg_append(&c->head[k], &c->tail[k], d);
        pg_q_sync(c, k);
    }
    pthread_mutex_unlock(&c->qlock);
}

/* Heap c takes held page d (on no list): its free blocks leave the
 * region's hands. Locked. */
static void pg_own(Vmalloc_t* vm, Pgheap_t* c, Pgpage_t* d)
{
    pg_count(vm, (long)(pg_cap(d) - pg_used(d)), pg_bsize(d));
    __atomic_store_n(&d->owner, c, __ATOMIC_RELAXED);
    pg_q_push(c, d->cls, d);
}

/* Page d, taken off its owner's queue, goes back to the region: held, or
 * empty if no block of it is out. Locked. */
static void pg_unown(Vmalloc_t* vm, Pgstate_t* pg, Pgpage_t* d)
{
    (void)pg_collect(pg, d);
    d->state = PG_ACTIVE;
    __atomic_store_n(&d->owner, NULL, __ATOMIC_RELAXED);
    pg_count(vm, -(long)(pg_cap(d) - pg_used(d)), pg_bsize(d));
    if (pg_used(d) == 0)
        pg_to_empty(vm, pg, d);
    else if (pg_has_room(d))
        pg_push(&pg->partial[d->cls], &pg->ptail[d->cls], d);
    else
        pg_append(&pg->partial[d->cls], &pg->ptail[d->cls], d);
}

/* Every page of heap c back to the region (thread exit). Locked. */
static void pg_disown(Vmalloc_t* vm, Pgstate_t* pg, Pgheap_t* c)
{
    for (unsigned k = 0; k < PG_NCLASS; ++k)
        for (Pgpage_t* d; (d = c->head[k]) != NULL;) {
            pg_q_unlink(c, k, d);
            pg_unown(vm, pg, d);
        }
}

/* The thread is ending: give every heap's pages back to its region. */
static void pg_thread_exit(void* arg)
{
    (void)arg;
    pg_tls_state = 2;
    pg_tls_malloc = &pg_noheap;
    pthread_mutex_lock(&vm_cache_lock);
    Pgheap_t* c = pg_tls_first;
    pg_tls_first = NULL;
    while (c) {
        Pgheap_t* next = c->tnext;
        Vmalloc_t* vm = pg_heap_vm(c);
        if (vm) {
            Pgstate_t* pg = c->pg;
            pthread_mutex_lock(&vm->lock);
            pg_disown(vm, pg, c);
            if (c->rprev)
                c->rprev->rnext = c->rnext;
            else
                pg->heaps = c->rnext;
            if (c->rnext)
                c->rnext->rprev = c->rprev;
            pthread_mutex_unlock(&vm->lock);
        }
        (void)vm_os_unmap(c, c->mapsize);
        c = next;
    }
    pthread_mutex_unlock(&vm_cache_lock);
}

/* vm_cache_lock is the core's, so that its fork handlers take it first. */
static void pg_tc_setup(void) { (void)pthread_key_create(&pg_tc_key, pg_thread_exit); }

/* A new heap for vm, on the region's list; NULL if no memory. Locked or
 * VM_TRUST. */
static Pgheap_t* pg_heap_new(Vmalloc_t* vm, Pgstate_t* pg)
{
    size_t size = vm_align_up(sizeof(Pgheap_t), vm_os_pagesize());
    Pgheap_t* c = vm_os_map(size);
    if (!c)
        return NULL;
    c->mapsize = size;
    c->pg = pg;
    c->key = pg->key;
    (void)pthread_mutex_init(&c->qlock, NULL);
    for (unsigned k = 0; k < PG_NCLASS; ++k)
        c->page[k] = &pg_nopage;
    for (unsigned j = 0; j < PG_NDIRECT; ++j)
        c->direct[j] = &pg_nopage;
    c->rnext = pg->heaps;
    if (pg->heaps)
        pg->heaps->rprev = c;
    pg->heaps = c;
    __atomic_store_n(&c->vm, vm, __ATOMIC_RELEASE);
    return c;
}

/* Under VM_TRUST one thread at a time uses the region: one heap, the
 * region's own, serves them all (no thread-exit hand-back needed). */
static Pgheap_t* pg_trust_heap(Vmalloc_t* vm, Pgstate_t* pg)
{
    if (!pg->trust)
        pg->trust = pg_heap_new(vm, pg);
    return pg->trust;
}

/* This thread's heap for vm, made if need be; NULL when the thread should
 * use the locked path (thread exiting, lock busy, no memory). */
__attribute__((noinline)) static Pgheap_t* pg_heap_find(Vmalloc_t* vm, Pgstate_t* pg)
{
    if (vm->flags & VM_TRUST)
        return pg_trust_heap(vm, pg);
    if (pg_tls_state == 2)
        return NULL;
    Pgheap_t** pp = &pg_tls_first;
    for (Pgheap_t* c; (c = *pp) != NULL;) {
        Vmalloc_t* cv = pg_heap_vm(c);
        if (cv == vm) {
            *pp = c->tnext; /* to the front */
            c->tnext = pg_tls_first;
            pg_tls_first = c;
            return c;
        }
        if (!cv) { /* its region was closed: nobody else knows it now */
            *pp = c->tnext;
            if (c == pg_tls_malloc)
                pg_tls_malloc = &pg_noheap;
            (void)vm_os_unmap(c, c->mapsize);
            continue;
        }
        pp = &c->tnext;
    }
    (void)pthread_once(&pg_tc_once, pg_tc_setup);
    if (pthread_mutex_trylock(&vm_cache_lock) != 0)
        return NULL;
    pthread_mutex_lock(&vm->lock);
    Pgheap_t* c = pg_heap_new(vm, pg);
    pthread_mutex_unlock(&vm->lock);
    if (c) {
        c->tnext = pg_tls_first;
        pg_tls_first = c;
        if (pg_tls_state == 0) {
            pg_tls_state = 1;
            (void)pthread_setspecific(pg_tc_key, (void*)1);
        }
    }
    pthread_mutex_unlock(&vm_cache_lock);
    return c;
}

/* The calling thread's heap of vm if it has one (made by no one). */
static Pgheap_t* pg_heap_mine(Vmalloc_t* vm, Pgstate_t* pg)
{
    if (vm->flags & VM_TRUST)
        return pg->trust;
    for (Pgheap_t* c = pg_tls_first; c; c = c->tnext)
        if (pg_heap_vm(c) == vm)
            return c;
    return NULL;
}

/* The region of heap c as a fast path may read it: set before c is
 * published, cleared (NULL) when the region closes. */
static inline Vmalloc_t* pg_heap_vm_relaxed(const Pgheap_t* c)
{
    return __atomic_load_n(&c->vm, __ATOMIC_RELAXED);
}

/* c if it is a heap of vm (c may be NULL, or a dead heap), else NULL. */
static inline Pgheap_t* pg_heap_if(Pgheap_t* c, const Vmalloc_t* vm)
{
    return c && pg_heap_vm_relaxed(c) == vm ? c : NULL;
}

static inline Pgheap_t* pg_heap(Vmalloc_t* vm, Pgstate_t* pg)
{
    Pgheap_t* c = pg_heap_if(pg_tls_first, vm);
    return __builtin_expect(c != NULL, 1) ? c : pg_heap_find(vm, pg);
}

void pg_close(Vmalloc_t* vm, Pgstate_t* pg)
{
    /* Its pages stop being pages before the discipline takes them back. */
    for (size_t i = 0; i < vm->nsegs; ++i) {
        Vmseg_t* seg = vm->segs[i];
        if (seg->mflags & SEG_PAGES)
            for (size_t j = 0; j < pg_seginfo(seg)->npages; ++j)
                pg_map_set(pg_seginfo(seg)->first, pg_seginfo(seg)->kind, j, 0);
    }
    pthread_mutex_lock(&vm_cache_lock);
    for (Pgheap_t *c = pg->heaps, *next; c; c = next) {
        next = c->rnext;
        if (c == pg->trust)
            (void)vm_os_unmap(c, c->mapsize); /* in no thread's list */
        else
            __atomic_store_n(&c->vm, NULL, __ATOMIC_RELEASE); /* its thread frees it */
    }
    pg->heaps = NULL;
    pg->trust = NULL;
    pthread_mutex_unlock(&vm_cache_lock);
}

/* What other threads freed to the calling thread's pages and to the held
 * ones, collected, so that what the region reports is exact for a single
 * thread. Locked. */
static void pg_flush_mine(Vmalloc_t* vm, Pgstate_t* pg)
{
    Pgheap_t* c = pg_heap_mine(vm, pg);
    if (c)
        for (unsigned k = 0; k < PG_NCLASS; ++k)
            for (Pgpage_t* d = c->head[k]; d; d = d->next)
                (void)pg_collect(pg, d);
    pg_collect_all_held(vm, pg, 0);
}

/* ---- lock-free entry points ---------------------------------------------- */

static void* pg_alloc_slow(Vmalloc_t* vm, Pgheap_t* c, unsigned k);
static void pg_thinned(Vmalloc_t* vm, Pgheap_t* c, Pgpage_t* d, unsigned k, const void* p);

/* A block of class k from heap c: the first of its first page's free list.
 * Its key is checked again (free checked it before pushing): a write after
 * free that broke the list is caught here, on a line the free wrote, before
 * the list is followed. NULL if that page has no block, or a damaged one. */
static inline void* pg_page_take(const Pgheap_t* c, Pgpage_t* d)
{
    void** b = d->free;
    if (__builtin_expect(b == NULL || ((uint64_t*)b)[1] != pg_hash(c->key, b), 0))
        return NULL; /* dry, or damaged: the slow half's business */
    d->free = b[0];
    __atomic_store_n(&d->used, (uint16_t)(d->used + 1u), __ATOMIC_RELAXED); /* the owner's */
    ((uint64_t*)b)[1] = 0;
    return b;
}
static inline void* pg_heap_take(Pgheap_t* c, unsigned k) { return pg_page_take(c, c->page[k]); }

/* Heap c's first page for a request of n <= PG_MAXCLASS bytes: the common
 * sizes by direct[], which spares the class. */
static inline Pgpage_t* pg_heap_page(const Pgheap_t* c, size_t n)
{
    return __builtin_expect(n <= PG_TABMAX, 1) ? c->direct[(n + 15) >> 4] : c->page[pg_class_of(n)];
}

/* The same, or from the slow half (pg_alloc_slow) when the first page is
 * dry or damaged. */
static inline void* pg_heap_pop(Vmalloc_t* vm, Pgheap_t* c, unsigned k)
{
    void* b = pg_heap_take(c, k);
    return __builtin_expect(b != NULL, 1) ? b : pg_alloc_slow(vm, c, k);
}

/* Page d of vm, owned by another thread's heap (or held), had its last
 * block out pushed onto its xfree: no one uses it, and its owner may never
 * look at it again (a thread that built the data its workers free, then
 * waits for them, pinned 30 of the soak's 70 MiB that way). Unless it is
 * the first of its queue (the owner's next malloc reads it), it goes back
 * to the region, empty. The region lock keeps the owner's heap alive and its
 * queues still but for the owner's rotation, which qlock excludes; the
 * owner touches a page that is not first only to free a block of it, and
 * it has none. Locked (pg_free) or not (pg_give_other). */
static void pg_reclaim_locked(Vmalloc_t* vm, Pgstate_t* pg, Pgpage_t* d)
{
    if (d->vm != vm)
        return;
    Pgheap_t* c = pg_owner(d);
    if (!c) { /* held: the same, with no owner to ask */
        pg_held_settle(vm, pg, d, 0);
        return;
    }
    unsigned k = d->cls;
    int take = 0;
    /* Only tried: the owner rotates for a few instructions, and a child of
     * fork may hold the lock of a thread that is gone. */
    if (pthread_mutex_trylock(&c->qlock) != 0)
        return;
    unsigned used = __atomic_load_n(&d->used, __ATOMIC_ACQUIRE);
    if (c->head[k] != d && used != 0 && pg_xcount(pg_xword(d)) == used) {
        pg_unlink(&c->head[k], &c->tail[k], d); /* not first: page[k] stays */
        pg_q_add(c, k, -1);
        take = 1;
    }
    pthread_mutex_unlock(&c->qlock);
    if (take)
        pg_unown(vm, pg, d); /* collects: no block out, so to the empty pages */
}

/* The same, unlocked, for the page d that p was pushed to: d is read only
 * if it is still p's page (it may have been emptied and unmapped since). */
__attribute__((noinline)) static void pg_reclaim(Vmalloc_t* vm, Pgpage_t* d, const void* p)
{
    pthread_mutex_lock(&vm->lock);
    if (pg_page_of(p) == d)
        pg_reclaim_locked(vm, vm_state(vm), d);
    pthread_mutex_unlock(&vm->lock);
}

/* p, a busy block of page d, freed by a thread that does not own d: onto
 * its xfree, keyed key. A page left with no block out goes back
 * (pg_reclaim), so a held page empties at its last block, as it did while
 * its owner freed to it, without waiting for a collection. */
__attribute__((noinline)) static void pg_give_other(Vmalloc_t* vm, Pgpage_t* d, void* p,
                                                     uint64_t key)
{
    ((uint64_t*)p)[1] = key;
    if (pg_xpush(d, p))
        pg_reclaim(vm, d, p);
}

/* Has page d just become thin (or empty), with used blocks out? One compare
 * for the common case, as pg_thin(d) <= PG_THIN. (A function of its own, not
 * the expression inline: gcc then keeps the branch's arguments off free's
 * fast path, 42 instructions instead of 43.) */
static inline int pg_thin_at(const Pgpage_t* d, unsigned used)
{
    return __builtin_expect(used <= PG_THIN, 0) && (used == 0 || used == pg_thin(d));
}

/* p, a busy block of page d that its owner frees, onto d's free list,
 * keyed key: 1 if d has just become thin (or empty), with its region in
 * *vm and its class in *k, for the caller to hand it back (pg_thinned, or
 * pg_thin_first and pg_thinned_locked under the region lock). d is read
 * only before the count is stored: from then on, if every other block out
 * is on xfree, pg_reclaim may take the page, empty it and (a tick later)
 * unmap its segment. */
static inline int pg_own_put(Pgpage_t* d, void* p, uint64_t key, Vmalloc_t** vm, unsigned* k)
{
    ((uint64_t*)p)[1] = key;
    ((void**)p)[0] = d->free;
    d->free = p;
    uint16_t used = (uint16_t)(d->used - 1u);
    int thin = pg_thin_at(d, used);
    if (thin) {
        *vm = d->vm;
        *k = d->cls;
    }
    /* Release: pg_reclaim, seeing the count, sees the list too. */
    __atomic_store_n(&d->used, used, __ATOMIC_RELEASE);
    return thin;
}

/* The same for heap c's lock-free free: a page left thin goes back to the
 * region. (Its thin test is inline: out of line it saved every free 2
 * instructions of the branch's arguments, and cost the sqlite replay 4.5M
 * more in calls than it saved: pages with a few blocks out are common.) */
static inline void pg_own_push(Pgheap_t* c, Pgpage_t* d, void* p, uint64_t key)
{
    Vmalloc_t* vm;
    unsigned k;
    if (pg_own_put(d, p, key, &vm, &k))
        pg_thinned(vm, c, d, k, p);
}

/* p, a busy block of page d keyed key, freed by heap c: onto d's free list
 * if c owns d, else onto its xfree. */
static inline void pg_heap_give(Vmalloc_t* vm, Pgheap_t* c, Pgpage_t* d, void* p, uint64_t key)
{
    if (__builtin_expect(pg_owner(d) != c, 0)) {
        pg_give_other(vm, d, p, key);
        return;
    }
    pg_own_push(c, d, p, key);
}

/* Free p for heap c, which owns p's page d (pg_owns): 0, or 1 if p is not
 * a busy block there (the caller's general path decides and reports). The
 * owner's fast path: no lock, and only pg_own_busy's two checks. */
static inline int pg_own_free(Pgheap_t* c, Pgpage_t* d, void* p)
{
    uint64_t key = pg_hash(c->key, p);
    if (!pg_mine_busy(d, p, key))
        return 1;
    pg_own_push(c, d, p, key);
    return 0;
}

/* Is d (or NULL) a page of vm that heap c, the thread's (not NULL: a held
 * page's owner is NULL), owns? Reads d's owner, which becomes c, or stops
 * being c, only by c's thread. c may be another region's heap, a dead one
 * or pg_noheap: then it owns no page. */
static inline int pg_owns(const Pgheap_t* c, const Pgpage_t* d, const Vmalloc_t* vm)
{
    return __builtin_expect(d != NULL && pg_owner(d) == c && d->vm == vm, 1);
}

/* Is p, in page d (the page map's, or NULL), a busy block of vm, asked by
 * the thread's heap c of vm? On c's own page the owner's test suffices
 * (see pg_own_free). */
static inline int pg_busy_for(Vmalloc_t* vm, Pgheap_t* c, Pgpage_t* d, const void* p)
{
    if (pg_owns(c, d, vm))
        return pg_mine_busy(d, p, pg_hash(c->key, p));
    return d && pg_busy(vm, c->pg, d, p);
}

/* The key p, in vm's page d (anyone's), gets when heap c frees it; 0 if p
 * is not a busy block there (the locked path decides and reports): as
 * pg_own_busy, and a held page's purged blocks are free too (they read as
 * zeros). Keys are odd. */
static inline uint64_t pg_push_key(const Pgheap_t* c, const Pgpage_t* d, const void* p)
{
    if (__builtin_expect(pg_gone(d) != 0, 0) && pg_gone_at(d, p))
        return 0;
    uint64_t key = pg_hash(c->key, p);
    return pg_own_busy(d, p, key) ? key : 0;
}

/* Free p, in vm's page d, for heap c: 0; 1 if p is not a busy block there. */
static inline int pg_heap_push(Vmalloc_t* vm, Pgheap_t* c, Pgpage_t* d, void* p)
{
    uint64_t key = pg_push_key(c, d, p);
    if (!key)
        return 1;
    pg_heap_give(vm, c, d, p, key);
    return 0;
}

/* Heap c has no page of class k with a block: one from the region (a held
 * page with room, or an empty one), first in its queue. 0, or -1 if there
 * is no memory (the locked path will try again and report). */
__attribute__((noinline)) static int pg_adopt(Vmalloc_t* vm, Pgheap_t* c, unsigned k)
{
    Pgstate_t* pg = c->pg;
    pthread_mutex_lock(&vm->lock);
    Pgpage_t* d = pg_held_room(vm, pg, k);
    if (d) {
        pg_unlink(&pg->partial[k], &pg->ptail[k], d);
        pg_own(vm, c, d);
    }
    (void)vm_best_tick(vm);
    vm->fault = 0;
    pthread_mutex_unlock(&vm->lock);
    vm_upkeep_poll();
    return d ? 0 : -1;
}

/* An epoch of heap c's slow path has ended: the first pages its frees
 * emptied in the epoch before, not again in this one, and that are still
 * empty, go back to the region (a class a program has stopped using would
 * keep its page for good: a block grown through the classes by realloc
 * left one in each). A page emptied in every epoch is in use and stays: a
 * block allocated and freed over and over costs no take (retiring pages
 * emptied again made awk's replay 1.1% more instructions, in pg_adopt).
 * mimalloc retires its pages after a count of slow calls too. */
#define PG_RETIRE 16
__attribute__((noinline)) static void pg_retire(Vmalloc_t* vm, Pgheap_t* c, unsigned keep)
{
    uint64_t old = c->retold & ~c->retnew & ~((uint64_t)1 << keep);
    c->retold = c->retnew;
    c->retnew = 0;
    if (!old)
        return;
    Pgstate_t* pg = c->pg;
    pthread_mutex_lock(&vm->lock);
    for (; old; old &= old - 1) {
        unsigned k = (unsigned)__builtin_ctzll(old);
        Pgpage_t* d = c->head[k];
        if (d && pg_used(d) == 0) {
            pg_q_unlink(c, k, d);
            pg_unown(vm, pg, d);
        }
    }
    pthread_mutex_unlock(&vm->lock);
}

/* The first page of c's class k had no block, or a damaged one. */
__attribute__((noinline)) static void* pg_alloc_slow(Vmalloc_t* vm, Pgheap_t* c, unsigned k)
{
    Pgstate_t* pg = c->pg;
    if (++c->slowcalls % PG_RETIRE == 0 && (c->retold | c->retnew))
        pg_retire(vm, c, k);
    if (c->page[k]->free) /* its first block's key is broken */
        pg_damaged(pg, c->page[k]);
    unsigned npages = pg_q_count(c, k);
    for (unsigned n = npages < PG_SCAN + 1 ? npages : PG_SCAN + 1; n > 0; --n) {
        Pgpage_t* d = c->head[k];
        (void)pg_collect_dry(pg, d);
        if (d->free || pg_carve(pg, d))
            return pg_heap_pop(vm, c, k);
        pg_q_rotate(c, k);
    }
    if (pg_adopt(vm, c, k) < 0)
        return NULL;
    return pg_heap_pop(vm, c, k);
}

/* The owner freed the last block of d, or all but an eighth of them: back
 * to the region, unless it is the first of its queue (malloc's next page:
 * keeping it spares a take when one block is allocated and freed over and
 * over). An empty page joins the empty ones; a thin one is held, where the
 * timed upkeep can purge its free parts if nobody takes it (an owned page
 * only its owner may touch, and an idle owner never would). A page the
 * owner does not allocate from only thins, so this happens at most once
 * each time it has been the first.
 * pg_thin_first: 1 if d, of class k, is the first of its queue, and stays
 * (noted for pg_retire if empty); 0 if it goes, by pg_thinned_locked. Reads
 * d only when it is first, which pg_reclaim never takes. */
static int pg_thin_first(Pgheap_t* c, Pgpage_t* d, unsigned k)
{
    if (c->head[k] != d)
        return 0;
    if (pg_used(d) == 0)
        c->retnew |= (uint64_t)1 << k; /* pg_retire's to look at */
    return 1;
}

/* Page d, thin and not first, leaves heap c's queue. Locked. */
static void pg_thinned_locked(Vmalloc_t* vm, Pgheap_t* c, Pgpage_t* d)
{
    if (pg_owner(d) != c) /* pg_reclaim took it meanwhile */
        return;
    pg_q_unlink(c, d->cls, d);
    pg_unown(vm, c->pg, d);
    if (d->state != PG_EMPTY)
        vm_upkeep_note(vm);
}

/* The lock-free free's half, for the block p just freed to d: d is looked
 * at under the lock only if it is still p's page (as in pg_reclaim, which
 * may have emptied it, and a tick unmapped it, since). */
__attribute__((noinline)) static void pg_thinned(Vmalloc_t* vm, Pgheap_t* c, Pgpage_t* d,
                                                  unsigned k, const void* p)
{
    if (pg_thin_first(c, d, k))
        return;
    pthread_mutex_lock(&vm->lock);
    if (pg_page_of(p) == d)
        pg_thinned_locked(vm, c, d);
    (void)vm_best_tick(vm);
    pthread_mutex_unlock(&vm->lock);
}

/* The slow halves of the lock-free entries, out of line so that the fast
 * halves reach them by tail calls and save no registers. */

/* The thread's heap of vm is not the first of its list (or there is none). */
__attribute__((noinline)) static void* pg_alloc_find(Vmalloc_t* vm, size_t size)
{
    Pgstate_t* pg = vm_state(vm);
    if (!__atomic_load_n(&pg->on, __ATOMIC_ACQUIRE))
        return NULL;
    Pgheap_t* c = pg_heap_find(vm, pg);
    return c ? pg_heap_pop(vm, c, pg_class(size)) : NULL;
}

__attribute__((noinline)) static int pg_free_find(Vmalloc_t* vm, Pgpage_t* d, void* p)
{
    Pgheap_t* c = pg_heap_find(vm, vm_state(vm));
    return c ? pg_heap_push(vm, c, d, p) : 1;
}

void* pg_fastallocf(Vmalloc_t* vm, size_t size, size_t align)
{
    if (__builtin_expect(size > PG_MAXCLASS || align > VM_ALIGN, 0))
        return NULL;
    /* A heap of vm exists only while vm uses pages (on never changes). The
     * first of the thread's list is the common case: a program allocates
     * mostly from one region. */
    Pgheap_t* c = pg_heap_if(pg_tls_first, vm);
    if (__builtin_expect(!c, 0))
        return pg_alloc_find(vm, size);
    return pg_heap_pop(vm, c, pg_class(size));
}

/* The page of p, or NULL: the first step of both lock-free frees, which
 * then ask whether the thread's heap owns it (pg_owns). */
static inline Pgpage_t* pg_free_page(void* p)
{
    /* The key check reads p's line, a cache miss for a block freed long
     * after its last use: start fetching it while the page is looked up (a
     * prefetch of a bad address is harmless). */
    __builtin_prefetch(p, 1);
    return pg_page_of(p);
}

/* pg_fastfreef when the thread's first heap does not own p's page d. */
__attribute__((noinline)) static int pg_free_other(Vmalloc_t* vm, Pgpage_t* d, void* p)
{
    if (!d || d->vm != vm)
        return 1;
    Pgheap_t* c = pg_heap_if(pg_tls_first, vm);
    return c ? pg_heap_push(vm, c, d, p) : pg_free_find(vm, d, p);
}

int pg_fastfreef(Vmalloc_t* vm, void* p)
{
    Pgpage_t* d = pg_free_page(p);
    Pgheap_t* c = pg_tls_first;
    if (__builtin_expect(c != NULL, 1) && pg_owns(c, d, vm))
        return pg_own_free(c, d, p);
    return pg_free_other(vm, d, p);
}

/* The tail entries (vmhdr.h): the same as fastallocf and fastfreef, with
 * the core's locked path reached by tail calls. */

/* A VM_TRUST region's one heap (pg_trust_heap), or NULL. It is in no
 * thread's list, so the tail entries look for it first when the list's
 * first heap is not vm's: without it a trusted region, which takes no
 * lock, ran the random pattern slower than a locked one. The region's
 * callers serialize their calls, so the pointer is read as any of its
 * state. */
static inline Pgheap_t* pg_trust_of(Vmalloc_t* vm)
{
    return vm->flags & VM_TRUST ? ((Pgstate_t*)vm_state(vm))->trust : NULL;
}

__attribute__((noinline)) static void* pg_tail_alloc_dry(Vmalloc_t* vm, size_t size, void* caller,
                                                        Pgheap_t* c)
{
    void* p = pg_alloc_slow(vm, c, pg_class(size));
    return p ? p : vm_alloc_locked(vm, size, caller);
}

/* What pg_tailallocf leaves: sizes over PG_TABMAX, and a thread whose
 * first heap is not vm's (a trusted region's one heap, another of its
 * list, or none yet). */
__attribute__((noinline)) static void* pg_tail_alloc_other(Vmalloc_t* vm, size_t size,
                                                          void* caller)
{
    if (size > PG_MAXCLASS)
        return vm_alloc_locked(vm, size, caller);
    Pgheap_t* c = pg_heap_if(pg_tls_first, vm);
    if (!c && !(c = pg_trust_of(vm))) {
        void* p = pg_alloc_find(vm, size);
        return p ? p : vm_alloc_locked(vm, size, caller);
    }
    void* b = pg_page_take(c, pg_heap_page(c, size));
    return b ? b : pg_tail_alloc_dry(vm, size, caller, c);
}

void* pg_tailallocf(Vmalloc_t* vm, size_t size, void* caller)
{
    Pgheap_t* c = pg_heap_if(pg_tls_first, vm);
    if (__builtin_expect(!c || size > PG_TABMAX, 0))
        return pg_tail_alloc_other(vm, size, caller);
    void* b = pg_page_take(c, c->direct[(size + 15) >> 4]);
    return __builtin_expect(b != NULL, 1) ? b : pg_tail_alloc_dry(vm, size, caller, c);
}

__attribute__((noinline)) static int pg_tail_free_other(Vmalloc_t* vm, Pgpage_t* d, void* p,
                                                        void* caller)
{
    Pgheap_t* c = pg_trust_of(vm);
    int r = c && pg_owns(c, d, vm) ? pg_own_free(c, d, p) : pg_free_other(vm, d, p);
    return r == 0 ? 0 : vm_free_locked(vm, p, caller);
}

int pg_tailfreef(Vmalloc_t* vm, void* p, void* caller)
{
    Pgpage_t* d = pg_free_page(p);
    Pgheap_t* c = pg_tls_first;
    if (__builtin_expect(c != NULL, 1) && pg_owns(c, d, vm)) {
        if (__builtin_expect(pg_own_free(c, d, p) == 0, 1))
            return 0;
        return vm_free_locked(vm, p, caller);
    }
    return pg_tail_free_other(vm, d, p, caller);
}

/* ---- the malloc interface's entries (vmhdr.h) ---------------------------- */

/* The malloc interface's region is not the one of pg_tls_malloc: find the
 * thread's heap of it if it is a Vmbest region using pages. */
__attribute__((noinline)) static Pgheap_t* pg_malloc_find(Vmalloc_t* vm)
{
    if (vm->meth != &vm_best_method || (vm->flags & VM_TRUST))
        return NULL;
    Pgstate_t* pg = vm_state(vm);
    if (!__atomic_load_n(&pg->on, __ATOMIC_ACQUIRE))
        return NULL;
    Pgheap_t* c = pg_heap_find(vm, pg);
    if (c)
        pg_tls_malloc = c;
    return c;
}

Vm_malloc_else_f vm_malloc_else;
Vm_free_else_f vm_free_else;

/* Free p for heap c of vm (its page d), or pass it to the general path. */
static inline void pg_free_else(Vmalloc_t* vm, Pgheap_t* c, Pgpage_t* d, void* p, void* caller)
{
    uint64_t key = pg_push_key(c, d, p);
    if (__builtin_expect(!key, 0)) {
        vm_free_else(p, caller);
        return;
    }
    pg_heap_give(vm, c, d, p, key);
}

__attribute__((noinline)) static void pg_free_malloc_find(void* p, void* caller, Vmalloc_t* vm,
                                                          Pgpage_t* d)
{
    Pgheap_t* c = pg_malloc_find(vm);
    if (!c) {
        vm_free_else(p, caller);
        return;
    }
    pg_free_else(vm, c, d, p, caller);
}

__attribute__((noinline)) static void* pg_malloc_slow(size_t size, void* caller, Vmalloc_t* vm)
{
    Pgheap_t* c = size <= PG_MAXCLASS ? pg_malloc_find(vm) : NULL;
    void* p = c ? pg_heap_pop(vm, c, pg_class(size)) : NULL;
    return p ? p : vm_malloc_else(size, caller);
}

/* pg_heap_pop's slow half for malloc: the general path has its turn when
 * it finds no block. It finds the heap and class again rather than take
 * them: malloc's fast half then keeps its class in no second register. */
__attribute__((noinline)) static void* pg_malloc_dry(size_t size, void* caller, Vmalloc_t* vm)
{
    void* p = pg_alloc_slow(vm, pg_tls_malloc, pg_class(size));
    return p ? p : vm_malloc_else(size, caller);
}

void* vm_best_malloc(size_t size, void* caller, Vmalloc_t* vm)
{
    Pgheap_t* c = pg_tls_malloc; /* never NULL */
    if (__builtin_expect(pg_heap_vm_relaxed(c) != vm, 0))
        return pg_malloc_slow(size, caller, vm);
    if (__builtin_expect(size > PG_TABMAX, 0) && size > PG_MAXCLASS)
        return pg_malloc_slow(size, caller, vm);
    /* pg_heap_pop, with pg_malloc_dry for its slow half. */
    void* b = pg_page_take(c, pg_heap_page(c, size));
    return __builtin_expect(b != NULL, 1) ? b : pg_malloc_dry(size, caller, vm);
}

/* vm_best_free when the thread's malloc heap does not own p's page d: a
 * page of another thread or held (p goes to xfree, or under the lock), or
 * of another region, or no page. */
__attribute__((noinline)) static void pg_free_malloc_other(void* p, void* caller, Vmalloc_t* vm,
                                                           Pgpage_t* d)
{
    /* d->vm is set only while the page is active (pg_check verifies it). */
    if (!d || d->vm != vm) {
        vm_free_else(p, caller);
        return;
    }
    Pgheap_t* c = pg_heap_if(pg_tls_malloc, vm);
    if (!c) {
        pg_free_malloc_find(p, caller, vm, d);
        return;
    }
    pg_free_else(vm, c, d, p, caller);
}

void vm_best_free(void* p, void* caller, Vmalloc_t* vm)
{
    Pgpage_t* d = pg_free_page(p);
    Pgheap_t* c = pg_tls_malloc;
    if (pg_owns(c, d, vm)) {
        if (__builtin_expect(pg_own_free(c, d, p) != 0, 0))
            vm_free_else(p, caller);
        return;
    }
    pg_free_malloc_other(p, caller, vm, d);
}

/* The resize of p, busy block of vm in page d (of old usable bytes), that
 * does not stay: to a block of another class, or NULL (the locked path: a
 * best-fit block for one growing out of the pages, or no memory). Out of
 * line, so that the in-place answer saves no registers. */
__attribute__((noinline)) static void* pg_resize_move(Vmalloc_t* vm, Pgheap_t* c, Pgpage_t* d,
                                                      void* p, size_t size, size_t old)
{
    size_t want = pg_resize_want(old, size);
    if (pg_grows_out(old, want))
        return NULL;
    void* q = pg_heap_pop(vm, c, pg_class(want));
    if (!q)
        return NULL;
    memcpy(q, p, size < old ? size : old);
    pg_heap_give(vm, c, d, p, pg_hash(c->key, p)); /* p was validated by the caller */
    return q;
}

/* The resize of p, a busy block of vm, with the thread's heap c of vm
 * (see fastresizef): p itself, a moved block, or NULL (p is no busy block
 * of vm's pages, or see pg_resize_move). */
static inline void* pg_resize_in(Vmalloc_t* vm, Pgheap_t* c, void* p, size_t size)
{
    Pgpage_t* d = pg_page_of(p);
    if (!pg_busy_for(vm, c, d, p))
        return NULL;
    size_t old = pg_bsize(d);
    if (__builtin_expect(pg_resize_stays(old, size), 1))
        return p;
    return pg_resize_move(vm, c, d, p, size, old);
}

void* pg_fastresizef(Vmalloc_t* vm, void* p, size_t size)
{
    Pgheap_t* c = pg_heap(vm, vm_state(vm));
    return c ? pg_resize_in(vm, c, p, size) : NULL;
}

Vm_realloc_else_f vm_realloc_else;

/* vm_best_realloc's halves off the in-place path, and then the general
 * path when they give no block. pg_realloc_other: p is not in a page heap c
 * (the thread's heap of vm, or NULL: find it) owns. */
__attribute__((noinline)) static void* pg_realloc_other(void* p, size_t size, void* caller,
                                                        Vmalloc_t* vm, Pgheap_t* c)
{
    if (!c)
        c = pg_malloc_find(vm);
    void* q = c ? pg_resize_in(vm, c, p, size) : NULL;
    return q ? q : vm_realloc_else(p, size, caller);
}

/* p, busy in page d that heap c owns, moves. */
__attribute__((noinline)) static void* pg_realloc_move(void* p, size_t size, void* caller,
                                                       Vmalloc_t* vm, Pgheap_t* c, Pgpage_t* d)
{
    void* q = pg_resize_move(vm, c, d, p, size, pg_bsize(d));
    return q ? q : vm_realloc_else(p, size, caller);
}

void* vm_best_realloc(void* p, size_t size, void* caller, Vmalloc_t* vm)
{
    Pgheap_t* c = pg_tls_malloc; /* never NULL */
    if (__builtin_expect(pg_heap_vm_relaxed(c) != vm, 0))
        return pg_realloc_other(p, size, caller, vm, NULL);
    /* pg_resize_in, with the owner's test inline and tail calls for the
     * other answers. */
    Pgpage_t* d = pg_page_of(p);
    if (__builtin_expect(!pg_owns(c, d, vm), 0))
        return pg_realloc_other(p, size, caller, vm, c);
    if (__builtin_expect(!pg_mine_busy(d, p, pg_hash(c->key, p)), 0))
        return vm_realloc_else(p, size, caller);
    if (__builtin_expect(pg_resize_stays(pg_bsize(d), size), 1))
        return p;
    return pg_realloc_move(p, size, caller, vm, c, d);
}

/* ---- locked entry points --------------------------------------------------- */

/* A new secret for the keys, in the state and in every heap (whose pages
 * are gone: a cleared region's, or none yet). */
static void pg_rekey(Pgstate_t* pg)
{
    pg->key = vm_os_random() | 1 | (uint64_t)1 << 63; /* see pg_hash */
    for (Pgheap_t* c = pg->heaps; c; c = c->rnext)
        c->key = pg->key;
}

void pg_init(Vmalloc_t* vm, Pgstate_t* pg)
{
    Pgheap_t* heaps = pg->heaps;
    memset(pg, 0, sizeof *pg);
    pg->heaps = heaps;
    pg_rekey(pg);
    pg->lasttick = vm_os_now_ms();
    __atomic_store_n(&pg->on, vm->disc == &vm_dc_system && pg_map_open() == 0, __ATOMIC_RELEASE);
}

void* pg_alloc(Vmalloc_t* vm, Pgstate_t* pg, size_t size)
{
    void* b = pg_take(vm, pg, pg_class(size));
    if (b)
        ((uint64_t*)b)[1] = 0;
    return b;
}

/* The page of p if it is one of vm's, else NULL. A page of another region
 * may hold vm's blocks (a Vmdcheap region's segments are Vmheap blocks). */
static inline Pgpage_t* pg_mine(Vmalloc_t* vm, const void* p)
{
    Pgpage_t* d = pg_page_of(p);
    return d && d->vm == vm ? d : NULL;
}

int pg_free(Vmalloc_t* vm, Pgstate_t* pg, void* p)
{
    Pgpage_t* d = pg_mine(vm, p);
    if (!d)
        return 1;
    if (!pg_busy(vm, pg, d, p)) {
        vm_fault(vm, VM_BADADDR, p);
        return -1;
    }
    Pgheap_t* owner = pg_owner(d);
    if (owner && owner == pg_heap_mine(vm, pg)) {
        /* The caller's own page (a block resized out of the pages comes
         * here): as its lock-free free would, so that a first page left
         * empty retires (pg_retire) instead of waiting on xfree for a
         * collection that a class no longer used never makes. */
        Vmalloc_t* dvm;
        unsigned k;
        if (pg_own_put(d, p, pg_key(pg, p), &dvm, &k) && !pg_thin_first(owner, d, k))
            pg_thinned_locked(vm, owner, d);
        return 0;
    }
    if (owner) { /* another thread's page: as from any other thread */
        ((uint64_t*)p)[1] = pg_key(pg, p);
        if (pg_xpush(d, p))
            pg_reclaim_locked(vm, pg, d);
        return 0;
    }
    int full = !pg_has_room(d);
    pg_mark_free(pg, p, d->free);
    d->free = p;
    d->state = PG_ACTIVE;
    unsigned used = pg_used(d) - 1u;
    pg_set_used(d, used);
    pg_count(vm, -1, pg_bsize(d));
    if (used == 0)
        pg_held_emptied(vm, pg, d, 0);
    else if (full) { /* it has room again: where pg_held_room looks first */
        pg_unlink(&pg->partial[d->cls], &pg->ptail[d->cls], d);
        pg_push(&pg->partial[d->cls], &pg->ptail[d->cls], d);
    }
    return 0;
}

long pg_size(Vmalloc_t* vm, Pgstate_t* pg, void* p)
{
    Pgpage_t* d = pg_mine(vm, p);
    if (!d)
        return -2;
    return pg_busy(vm, pg, d, p) ? (long)pg_bsize(d) : -1;
}

long pg_addr(Vmalloc_t* vm, Pgstate_t* pg, void* addr)
{
    Pgpage_t* d = pg_mine(vm, addr);
    if (!d)
        return -2;
    if (d->state == PG_EMPTY)
        return -1;
    size_t off = (size_t)((char*)addr - pg_page_addr(d)), start = pg_start_of(d);
    if (off < start)
        return -1;
    size_t i = (off - start) / pg_bsize(d);
    if (i >= pg_bump(d))
        return -1;
    char* b = pg_block(d, (unsigned)i);
    if (pg_gone_at(d, b))
        return -1;
    /* Never read the block itself: a busy block's user may be writing it
     * from any thread. A page another thread owns changes under us: its
     * carved blocks count as busy (as in vmwalk). Of the others (held, or
     * ours) the free blocks are on the free list or xfree, whose blocks
     * are free to read (as vmwalk reads them: a damaged list's tail counts
     * busy). */
    Pgheap_t* owner = pg_owner(d);
    if (owner && owner != pg_heap_mine(vm, pg))
        return (char*)addr - b;
    uint64_t map[(PG_SIZE / 16 + 63) / 64];
    memset(map, 0, sizeof map);
    (void)pg_check_list(pg, d, d->free, pg_bump(d), map);
    (void)pg_check_list(pg, d, pg_xlist(pg_xword(d)), pg_used(d), map);
    return map[i >> 6] >> (i & 63) & 1 ? -1 : (char*)addr - b;
}

void pg_clear(Vmalloc_t* vm, Pgstate_t* pg)
{
    /* Every heap is emptied: its pages were the region's and are now empty. */
    for (Pgheap_t* c = pg->heaps; c; c = c->rnext)
        for (unsigned k = 0; k < PG_NCLASS; ++k) {
            c->head[k] = c->tail[k] = NULL;
            c->npages[k] = 0;
            pg_q_sync(c, k);
        }
    Pgheap_t* heaps = pg->heaps;
    Pgheap_t* trust = pg->trust;
    size_t nextseg[2] = {pg->kind[0].nextseg, pg->kind[1].nextseg};
    memset(&pg->key, 0, sizeof *pg - offsetof(Pgstate_t, key)); /* on stays as it is */
    pg->heaps = heaps;
    pg->trust = trust;
    pg->kind[0].nextseg = nextseg[0];
    pg->kind[1].nextseg = nextseg[1];
    pg_rekey(pg);
    pg->lasttick = vm_os_now_ms();
    for (size_t i = 0; i < vm->nsegs; ++i) {
        Vmseg_t* seg = vm->segs[i];
        if (!(seg->mflags & SEG_PAGES))
            continue;
        Pgseg_t* info = pg_seginfo(seg);
        Pgkind_t* pk = &pg->kind[info->kind];
        info->nactive = 0;
        for (size_t j = info->npages; j-- > 0;) {
            Pgpage_t* d = pg_desc(info->first, j);
            int dirty = d->dirty || d->state != PG_EMPTY;
            d->vm = NULL;
            d->free = NULL;
            __atomic_store_n(&d->xfree, 0, __ATOMIC_RELAXED);
            __atomic_store_n(&d->owner, NULL, __ATOMIC_RELAXED);
            pg_set_used(d, 0);
            d->state = PG_EMPTY;
            d->dirty = (uint8_t)dirty;
            if (dirty) {
                pg_push(&pk->empty, &pk->emptytail, d);
                pk->ndirty++;
            } else {
                pg_push(&pk->clean, NULL, d);
                pk->nclean++;
            }
        }
        pk->npages += info->npages;
        pg->pagebytes += info->npages * pg_psize(info->kind);
    }
}

/* Everything that can go back does: the calling thread's pages with no
 * block out, the held ones, and their memory. Other threads' pages are
 * theirs to give (a thread's pages go back when it ends). */
void pg_compact(Vmalloc_t* vm, Pgstate_t* pg)
{
    pg_flush_mine(vm, pg);
    Pgheap_t* c = pg_heap_mine(vm, pg);
    if (c)
        for (unsigned k = 0; k < PG_NCLASS; ++k)
            for (Pgpage_t *d = c->head[k], *next; d; d = next) {
                next = d->next;
                if (pg_used(d) == 0 || (d != c->head[k] && pg_used(d) <= pg_thin(d))) {
                    pg_q_unlink(c, k, d);
                    pg_unown(vm, pg, d);
                }
            }
    /* A region that was VM_TRUST and is no longer: its heap serves no one. */
    if (pg->trust && pg->trust != c)
        pg_disown(vm, pg, pg->trust);
    pg_collect_all_held(vm, pg, 1);
    (void)pg_age_held(pg, 1);
    pg_purge_to(pg, 0, 0);
    pg_purge_to(pg, 1, 0);
    pg_release_empty(vm, pg);
}

void pg_stat_begin(Vmalloc_t* vm, Pgstate_t* pg, Vmstat_t* st)
{
    /* The caller's own heap is collected, not emptied: a program may call
     * vmstat often (vmreplay does). The held pages' collection changes the
     * figures the core copied. */
    pg_flush_mine(vm, pg);
    st->n_busy = vm->n_busy;
    st->s_busy = vm->s_busy;
    st->max_busy = vm->max_busy;
}

static inline Pgpage_t* pg_seg_page(const Pgseg_t* info, size_t j)
{
    return pg_desc(info->first, j);
}

/* The blocks of an owned page count as busy in the core's figures; vmstat
 * reports its free ones free (other threads' counts are read as they
 * change). */
void pg_stat_seg(Vmalloc_t* vm, Pgstate_t* pg, Vmseg_t* seg, Vmstat_t* st)
{
    (void)vm;
    (void)pg;
    Pgseg_t* info = pg_seginfo(seg);
    for (size_t j = 0; j < info->npages; ++j) {
        Pgpage_t* d = pg_seg_page(info, j);
        if (d->state == PG_EMPTY) {
            size_t room = pg_psize(info->kind) - pg_start(info, j);
            st->n_free += 1;
            st->s_free += room;
            if (room > st->m_free)
                st->m_free = room;
            continue;
        }
        unsigned used = pg_used(d);
        size_t nfree = (size_t)(pg_cap(d) - used);
        if (pg_owner(d)) {
            st->n_busy -= nfree;
            st->s_busy -= nfree * pg_bsize(d);
        }
        if (used && pg_bsize(d) > st->m_busy)
            st->m_busy = pg_bsize(d);
        st->n_free += nfree;
        st->s_free += nfree * pg_bsize(d);
    }
}

/* Walk the list at b, blocks of d: each a carved block, keyed as free, in
 * no purged unit, not met before (map). The number of blocks, or SIZE_MAX
 * if one is wrong or there are more than max; the blocks met before a
 * wrong one stay marked. */
static size_t pg_check_list(const Pgstate_t* pg, const Pgpage_t* d, void* b, size_t max,
                            uint64_t* map)
{
    size_t n = 0;
    for (; b; b = *(void**)b, ++n) {
        long i = pg_index(d, b);
        if (n == max || i < 0 || (map[i >> 6] >> (i & 63) & 1) || pg_gone_at(d, b) ||
            !pg_is_free(pg, b))
            return SIZE_MAX;
        map[i >> 6] |= (uint64_t)1 << (i & 63);
    }
    return n;
}

int pg_walk_seg(Vmalloc_t* vm, Pgstate_t* pg, Vmseg_t* seg, Vmvisit_f visit, void* arg)
{
    Pgseg_t* info = pg_seginfo(seg);
    /* The aligned twin is an internal detail: the user's discipline is Vmdcsystem. */
    Vmdisc_t* disc = vm_disc_shown(seg->disc);
    uint64_t map[(PG_SIZE / 16 + 63) / 64];
    pg_flush_mine(vm, pg);
    Pgheap_t* mine = pg_heap_mine(vm, pg);
    for (size_t j = 0; j < info->npages; ++j) {
        Pgpage_t* d = pg_seg_page(info, j);
        if (d->state == PG_EMPTY || pg_used(d) == 0)
            continue;
        /* The blocks of a page another thread owns change under us: all its
         * carved blocks count as busy, as in the figures. Of the others
         * (held, or ours) the free blocks are those on the free list, which
         * no one else changes while we hold the lock (xfree was just
         * collected; what reaches it meanwhile was busy when the walk
         * began). A busy block is never read: its user may be writing it
         * from any thread (the locked path hands out held pages' blocks),
         * and the read would race with those writes. */
        Pgheap_t* owner = pg_owner(d);
        int theirs = owner && owner != mine;
        unsigned bump = pg_bump(d);
        if (!theirs) {
            memset(map, 0, sizeof map);
            (void)pg_check_list(pg, d, d->free, bump, map); /* a damaged tail stays busy */
            pg_map_gone(d, bump, map);
        }
        for (unsigned i = 0; i < bump; ++i) {
            char* b = pg_block(d, i);
            if (!theirs && (map[i >> 6] >> (i & 63) & 1))
                continue;
            int r = visit(vm, b, pg_bsize(d), disc, arg);
            if (r != 0)
                return r;
        }
    }
    return 0;
}

static int pg_heap_known(const Pgstate_t* pg, const Pgheap_t* c)
{
    for (const Pgheap_t* h = pg->heaps; h; h = h->rnext)
        if (h == c)
            return 1;
    return 0;
}

/* Violations in one page segment; adds the blocks out of the region's hands
 * (busy, or in an owned page) to *nused and their bytes to *sused. The
 * lists of pages other threads own are theirs: only their descriptors are
 * checked. */
int pg_check_seg(Vmalloc_t* vm, Pgstate_t* pg, Vmseg_t* seg, size_t* nused, size_t* sused)
{
    uint64_t map[(PG_SIZE / 16 + 63) / 64];
    Pgseg_t* info = pg_seginfo(seg);
    int bad = 0;
    size_t active = 0;
    if (!info || (char*)info != info->first + PG_SEGINFO || info->seg != seg ||
        info->first < seg->addr || info->npages > PG_MAXSEG || info->kind > 1 ||
        info->first + info->npages * pg_psize(info->kind) > seg->end)
        return 1;
    size_t psize = pg_psize(info->kind);
    Pgheap_t* mine = pg_heap_mine(vm, pg);
    for (size_t j = 0; j < info->npages; ++j) {
        char* P = info->first + j * psize;
        Pgpage_t* d = pg_desc(info->first, j);
        if (pg_page_of(P) != d || pg_page_of(P + psize - 1) != d || d->kind != info->kind ||
            pg_page_addr(d) != P) {
            bad++;
            continue;
        }
        Pgheap_t* owner = pg_owner(d);
        if (d->state == PG_EMPTY) {
            if (d->vm || owner)
                bad++;
            continue;
        }
        active++;
        unsigned k = d->cls, bump = pg_bump(d), used = pg_used(d);
        if (d->state > PG_SWEPT || d->vm != vm || k >= PG_NCLASS || d->divc != pg_divc[k] ||
            pg_kind_of(k) != d->kind ||
            d->base != (uint16_t)((uintptr_t)P + pg_start(info, j)) ||
            pg_cap(d) != (psize - pg_start(info, j)) / pg_csize[k] || bump > pg_cap(d) ||
            used > bump || (owner && !pg_heap_known(pg, owner))) {
            bad++;
            continue;
        }
        size_t out = owner ? pg_cap(d) : used;
        *nused += out;
        *sused += out * pg_bsize(d);
        /* Purged units: only a held page's, never the headers'. */
        unsigned ngone = pg_ngone(d, bump);
        if ((pg_gone(d) && owner) || ((pg_gone(d) & 1) && pg_start_of(d)) || ngone > bump - used) {
            bad++;
            continue;
        }
        if (owner && owner != mine)
            continue; /* its owner may be changing its counts */
        if (__atomic_load_n(&d->lim, __ATOMIC_RELAXED) != pg_lim_of(pg_csize[k], bump))
            bad++;
        memset(map, 0, sizeof map);
        if (pg_check_list(pg, d, d->free, bump - used - ngone, map) != bump - used - ngone)
            bad++;
        uintptr_t x = pg_xword(d);
        if (pg_check_list(pg, d, pg_xlist(x), used, map) != pg_xcount(x))
            bad++;
    }
    if (active != info->nactive)
        bad++;
    return bad;
}

/* A page list of vm's active pages of class k, with the given owner. */
static int pg_check_queue(Vmalloc_t* vm, Pgpage_t* head, Pgpage_t* tail, unsigned k,
                          const Pgheap_t* owner, size_t limit, size_t* count)
{
    size_t n = 0;
    Pgpage_t* prev = NULL;
    for (Pgpage_t* d = head; d; prev = d, d = d->next)
        if (++n > limit || pg_page_of(pg_page_addr(d)) != d || d->vm != vm ||
            d->state == PG_EMPTY || d->cls != k || pg_owner(d) != owner || d->prev != prev)
            return 1;
    *count = n;
    return prev != tail;
}

/* The lists: every page in them is where its state says, counted right. */
int pg_check(Vmalloc_t* vm, Pgstate_t* pg)
{
    int bad = (int)__atomic_load_n(&pg->damaged, __ATOMIC_RELAXED);
    size_t limit = pg->kind[0].npages + pg->kind[1].npages + 1, n;
    pg_flush_mine(vm, pg);
    Pgheap_t* c = pg_heap_mine(vm, pg);
    for (unsigned k = 0; k < PG_NCLASS; ++k) {
        bad += pg_check_queue(vm, pg->partial[k], pg->ptail[k], k, NULL, limit, &n);
        if (c && (pg_check_queue(vm, c->head[k], c->tail[k], k, c, limit, &n) ||
                  n != c->npages[k] || c->page[k] != (c->head[k] ? c->head[k] : &pg_nopage)))
            bad++;
    }
    for (unsigned j = 0; c && j < PG_NDIRECT; ++j)
        bad += c->direct[j] != c->page[pg_class_tab[j]];
    struct {
        Pgpage_t* head;
        size_t count;
        int dirty;
        unsigned kind;
    } lists[4] = {{pg->kind[0].empty, pg->kind[0].ndirty, 1, 0},
                  {pg->kind[0].clean, pg->kind[0].nclean, 0, 0},
                  {pg->kind[1].empty, pg->kind[1].ndirty, 1, 1},
                  {pg->kind[1].clean, pg->kind[1].nclean, 0, 1}};
    for (int l = 0; l < 4; ++l) {
        n = 0;
        for (Pgpage_t* d = lists[l].head; d; d = d->next) {
            if (++n > limit || pg_page_of(pg_page_addr(d)) != d || d->state != PG_EMPTY ||
                d->dirty != lists[l].dirty || d->kind != lists[l].kind) {
                bad++;
                break;
            }
        }
        if (n != lists[l].count)
            bad++;
    }
    return bad;
}
