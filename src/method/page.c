/*
 * method/page.c — Vmbest's small blocks: size classes in 32 and 64 KiB pages, and
 * per-thread caches so that malloc/free of small sizes take no lock.
 *
 * Algorithm (the glossary is page.h).
 *   - A request of at most PG_MAXCLASS (16 KiB) is rounded up to its class
 *     (64 classes; waste <= 12.5% above 256 bytes, < 16 bytes below) and
 *     served from a page holding only blocks of that class, with no
 *     per-block header: a 32 KiB page up to 2 KiB, a 64 KiB page above.
 *     Whether an address is in a page at all, and which, is a pointer per
 *     32 KiB to the page's descriptor (in its segment's first page) in a
 *     process-wide map (two levels: 2^15 pointers, leaves of 2^17 pointers
 *     made on demand and touched only where pages are), so a foreign
 *     pointer is recognised in O(1) without touching its memory.
 *   - Each thread has, per region, a cache: a LIFO list per class of at most
 *     max blocks. malloc pops from it, free pushes onto it, both without a
 *     lock or an atomic instruction. An empty list is refilled with max/2
 *     blocks from the cache's own page of that class (threads carve from
 *     different pages, so their blocks share no cache line), or with a
 *     whole list from the region's transfer cache; an overfull list goes
 *     there whole, or half of it back to its pages — all under the region
 *     lock. A free from another thread goes to the freeing thread's cache,
 *     and from there to the transfer cache or the block's page. A thread
 *     that exits gives its caches and pages back (a pthread key destructor).
 *     A VM_TRUST region (one thread at a time) has one cache of its own.
 *   - A page whose blocks are all back joins the region's empty pages
 *     (dirty: touched since its last purge; clean). Dirty pages beyond
 *     max(32 MiB, half the active pages) are purged at once (madvise): a
 *     program that frees a peak drops to about that much over its live data
 *     without waiting, while one that frees and refills its memory in a loop
 *     does not fault its pages in again each time. The rest is purged, and
 *     wholly empty page segments go back to the discipline, at the first
 *     slow-path call a second after the last purge, and at vmcompact; a
 *     segment also goes back at once when the empty pages left elsewhere
 *     exceed the limit. While pages empty faster than that (a shrinking
 *     phase), cache lists go straight back to their pages: a cached block
 *     keeps its whole page resident.
 *
 * Bounds. malloc/free: O(1) with no lock while the thread's list has a block
 * or room; a refill moves max/2 blocks, a flush a whole list in O(1) (or
 * max/2 blocks), under the lock. Page lookup: two dependent loads. Space: 0
 * header bytes per block; 64 bytes per page and ~128 per segment, in the
 * segment's first OS page, and 8 (16 for a 64 KiB page) in the map; a
 * cache holds at most max(4, min(256, 32 KiB / size)) blocks per class,
 * the transfer cache 8 to 64 such lists per class (at most 1 MiB of blocks
 * per class, pg_xfer_max).
 *
 * Locking. Page lists, page descriptors, the transfer cache, the caches'
 * own pages and the region's cache list are guarded by the region lock. A
 * cache's lists belong to its thread; other threads read only its counts
 * (relaxed atomics) for vmstat, and vmclear empties them (clearing a region
 * while other threads use it is an error). vm_cache_lock (the core's) guards
 * the creation and death of caches; it is taken before a region lock, never
 * after (a thread holding a region lock only tries it).
 */
#include "page.h"

#include <pthread.h>
#include <stddef.h>

#define PG_SEGINFO 64  /* the segment's counters, in page 0 */
#define PG_DESCS 128   /* the pages' descriptors, in page 0, 64 bytes each */
/* Pages in the first page segment of a kind, then x1.5, at most (the
 * headers fit in 4 KiB; a segment is at most ~2 MiB): the arena overshoots
 * by at most a third. */
static const size_t pg_minseg[2] = {4, 2}, pg_maxseg[2] = {60, 32};
#define PG_MAXSEG 60
#define PG_DIRTYMIN ((size_t)32 << 20) /* empty bytes kept unpurged, or half the active ones */
#define PG_TICK_MS 1000
#define PG_SHRINKMIN ((size_t)8 << 20)

enum { PG_EMPTY = 0, PG_ACTIVE = 1 };

struct pg_page {
    Vmalloc_t* vm;         /* owner while active; NULL while empty */
    void* free;            /* blocks given back, linked through word 0 */
    Pgpage_t *next, *prev; /* in partial[cls], or in the dirty or clean list */
    Pgcache_t* owner;      /* the cache that carves from it (then on no partial list) */
    uint64_t divc;         /* 2^64 / bsize + 1: one multiply divides an offset and tests it */
    uint16_t bsize, cap, start, used, nfree;
    uint16_t bump;         /* written under the lock, read by the fast free: atomic */
    uint8_t cls, state, dirty;
    uint8_t kind;          /* 0: a PG_SIZE page, 1: a PG_LSIZE page */
};                         /* 64 bytes: a page's index is its descriptor's */

/* A page segment's counters, at page 0 + PG_SEGINFO; its pages' descriptors
 * follow at page 0 + PG_DESCS, so a wholly purged page keeps nothing
 * resident, and page 0 only its first OS page. */
typedef struct {
    uint32_t npages, nactive;
    Vmseg_t* seg;
    char* first;   /* page 0 */
    unsigned kind; /* its pages' */
} Pgseg_t;

typedef struct {
    void* head;
    uint32_t n;   /* written by the owner, read by vmstat: relaxed atomic */
    uint32_t max; /* at most this many; a refill or flush moves max / 2 */
} Pgbin_t;

struct pg_cache {
    Vmalloc_t* vm;            /* atomic: NULL once the region is closed */
    uint64_t key;             /* = pg->key, on the line the fast paths read anyway */
    Pgstate_t* pg;
    Pgcache_t* tnext;         /* the thread's caches, most recently used first */
    Pgcache_t *rnext, *rprev; /* the region's caches */
    size_t mapsize;
    Pgbin_t bin[PG_NCLASS];
    /* The page of each class this cache refills from (region lock): threads
     * carve from different pages, so their blocks share no cache line. */
    Pgpage_t* own[PG_NCLASS];
};

_Static_assert(sizeof(Pgpage_t) == 64, "a page descriptor is 64 bytes");
_Static_assert(sizeof(Vmseg_t) <= PG_SEGINFO, "a segment header must fit before the counters");
_Static_assert(PG_SEGINFO + sizeof(Pgseg_t) <= PG_DESCS, "segment counters too big");
_Static_assert(PG_DESCS + PG_MAXSEG * 64 <= 4096, "a segment's headers fit in its first OS page");

static const uint16_t pg_csize[PG_NCLASS] = {
    16,   32,   48,   64,    80,    96,    112,   128,   144,  160,  176,  192,  208,
    224,  240,  256,  288,   320,   352,   384,   416,   448,  480,  512,  576,  640,
    704,  768,  832,  896,   960,   1024,  1152,  1280,  1408, 1536, 1664, 1792, 1920,
    2048, 2304, 2560, 2816,  3072,  3328,  3584,  3840,  4096, 4608, 5120, 5632, 6144,
    6656, 7168, 7680, 8192,  9216,  10240, 11264, 12288, 13312, 14336, 15360, 16384,
};

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
 * and four shifts (test_page compares the two for every size). */
#define PG_TABMAX 1024
static const uint8_t pg_class_tab[PG_TABMAX / 16 + 1] = {
    0,  0,  1,  2,  3,  4,  5,  6,  7,  8,  9,  10, 11, 12, 13, 14, 15, 16, 16, 17, 17, 18,
    18, 19, 19, 20, 20, 21, 21, 22, 22, 23, 23, 24, 24, 24, 24, 25, 25, 25, 25, 26, 26, 26,
    26, 27, 27, 27, 27, 28, 28, 28, 28, 29, 29, 29, 29, 30, 30, 30, 30, 31, 31, 31, 31,
};

static inline unsigned pg_class(size_t n)
{
    return n <= PG_TABMAX ? pg_class_tab[(n + 15) >> 4] : pg_class_of(n);
}

static inline uint32_t pg_cache_max(unsigned k)
{
    uint32_t m = (uint32_t)((32u << 10) / pg_csize[k]);
    return m < 4 ? 4 : m > 256 ? 256 : m;
}

/* ---- the page map: is an address in a page? ------------------------------ */

#define PG_MAPTOP (1u << 15) /* addresses below 2^47: a leaf per 4 GiB */
#define PG_LEAFBITS (32 - PG_SHIFT)
#define PG_LEAFMASK (((uintptr_t)1 << PG_LEAFBITS) - 1)
#define PG_LEAFSIZE (((size_t)1 << PG_LEAFBITS) * sizeof(Pgpage_t*)) /* 1 MiB, touched sparsely */
static Pgpage_t** pg_map[PG_MAPTOP];

static inline Pgpage_t** pg_map_leaf(uintptr_t a)
{
    return a >> 47 ? NULL : __atomic_load_n(&pg_map[a >> 32], __ATOMIC_ACQUIRE);
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

/* The page holding p, or NULL if p is in no page. O(1): two loads, the
 * second of the descriptor's address; reads no memory of p. */
static inline Pgpage_t* pg_page_of(const void* p)
{
    uintptr_t a = (uintptr_t)p;
    Pgpage_t** leaf = pg_map_leaf(a);
    return leaf ? __atomic_load_n(&leaf[(a >> PG_SHIFT) & PG_LEAFMASK], __ATOMIC_RELAXED) : NULL;
}

/* Map the PG_SIZE granule at P to descriptor d (NULL: no page). Locked by
 * the region; leaves are shared by all regions, so a new one is published
 * with a compare-and-swap. */
static int pg_map_granule(char* P, Pgpage_t* d)
{
    uintptr_t a = (uintptr_t)P;
    if (a >> 47)
        return -1;
    Pgpage_t** leaf = pg_map_leaf(a);
    if (!leaf) {
        if (!d)
            return 0;
        Pgpage_t** fresh = vm_os_map(PG_LEAFSIZE);
        if (!fresh)
            return -1;
        Pgpage_t** expect = NULL;
        if (__atomic_compare_exchange_n(&pg_map[a >> 32], &expect, fresh, 0, __ATOMIC_ACQ_REL,
                                        __ATOMIC_ACQUIRE))
            leaf = fresh;
        else {
            (void)vm_os_unmap(fresh, PG_LEAFSIZE);
            leaf = expect;
        }
    }
    __atomic_store_n(&leaf[(a >> PG_SHIFT) & PG_LEAFMASK], d, __ATOMIC_RELAXED);
    return 0;
}

/* Map page j (of the given kind) of the segment at first to its
 * descriptor, or to nothing. */
static int pg_map_set(char* first, unsigned kind, size_t j, int on)
{
    size_t psize = pg_psize(kind);
    Pgpage_t* d = on ? pg_desc(first, j) : NULL;
    for (size_t g = 0; g < psize; g += PG_SIZE)
        if (pg_map_granule(first + j * psize + g, d) < 0)
            return -1;
    return 0;
}

/* ---- blocks ------------------------------------------------------------- */

static inline uint64_t pg_hash(uint64_t key, const void* p)
{
    return (((uint64_t)(uintptr_t)p ^ key) * 0x9E3779B97F4A7C15ull) | 1;
}

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
    return pg_page_addr(d) + d->start + (size_t)i * d->bsize;
}

static inline unsigned pg_bump(const Pgpage_t* d) { return __atomic_load_n(&d->bump, __ATOMIC_RELAXED); }

/* Index of the block starting at p in active page d, or -1 if p is not the
 * start of a block carved from d. With c = 2^64 / bsize + 1, the 128-bit
 * product c * off holds the quotient off / bsize in its high half and, in
 * its low half, a value below c exactly when bsize divides off (Lemire,
 * Kaser and Kurz, "Faster remainder by direct computation", 2019; exact
 * for 32-bit off): one multiply instead of a division. An offset below
 * start wraps to a huge quotient. */
static inline long pg_index(const Pgpage_t* d, const void* p)
{
    uint32_t off = (uint32_t)(((uintptr_t)p & (pg_psize(d->kind) - 1)) - d->start);
    unsigned __int128 m = (unsigned __int128)d->divc * off;
    uint64_t i = (uint64_t)(m >> 64);
    if ((uint64_t)m >= d->divc || i >= pg_bump(d))
        return -1;
    return (long)i;
}

/* Is p a block carved from d, an active page of vm? Reads no memory of p. */
static inline int pg_carved(Vmalloc_t* vm, const Pgpage_t* d, const void* p)
{
    /* d->vm is set only while the page is active (pg_check verifies it), so
     * it answers for the state too: one load less on every free. */
    return d->vm == vm && pg_index(d, p) >= 0;
}

/* Is p a busy block of vm (in a page)? d is pg_page_of(p). */
static inline int pg_busy(Vmalloc_t* vm, const Pgstate_t* pg, const Pgpage_t* d, const void* p)
{
    return pg_carved(vm, d, p) && !pg_is_free(pg, p);
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

static inline int pg_has_room(const Pgpage_t* d) { return d->free || d->bump < d->cap; }

static inline Pgseg_t* pg_seginfo(const Vmseg_t* seg) { return seg->mdata; }

/* Where page j's blocks start: after the headers in page 0. */
static inline uint16_t pg_start(const Pgseg_t* info, size_t j)
{
    return (uint16_t)(j ? 0 : vm_align_up(PG_DESCS + info->npages * sizeof(Pgpage_t), 16));
}

typedef struct pg_kind Pgkind_t;

static void pg_empty_unlink(Pgstate_t* pg, Pgpage_t* d)
{
    Pgkind_t* pk = &pg->kind[d->kind];
    if (d->dirty) {
        pg_unlink(&pk->empty, &pk->emptytail, d);
        pk->ndirty--;
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
    pk->ndirty--;
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

/* A new page segment of the kind, its pages on the clean list. 0, or -1 with
 * the fault recorded. */
static int pg_grow(Vmalloc_t* vm, Pgstate_t* pg, unsigned kind)
{
    Pgkind_t* pk = &pg->kind[kind];
    size_t psize = pg_psize(kind);
    size_t n = pk->nextseg ? pk->nextseg : pg_minseg[kind];
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
    size_t i = 0;
    while (i < np && pg_map_set(first, kind, i, 1) == 0)
        ++i;
    if (np == 0 || i < np) {
        while (i-- > 0)
            (void)pg_map_set(first, kind, i, 0);
        (void)vm_seg_put(vm, seg);
        vm_fault(vm, VM_NOMEM, (void*)(n * psize));
        return -1;
    }
    Pgseg_t* info = (Pgseg_t*)(first + PG_SEGINFO);
    info->npages = (uint32_t)np;
    info->nactive = 0;
    info->seg = seg;
    info->first = first;
    info->kind = kind;
    seg->mflags = SEG_PAGES;
    seg->mdata = info;
    for (i = np; i-- > 0;) { /* page 0 ends up first on the list */
        Pgpage_t* d = pg_desc(first, i);
        memset(d, 0, sizeof *d);
        d->state = PG_EMPTY;
        d->kind = (uint8_t)kind;
        pg_push(&pk->clean, NULL, d);
    }
    pk->nclean += np;
    pk->npages += np;
    pg->pagebytes += np * psize;
    size_t next = n + (n + 1) / 2;
    pk->nextseg = next > pg_maxseg[kind] ? pg_maxseg[kind] : next;
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
    for (size_t i = 0; i < np; ++i)
        pg_empty_unlink(pg, pg_desc(first, i));
    for (size_t i = 0; i < np; ++i)
        (void)pg_map_set(first, kind, i, 0);
    pk->npages -= np;
    pg->pagebytes -= np * pg_psize(kind);
    if (vm_seg_put(vm, seg) == 0)
        return;
    /* The discipline keeps it: the pages stay ours, clean or not. */
    for (size_t i = 0; i < np; ++i) {
        Pgpage_t* d = pg_desc(first, i);
        (void)pg_map_set(first, kind, i, 1);
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

/* ---- pages (locked) ------------------------------------------------------ */

/* An empty page made a page of class k, on its partial list. */
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
    d->bsize = pg_csize[k];
    d->divc = UINT64_MAX / d->bsize + 1;
    d->cls = (uint8_t)k;
    d->start = pg_start(info, pg_index_of(d));
    d->cap = (uint16_t)((pg_psize(kind) - d->start) / d->bsize);
    d->used = d->nfree = 0;
    __atomic_store_n(&d->bump, 0, __ATOMIC_RELAXED);
    d->state = PG_ACTIVE;
    d->dirty = 1;
    info->nactive++;
    pg_push(&pg->partial[k], NULL, d);
    return d;
}

/* The page d has no block out: back to the empty pages, unless it is the
 * only page of its class with room (keeping it spares a reassignment when
 * one block is allocated and freed over and over). */
static void pg_retire(Vmalloc_t* vm, Pgstate_t* pg, Pgpage_t* d, int force)
{
    if (!force && pg->partial[d->cls] == d && !d->next)
        return;
    unsigned kind = d->kind;
    Pgkind_t* pk = &pg->kind[kind];
    pg_unlink(&pg->partial[d->cls], NULL, d);
    d->vm = NULL;
    d->state = PG_EMPTY;
    d->dirty = 1;
    pg_push(&pk->empty, &pk->emptytail, d);
    pk->ndirty++;
    pk->retired++;
    Pgseg_t* info = pg_info_of(d);
    if (--info->nactive == 0 && pk->ndirty + pk->nclean >= info->npages + pg_dirty_limit(pg, kind))
        pg_release(vm, pg, info->seg);
    pg_purge_to(pg, kind, pg_dirty_limit(pg, kind));
}

/* The page cache c refills class k from: its own while it has room, else
 * one from the partial list (or a new one), made its own; the full one it
 * leaves returns to the partial list when a block of it is freed. */
static Pgpage_t* pg_page_for(Vmalloc_t* vm, Pgstate_t* pg, Pgcache_t* c, unsigned k)
{
    Pgpage_t* d = c->own[k];
    if (d && pg_has_room(d))
        return d;
    if (d) {
        d->owner = NULL;
        c->own[k] = NULL;
    }
    d = pg->partial[k];
    if (!d && !(d = pg_assign(vm, pg, k)))
        return NULL;
    pg_unlink(&pg->partial[k], NULL, d);
    d->owner = c;
    c->own[k] = d;
    return d;
}

/* c gives up its pages (thread exit, vmcompact): to the partial lists, or
 * back to the empty pages. Locked. */
static void pg_disown(Vmalloc_t* vm, Pgstate_t* pg, Pgcache_t* c)
{
    for (unsigned k = 0; k < PG_NCLASS; ++k) {
        Pgpage_t* d = c->own[k];
        if (!d)
            continue;
        c->own[k] = NULL;
        d->owner = NULL;
        if (pg_has_room(d) || d->used == 0)
            pg_push(&pg->partial[k], NULL, d);
        if (d->used == 0)
            pg_retire(vm, pg, d, 0);
    }
}

/* A block of class k out of its pages (bump blocks are not keyed), for cache
 * c or (NULL) for the locked path; NULL with the fault recorded. Counted busy. */
static void* pg_take(Vmalloc_t* vm, Pgstate_t* pg, unsigned k, Pgcache_t* c)
{
    Pgpage_t* d = c ? pg_page_for(vm, pg, c, k) : pg->partial[k];
    if (!d && !(d = pg_assign(vm, pg, k)))
        return NULL;
    void* b = d->free;
    if (b) {
        d->free = *(void**)b;
        d->nfree--;
    } else {
        b = pg_block(d, d->bump);
        __atomic_store_n(&d->bump, (uint16_t)(d->bump + 1), __ATOMIC_RELAXED);
    }
    d->used++;
    if (!pg_has_room(d) && !d->owner)
        pg_unlink(&pg->partial[k], NULL, d);
    vm_busy_add(vm, d->bsize);
    return b;
}

/* Up to want blocks of class k for cache c, linked and keyed as free, put
 * in front of the list at *head; their number (0 with the fault recorded
 * when no page could be had). A page's free list is cut in one piece and
 * never-used blocks are linked in address order, with one update of the
 * page's and the region's counts per page. Counted busy. Locked. */
static uint32_t pg_take_list(Vmalloc_t* vm, Pgstate_t* pg, unsigned k, Pgcache_t* c,
                             uint32_t want, void** head)
{
    uint32_t got = 0;
    while (got < want) {
        Pgpage_t* d = pg_page_for(vm, pg, c, k);
        if (!d)
            break;
        uint32_t n;
        if (d->free) {
            void* last = d->free;
            for (n = 1; n < want - got && *(void**)last; ++n)
                last = *(void**)last;
            void* first = d->free;
            d->free = *(void**)last;
            *(void**)last = *head;
            *head = first;
            d->nfree = (uint16_t)(d->nfree - n);
        } else {
            uint32_t room = (uint32_t)(d->cap - d->bump);
            n = room < want - got ? room : want - got;
            char* b = pg_block(d, d->bump);
            char* p = b;
            for (uint32_t i = 0; i + 1 < n; ++i, p += d->bsize)
                pg_mark_free(pg, p, p + d->bsize);
            pg_mark_free(pg, p, *head);
            *head = b;
            __atomic_store_n(&d->bump, (uint16_t)(d->bump + n), __ATOMIC_RELAXED);
        }
        d->used = (uint16_t)(d->used + n);
        got += n;
        vm->n_busy += n;
        vm->s_busy += (size_t)n * d->bsize;
        if (vm->s_busy > vm->max_busy)
            vm->max_busy = vm->s_busy;
    }
    return got;
}

/* Give the keyed block b of page d back to it. */
static void pg_give(Vmalloc_t* vm, Pgstate_t* pg, Pgpage_t* d, void* b)
{
    int full = !pg_has_room(d);
    ((void**)b)[0] = d->free;
    d->free = b;
    d->nfree++;
    d->used--;
    vm_busy_sub(vm, d->bsize);
    if (d->owner) /* its cache's: stays with it, empty or not */
        return;
    if (full)
        pg_push(&pg->partial[d->cls], NULL, d);
    if (d->used == 0)
        pg_retire(vm, pg, d, 0);
}

static void pg_xfer_drain(Vmalloc_t* vm, Pgstate_t* pg);

void pg_tick(Vmalloc_t* vm, Pgstate_t* pg)
{
    uint64_t now = vm_os_now_ms();
    if (now - pg->lastpurge < PG_TICK_MS)
        return;
    pg->lastpurge = now;
    pg->kind[0].retired = pg->kind[1].retired = 0;
    pg_xfer_drain(vm, pg);
    pg_purge_to(pg, 0, 0);
    pg_purge_to(pg, 1, 0);
    pg_release_empty(vm, pg);
}

/* ---- thread caches -------------------------------------------------------- */

static __thread Pgcache_t* pg_tls_first __attribute__((tls_model("initial-exec")));
/* The thread's cache of the region the malloc interface used last (one of
 * its list, never a VM_TRUST region's): its calls reach it with one load. */
static __thread Pgcache_t* pg_tls_malloc __attribute__((tls_model("initial-exec")));
static __thread int pg_tls_state __attribute__((tls_model("initial-exec"))); /* 1: key set; 2: exiting */
static pthread_key_t pg_tc_key;
static pthread_once_t pg_tc_once = PTHREAD_ONCE_INIT;

static inline Vmalloc_t* pg_cache_vm(const Pgcache_t* c) { return __atomic_load_n(&c->vm, __ATOMIC_ACQUIRE); }
static inline uint32_t pg_bin_n(const Pgbin_t* b) { return __atomic_load_n(&b->n, __ATOMIC_RELAXED); }
static inline void pg_bin_setn(Pgbin_t* b, uint32_t n) { __atomic_store_n(&b->n, n, __ATOMIC_RELAXED); }

/* Move every block of c's list k back to its page. Region locked. */
/* A cache list that met a block not keyed as free: a write after free, or
 * a double free from two threads at once that raced the check.
 * The list cannot be trusted past it: drop the rest (its blocks stay out of
 * their pages, a bounded leak) rather than hand a block out twice; vmdbcheck
 * counts it. */
static void pg_bin_damaged(Pgstate_t* pg, Pgbin_t* bin)
{
    bin->head = NULL;
    pg_bin_setn(bin, 0);
    __atomic_add_fetch(&pg->damaged, 1, __ATOMIC_RELAXED);
}

/* Give the first n blocks of the list at *head back to their pages; *head
 * becomes the rest. The number given, or -1 if the list was damaged (then
 * *head is NULL). Region locked. */
static long pg_list_give(Vmalloc_t* vm, Pgstate_t* pg, void** head, uint32_t n)
{
    long given = 0;
    for (; given < n && *head; ++given) {
        void* b = *head;
        if (!pg_is_free(pg, b)) {
            *head = NULL;
            __atomic_add_fetch(&pg->damaged, 1, __ATOMIC_RELAXED);
            return -1;
        }
        *head = *(void**)b;
        pg_give(vm, pg, pg_page_of(b), b);
    }
    return given;
}

static void pg_cache_drain(Vmalloc_t* vm, Pgstate_t* pg, Pgcache_t* c, unsigned k, uint32_t n)
{
    Pgbin_t* bin = &c->bin[k];
    long given = pg_list_give(vm, pg, &bin->head, n);
    pg_bin_setn(bin, given < 0 ? 0 : pg_bin_n(bin) - (uint32_t)given);
}

/* More pages emptied since the last timed purge than half the active ones,
 * and more than PG_SHRINKMIN bytes of them: the program is giving memory back
 * (a small program that frees all it has in a loop is not). Lists then go to their pages at once,
 * since a cached block holds its whole page resident. */
static inline int pg_shrinking(const Pgstate_t* pg, unsigned k)
{
    unsigned kind = pg_kind_of(k);
    const Pgkind_t* pk = &pg->kind[kind];
    return 2 * pk->retired > pg_active(pk) && pk->retired * pg_psize(kind) > PG_SHRINKMIN;
}

/* The transfer cache's slots (kept out of the region's state, which may
 * live in a small buffer). 0 if there is no memory for them. Locked. */
/* Lists of class k the transfer cache keeps: 8 at least, PG_XFER at most,
 * else as many full lists as fit in PG_XFERBYTES. */
static inline unsigned pg_xfer_max(unsigned k)
{
    size_t n = PG_XFERBYTES / ((size_t)pg_cache_max(k) * pg_csize[k]);
    return n < 8 ? 8 : n > PG_XFER ? PG_XFER : (unsigned)n;
}

static int pg_xfer_ready(Pgstate_t* pg)
{
    if (!pg->xfer)
        pg->xfer = vm_os_map(vm_align_up(PG_NCLASS * sizeof *pg->xfer, vm_os_pagesize()));
    return pg->xfer != NULL;
}

/* Every list of the transfer cache back to the pages. Locked. */
static void pg_xfer_drain(Vmalloc_t* vm, Pgstate_t* pg)
{
    for (unsigned k = 0; k < PG_NCLASS; ++k)
        while (pg->nxfer[k] > 0) {
            Pgbatch_t* x = &pg->xfer[k][--pg->nxfer[k]];
            (void)pg_list_give(vm, pg, &x->head, UINT32_MAX);
            x->n = 0;
        }
}

static void pg_cache_drain_all(Vmalloc_t* vm, Pgstate_t* pg, Pgcache_t* c)
{
    for (unsigned k = 0; k < PG_NCLASS; ++k)
        pg_cache_drain(vm, pg, c, k, UINT32_MAX);
}

/* The thread is ending: give every cache back to its region. */
static void pg_thread_exit(void* arg)
{
    (void)arg;
    pg_tls_state = 2;
    pg_tls_malloc = NULL;
    pthread_mutex_lock(&vm_cache_lock);
    Pgcache_t* c = pg_tls_first;
    pg_tls_first = NULL;
    while (c) {
        Pgcache_t* next = c->tnext;
        Vmalloc_t* vm = pg_cache_vm(c);
        if (vm) {
            Pgstate_t* pg = c->pg;
            pthread_mutex_lock(&vm->lock);
            pg_cache_drain_all(vm, pg, c);
            pg_disown(vm, pg, c);
            if (c->rprev)
                c->rprev->rnext = c->rnext;
            else
                pg->caches = c->rnext;
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

/* This thread's cache for vm, made if need be; NULL when the thread should
 * use the locked path (VM_TRUST, thread exiting, lock busy, no memory). */
/* A new cache for vm, on the region's list; NULL if no memory. Locked or
 * VM_TRUST. */
static Pgcache_t* pg_cache_new(Vmalloc_t* vm, Pgstate_t* pg)
{
    size_t size = vm_align_up(sizeof(Pgcache_t), vm_os_pagesize());
    Pgcache_t* c = vm_os_map(size);
    if (!c)
        return NULL;
    c->mapsize = size;
    c->pg = pg;
    c->key = pg->key;
    for (unsigned k = 0; k < PG_NCLASS; ++k)
        c->bin[k].max = pg_cache_max(k);
    c->rnext = pg->caches;
    if (pg->caches)
        pg->caches->rprev = c;
    pg->caches = c;
    __atomic_store_n(&c->vm, vm, __ATOMIC_RELEASE);
    return c;
}

/* Under VM_TRUST one thread at a time uses the region: one cache, the
 * region's own, serves them all (no thread-exit hand-back needed). */
static Pgcache_t* pg_trust_cache(Vmalloc_t* vm, Pgstate_t* pg)
{
    if (!pg->trust)
        pg->trust = pg_cache_new(vm, pg);
    return pg->trust;
}

__attribute__((noinline)) static Pgcache_t* pg_cache_find(Vmalloc_t* vm, Pgstate_t* pg)
{
    if (vm->flags & VM_TRUST)
        return pg_trust_cache(vm, pg);
    if (pg_tls_state == 2)
        return NULL;
    Pgcache_t** pp = &pg_tls_first;
    for (Pgcache_t* c; (c = *pp) != NULL;) {
        Vmalloc_t* cv = pg_cache_vm(c);
        if (cv == vm) {
            *pp = c->tnext; /* to the front */
            c->tnext = pg_tls_first;
            pg_tls_first = c;
            return c;
        }
        if (!cv) { /* its region was closed: nobody else knows it now */
            *pp = c->tnext;
            if (c == pg_tls_malloc)
                pg_tls_malloc = NULL;
            (void)vm_os_unmap(c, c->mapsize);
            continue;
        }
        pp = &c->tnext;
    }
    (void)pthread_once(&pg_tc_once, pg_tc_setup);
    if (pthread_mutex_trylock(&vm_cache_lock) != 0)
        return NULL;
    pthread_mutex_lock(&vm->lock);
    Pgcache_t* c = pg_cache_new(vm, pg);
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

/* c if it is a cache of vm (c may be NULL, or a dead cache), else NULL. */
static inline Pgcache_t* pg_cache_if(Pgcache_t* c, const Vmalloc_t* vm)
{
    return c && __atomic_load_n(&c->vm, __ATOMIC_RELAXED) == vm ? c : NULL;
}

static inline Pgcache_t* pg_cache(Vmalloc_t* vm, Pgstate_t* pg)
{
    Pgcache_t* c = pg_cache_if(pg_tls_first, vm);
    return __builtin_expect(c != NULL, 1) ? c : pg_cache_find(vm, pg);
}

/* The list k of c is empty: take max / 2 blocks from the pages, return one. */
__attribute__((noinline)) static void* pg_refill(Vmalloc_t* vm, Pgstate_t* pg, Pgcache_t* c, unsigned k)
{
    Pgbin_t* bin = &c->bin[k];
    uint32_t want = bin->max / 2;
    pthread_mutex_lock(&vm->lock);
    if (pg->nxfer[k] > 0) { /* a whole list a flush left: this cache's own first */
        unsigned i = pg->nxfer[k] - 1;
        for (unsigned j = 0; j < i; ++j)
            if (pg->xfer[k][j].from == c) {
                Pgbatch_t t = pg->xfer[k][j];
                pg->xfer[k][j] = pg->xfer[k][i];
                pg->xfer[k][i] = t;
                break;
            }
        Pgbatch_t* x = &pg->xfer[k][--pg->nxfer[k]];
        void** b = x->head;
        uint32_t n = x->n; /* read under the lock: a flush may refill the slot after it */
        x->head = NULL;
        pthread_mutex_unlock(&vm->lock);
        if (!pg_is_free(pg, b)) {
            __atomic_add_fetch(&pg->damaged, 1, __ATOMIC_RELAXED);
            return NULL;
        }
        bin->head = b[0];
        pg_bin_setn(bin, n - 1);
        ((uint64_t*)b)[1] = 0;
        return b;
    }
    void** list = NULL;
    uint32_t n = pg_take_list(vm, pg, k, c, want, (void**)&list);
    pg_tick(vm, pg);
    vm->fault = 0; /* the locked path will try again and report */
    pthread_mutex_unlock(&vm->lock);
    if (n == 0)
        return NULL;
    bin->head = list[0];
    pg_bin_setn(bin, n - 1);
    ((uint64_t*)list)[1] = 0;
    return list;
}

__attribute__((noinline)) static void pg_flush(Vmalloc_t* vm, Pgstate_t* pg, Pgcache_t* c, unsigned k)
{
    Pgbin_t* bin = &c->bin[k];
    pthread_mutex_lock(&vm->lock);
    if (pg_shrinking(pg, k)) { /* the list's pages may be emptying: back to them */
        pg_cache_drain(vm, pg, c, k, UINT32_MAX);
        while (pg->nxfer[k] > 0) {
            Pgbatch_t* x = &pg->xfer[k][--pg->nxfer[k]];
            (void)pg_list_give(vm, pg, &x->head, UINT32_MAX);
            x->n = 0;
        }
    } else if (pg->nxfer[k] < pg_xfer_max(k) && pg_xfer_ready(pg)) { /* whole, for the next refill */
        Pgbatch_t* x = &pg->xfer[k][pg->nxfer[k]++];
        x->head = bin->head;
        x->n = pg_bin_n(bin);
        x->from = c;
        bin->head = NULL;
        pg_bin_setn(bin, 0);
    } else
        pg_cache_drain(vm, pg, c, k, bin->max / 2);
    pg_tick(vm, pg);
    pthread_mutex_unlock(&vm->lock);
}

void pg_close(Vmalloc_t* vm, Pgstate_t* pg)
{
    /* Its pages stop being pages before the discipline takes them back. */
    for (size_t i = 0; i < vm->nsegs; ++i) {
        Vmseg_t* seg = vm->segs[i];
        if (seg->mflags & SEG_PAGES)
            for (size_t j = 0; j < pg_seginfo(seg)->npages; ++j)
                (void)pg_map_set(pg_seginfo(seg)->first, pg_seginfo(seg)->kind, j, 0);
    }
    pthread_mutex_lock(&vm_cache_lock);
    for (Pgcache_t *c = pg->caches, *next; c; c = next) {
        next = c->rnext;
        if (c == pg->trust)
            (void)vm_os_unmap(c, c->mapsize); /* in no thread's list */
        else
            __atomic_store_n(&c->vm, NULL, __ATOMIC_RELEASE); /* its thread frees it */
    }
    pg->caches = NULL;
    pg->trust = NULL;
    if (pg->xfer)
        (void)vm_os_unmap(pg->xfer, vm_align_up(PG_NCLASS * sizeof *pg->xfer, vm_os_pagesize()));
    pg->xfer = NULL;
    pthread_mutex_unlock(&vm_cache_lock);
}

/* The calling thread's cache of vm and the transfer cache back to the
 * pages, so that what the region reports is exact for a single thread. */
static void pg_flush_mine(Vmalloc_t* vm, Pgstate_t* pg)
{
    for (Pgcache_t* c = pg_tls_first; c; c = c->tnext)
        if (pg_cache_vm(c) == vm)
            pg_cache_drain_all(vm, pg, c);
    if (pg->trust)
        pg_cache_drain_all(vm, pg, pg->trust);
    pg_xfer_drain(vm, pg);
}

/* ---- lock-free entry points ---------------------------------------------- */


static void* pg_alloc_damaged(Vmalloc_t* vm, Pgcache_t* c, unsigned k);
static int pg_flush_full(Vmalloc_t* vm, Pgcache_t* c, unsigned k);

/* A block of class k off c's list (refilled if empty). Its key is checked
 * here, not at free: the free path wrote this line when it pushed the
 * block, so the check is cheap here where at free it would wait for a line
 * the program may not have touched for long. */
static inline void* pg_cache_pop(Vmalloc_t* vm, Pgcache_t* c, unsigned k)
{
    Pgbin_t* bin = &c->bin[k];
    void** b = bin->head;
    if (__builtin_expect(b == NULL, 0))
        return pg_refill(vm, c->pg, c, k);
    if (__builtin_expect(((uint64_t*)b)[1] != pg_hash(c->key, b), 0))
        return pg_alloc_damaged(vm, c, k);
    bin->head = b[0];
    pg_bin_setn(bin, bin->n - 1);
    ((uint64_t*)b)[1] = 0;
    return b;
}

/* Link p, a busy block of class k keyed key, onto c's list: 0. A list that
 * overflows is flushed. */
static inline int pg_cache_link(Vmalloc_t* vm, Pgcache_t* c, unsigned k, void* p, uint64_t key)
{
    Pgbin_t* bin = &c->bin[k];
    ((void**)p)[0] = bin->head;
    ((uint64_t*)p)[1] = key;
    bin->head = p;
    uint32_t n = bin->n + 1;
    pg_bin_setn(bin, n);
    if (__builtin_expect(n > bin->max, 0))
        return pg_flush_full(vm, c, k);
    return 0;
}

/* Push p, a block of vm's page d, onto c's list: 0; 1 if p is not a busy
 * block there (not a block's start, never carved, or already free: the
 * locked path decides and reports). */
static inline int pg_cache_push(Vmalloc_t* vm, Pgcache_t* c, Pgpage_t* d, void* p)
{
    if (__builtin_expect(pg_index(d, p) < 0, 0))
        return 1;
    uint64_t key = pg_hash(c->key, p);
    /* A second free of a block is refused here (the locked path reports it). */
    if (__builtin_expect(((const uint64_t*)p)[1] == key, 0))
        return 1;
    return pg_cache_link(vm, c, d->cls, p, key);
}

/* The slow halves of the lock-free entries, out of line so that the fast
 * halves reach them by tail calls and save no registers. */

__attribute__((noinline)) static void* pg_alloc_damaged(Vmalloc_t* vm, Pgcache_t* c, unsigned k)
{
    pg_bin_damaged(c->pg, &c->bin[k]);
    return pg_refill(vm, c->pg, c, k);
}

/* The thread's cache of vm is not the first of its list (or there is none). */
__attribute__((noinline)) static void* pg_alloc_find(Vmalloc_t* vm, size_t size)
{
    Pgstate_t* pg = vm_state(vm);
    if (!__atomic_load_n(&pg->on, __ATOMIC_ACQUIRE))
        return NULL;
    Pgcache_t* c = pg_cache_find(vm, pg);
    return c ? pg_cache_pop(vm, c, pg_class(size)) : NULL;
}

__attribute__((noinline)) static int pg_free_find(Vmalloc_t* vm, Pgpage_t* d, void* p)
{
    Pgcache_t* c = pg_cache_find(vm, vm_state(vm));
    return c ? pg_cache_push(vm, c, d, p) : 1;
}

__attribute__((noinline)) static int pg_flush_full(Vmalloc_t* vm, Pgcache_t* c, unsigned k)
{
    pg_flush(vm, c->pg, c, k);
    return 0;
}

void* pg_fastallocf(Vmalloc_t* vm, size_t size, size_t align)
{
    if (__builtin_expect(size > PG_MAXCLASS || align > VM_ALIGN, 0))
        return NULL;
    /* A cache of vm exists only while vm uses pages (on never changes). The
     * first of the thread's list is the common case: a program allocates
     * mostly from one region. */
    Pgcache_t* c = pg_cache_if(pg_tls_first, vm);
    if (__builtin_expect(!c, 0))
        return pg_alloc_find(vm, size);
    return pg_cache_pop(vm, c, pg_class(size));
}

int pg_fastfreef(Vmalloc_t* vm, void* p)
{
    /* The key check reads p's line, a cache miss for a block freed long
     * after its last use: start fetching it while the page is looked up (a
     * prefetch of a bad address is harmless). */
    __builtin_prefetch(p, 1);
    Pgpage_t* d = pg_page_of(p);
    /* d->vm is set only while the page is active (pg_check verifies it). */
    if (__builtin_expect(!d || d->vm != vm, 0))
        return 1;
    Pgcache_t* c = pg_cache_if(pg_tls_first, vm);
    if (__builtin_expect(!c, 0))
        return pg_free_find(vm, d, p);
    return pg_cache_push(vm, c, d, p);
}

/* ---- the malloc interface's entries (vmhdr.h) ---------------------------- */

/* The malloc interface's region is not the one of pg_tls_malloc: find the
 * thread's cache of it if it is a Vmbest region using pages. */
__attribute__((noinline)) static Pgcache_t* pg_malloc_find(Vmalloc_t* vm)
{
    if (vm->meth != &vm_best_method || (vm->flags & VM_TRUST))
        return NULL;
    Pgstate_t* pg = vm_state(vm);
    if (!__atomic_load_n(&pg->on, __ATOMIC_ACQUIRE))
        return NULL;
    Pgcache_t* c = pg_cache_find(vm, pg);
    if (c)
        pg_tls_malloc = c;
    return c;
}

__attribute__((noinline)) static void* pg_malloc_slow(Vmalloc_t* vm, size_t size)
{
    Pgcache_t* c = size <= PG_MAXCLASS ? pg_malloc_find(vm) : NULL;
    return c ? pg_cache_pop(vm, c, pg_class(size)) : NULL;
}

void* vm_best_malloc(Vmalloc_t* vm, size_t size)
{
    Pgcache_t* c = pg_cache_if(pg_tls_malloc, vm);
    if (__builtin_expect(c == NULL || size > PG_MAXCLASS, 0))
        return pg_malloc_slow(vm, size);
    return pg_cache_pop(vm, c, pg_class(size));
}

int vm_best_free(Vmalloc_t* vm, void* p)
{
    __builtin_prefetch(p, 1); /* see pg_fastfreef */
    Pgpage_t* d = pg_page_of(p);
    if (__builtin_expect(!d || d->vm != vm, 0))
        return 1;
    Pgcache_t* c = pg_cache_if(pg_tls_malloc, vm);
    if (__builtin_expect(!c, 0)) {
        c = pg_malloc_find(vm);
        if (!c)
            return 1;
    }
    return pg_cache_push(vm, c, d, p);
}

/* Blocks that grow past this leave the pages for a best-fit block, which
 * can then grow in place. */
#define PG_GROW_OUT PG_MAXSMALL

/* The resize of p, a busy block of vm, with the thread's cache c of vm
 * (see fastresizef). */
static inline void* pg_resize_in(Vmalloc_t* vm, Pgcache_t* c, void* p, size_t size)
{
    Pgpage_t* d = pg_page_of(p);
    if (!d || !pg_busy(vm, c->pg, d, p))
        return NULL;
    size_t old = d->bsize;
    if (pg_resize_stays(old, size))
        return p;
    size_t want = pg_resize_want(old, size);
    if (pg_grows_out(old, want))
        return NULL; /* the locked path (a best-fit block for one growing out) */
    void* q = pg_cache_pop(vm, c, pg_class(want));
    if (!q)
        return NULL;
    memcpy(q, p, size < old ? size : old);
    (void)pg_cache_link(vm, c, d->cls, p, pg_hash(c->key, p)); /* p was validated above */
    return q;
}

void* pg_fastresizef(Vmalloc_t* vm, void* p, size_t size)
{
    Pgcache_t* c = pg_cache(vm, vm_state(vm));
    return c ? pg_resize_in(vm, c, p, size) : NULL;
}

void* vm_best_realloc(Vmalloc_t* vm, void* p, size_t size)
{
    Pgcache_t* c = pg_cache_if(pg_tls_malloc, vm);
    if (__builtin_expect(!c, 0) && !(c = pg_malloc_find(vm)))
        return NULL;
    return pg_resize_in(vm, c, p, size);
}

int pg_grows_out(size_t old, size_t want) { return want > old && want > PG_GROW_OUT; }

/* ---- locked entry points --------------------------------------------------- */

/* A new secret for the keys, in the state and in every cache (whose lists
 * are empty: a cleared region's, or none yet). */
static void pg_rekey(Pgstate_t* pg)
{
    pg->key = vm_os_random();
    for (Pgcache_t* c = pg->caches; c; c = c->rnext)
        c->key = pg->key;
}

void pg_init(Vmalloc_t* vm, Pgstate_t* pg)
{
    Pgcache_t* caches = pg->caches;
    memset(pg, 0, sizeof *pg);
    pg->caches = caches;
    pg_rekey(pg);
    pg->lastpurge = vm_os_now_ms();
    __atomic_store_n(&pg->on, vm->disc == &vm_dc_system, __ATOMIC_RELEASE);
}

void* pg_alloc(Vmalloc_t* vm, Pgstate_t* pg, size_t size)
{
    void* b = pg_take(vm, pg, pg_class(size), NULL);
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
    pg_mark_free(pg, p, NULL);
    pg_give(vm, pg, d, p);
    return 0;
}

long pg_size(Vmalloc_t* vm, Pgstate_t* pg, void* p)
{
    Pgpage_t* d = pg_mine(vm, p);
    if (!d)
        return -2;
    return pg_busy(vm, pg, d, p) ? (long)d->bsize : -1;
}

long pg_addr(Vmalloc_t* vm, Pgstate_t* pg, void* addr)
{
    Pgpage_t* d = pg_mine(vm, addr);
    if (!d)
        return -2;
    if (d->state != PG_ACTIVE)
        return -1;
    size_t off = (size_t)((char*)addr - pg_page_addr(d));
    if (off < d->start)
        return -1;
    size_t i = (off - d->start) / d->bsize;
    if (i >= pg_bump(d))
        return -1;
    char* b = pg_block(d, (unsigned)i);
    return pg_is_free(pg, b) ? -1 : (char*)addr - b;
}

void pg_clear(Vmalloc_t* vm, Pgstate_t* pg)
{
    /* Every cache is emptied: its blocks were the region's and are now free. */
    for (Pgcache_t* c = pg->caches; c; c = c->rnext)
        for (unsigned k = 0; k < PG_NCLASS; ++k) {
            c->bin[k].head = NULL;
            pg_bin_setn(&c->bin[k], 0);
            c->own[k] = NULL;
        }
    Pgcache_t* caches = pg->caches;
    Pgcache_t* trust = pg->trust;
    Pgbatch_t(*xfer)[PG_XFER] = pg->xfer;
    size_t nextseg[2] = {pg->kind[0].nextseg, pg->kind[1].nextseg};
    memset(&pg->key, 0, sizeof *pg - offsetof(Pgstate_t, key)); /* on stays as it is */
    pg->caches = caches;
    pg->trust = trust;
    pg->xfer = xfer; /* its lists are gone with the rest: nxfer is 0 */
    pg->kind[0].nextseg = nextseg[0];
    pg->kind[1].nextseg = nextseg[1];
    pg_rekey(pg);
    pg->lastpurge = vm_os_now_ms();
    for (size_t i = 0; i < vm->nsegs; ++i) {
        Vmseg_t* seg = vm->segs[i];
        if (!(seg->mflags & SEG_PAGES))
            continue;
        Pgseg_t* info = pg_seginfo(seg);
        Pgkind_t* pk = &pg->kind[info->kind];
        info->nactive = 0;
        for (size_t j = info->npages; j-- > 0;) {
            Pgpage_t* d = pg_desc(info->first, j);
            int dirty = d->dirty || d->state == PG_ACTIVE;
            d->vm = NULL;
            d->free = NULL;
            d->owner = NULL;
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

void pg_compact(Vmalloc_t* vm, Pgstate_t* pg)
{
    pg_flush_mine(vm, pg);
    for (Pgcache_t* c = pg->caches; c; c = c->rnext) /* own[] is read under the lock only */
        pg_disown(vm, pg, c);
    for (unsigned k = 0; k < PG_NCLASS; ++k) {
        Pgpage_t* d = pg->partial[k];
        while (d) {
            Pgpage_t* next = d->next;
            if (d->used == 0)
                pg_retire(vm, pg, d, 1);
            d = next;
        }
    }
    pg_purge_to(pg, 0, 0);
    pg_purge_to(pg, 1, 0);
    pg_release_empty(vm, pg);
}

/* Blocks in thread caches count as busy in the core's figures; vmstat
 * reports them free (other threads' counts are read as they change). */
void pg_stat_caches(Vmalloc_t* vm, Pgstate_t* pg, Vmstat_t* st)
{
    (void)vm; /* the caller's own cache is counted like the others, not flushed:
               * a program may call vmstat often (vmreplay does) */
    for (unsigned k = 0; k < PG_NCLASS; ++k) {
        size_t n = 0;
        for (unsigned x = 0; x < pg->nxfer[k]; ++x)
            n += pg->xfer[k][x].n;
        for (Pgcache_t* c = pg->caches; c; c = c->rnext)
            n += pg_bin_n(&c->bin[k]);
        if (n > st->n_busy || n * pg_csize[k] > st->s_busy)
            continue; /* counts read while they changed */
        st->n_busy -= n;
        st->s_busy -= n * pg_csize[k];
        st->n_free += n;
        st->s_free += n * pg_csize[k];
    }
}

static inline Pgpage_t* pg_seg_page(const Pgseg_t* info, size_t j)
{
    return pg_desc(info->first, j);
}

void pg_stat_seg(Vmalloc_t* vm, Pgstate_t* pg, Vmseg_t* seg, Vmstat_t* st)
{
    (void)vm;
    (void)pg;
    Pgseg_t* info = pg_seginfo(seg);
    for (size_t j = 0; j < info->npages; ++j) {
        Pgpage_t* d = pg_seg_page(info, j);
        size_t room = d->state == PG_ACTIVE ? (size_t)(d->cap - d->used) * d->bsize
                                            : pg_psize(info->kind) - pg_start(info, j);
        if (d->state == PG_ACTIVE && d->used && d->bsize > st->m_busy)
            st->m_busy = d->bsize;
        if (room) {
            st->n_free += d->state == PG_ACTIVE ? (size_t)(d->cap - d->used) : 1;
            st->s_free += room;
            if (d->state != PG_ACTIVE && room > st->m_free)
                st->m_free = room;
        }
    }
}

/* The free blocks of page d as a bitmap (caller's buffer of cap bits). */
static void pg_free_map(const Pgpage_t* d, uint64_t* map)
{
    memset(map, 0, ((size_t)d->cap + 63) / 64 * 8);
    size_t n = 0;
    for (void* b = d->free; b && n < d->nfree; b = *(void**)b, ++n) {
        long i = pg_index(d, b);
        if (i >= 0)
            map[i >> 6] |= (uint64_t)1 << (i & 63);
    }
}

int pg_walk_seg(Vmalloc_t* vm, Pgstate_t* pg, Vmseg_t* seg, Vmvisit_f visit, void* arg)
{
    uint64_t map[(PG_SIZE / 16 + 63) / 64];
    Pgseg_t* info = pg_seginfo(seg);
    /* The aligned twin is an internal detail: the user's discipline is Vmdcsystem. */
    Vmdisc_t* disc = seg->disc == &vm_dc_system_aligned ? &vm_dc_system : seg->disc;
    pg_flush_mine(vm, pg);
    for (size_t j = 0; j < info->npages; ++j) {
        Pgpage_t* d = pg_seg_page(info, j);
        if (d->state != PG_ACTIVE || d->used == 0)
            continue;
        pg_free_map(d, map);
        unsigned bump = pg_bump(d);
        for (unsigned i = 0; i < bump; ++i) {
            if (map[i >> 6] >> (i & 63) & 1)
                continue;
            int r = visit(vm, pg_block(d, i), d->bsize, disc, arg);
            if (r != 0)
                return r;
        }
    }
    return 0;
}

/* Violations in one page segment; adds the blocks out of its pages (busy or
 * in a cache) to *nused and their bytes to *sused. */
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
    for (size_t j = 0; j < info->npages; ++j) {
        char* P = info->first + j * psize;
        Pgpage_t* d = pg_desc(info->first, j);
        if (pg_page_of(P) != d || pg_page_of(P + psize - 1) != d || d->kind != info->kind ||
            pg_page_addr(d) != P) {
            bad++;
            continue;
        }
        if (d->state == PG_EMPTY) {
            if (d->vm)
                bad++;
            continue;
        }
        active++;
        unsigned k = d->cls;
        if (d->state != PG_ACTIVE || d->vm != vm || k >= PG_NCLASS || d->bsize != pg_csize[k] ||
            pg_kind_of(k) != d->kind || d->start != pg_start(info, j) ||
            d->cap != (psize - d->start) / d->bsize || d->bump > d->cap ||
            d->nfree > d->bump || d->used != d->bump - d->nfree) {
            bad++;
            continue;
        }
        memset(map, 0, sizeof map);
        size_t n = 0;
        void* b = d->free;
        for (; b && n <= d->nfree; b = *(void**)b, ++n) {
            long i = pg_index(d, b);
            if (i < 0 || (map[i >> 6] >> (i & 63) & 1) || !pg_is_free(pg, b)) {
                bad++;
                break;
            }
            map[i >> 6] |= (uint64_t)1 << (i & 63);
        }
        if (n != d->nfree || (b && n >= d->nfree))
            bad++;
        *nused += d->used;
        *sused += (size_t)d->used * d->bsize;
    }
    if (active != info->nactive)
        bad++;
    return bad;
}

/* The lists: every page in them is where its state says, counted right. */
int pg_check(Vmalloc_t* vm, Pgstate_t* pg)
{
    int bad = (int)__atomic_load_n(&pg->damaged, __ATOMIC_RELAXED);
    size_t limit = pg->kind[0].npages + pg->kind[1].npages + 1, n;
    pg_flush_mine(vm, pg);
    for (unsigned k = 0; k < PG_NCLASS; ++k) {
        n = 0;
        for (Pgpage_t* d = pg->partial[k]; d; d = d->next) {
            if (++n > limit || pg_page_of(pg_page_addr(d)) != d || d->vm != vm ||
                d->state != PG_ACTIVE || d->cls != k || !pg_has_room(d) || d->owner) {
                bad++;
                break;
            }
        }
    }
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
