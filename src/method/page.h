/*
 * method/page.h — the small-block layer of Vmbest: size classes served from
 * 32 KiB (up to 2 KiB) or 64 KiB pages (up to 16 KiB) of one class, with
 * each page owned by one thread heap (page.c).
 *
 * Glossary (all sizes in bytes; P is a page's address, a multiple of PG_SIZE)
 *   class        one of PG_NCLASS block sizes, 16 .. PG_MAXCLASS: steps of 16
 *                up to 256, then 8 steps per doubling, so a request is never
 *                rounded up by more than 12.5% above 256 bytes.
 *   page segment a discipline segment of up to 60 pages of one kind (PG_SIZE
 *                or PG_LSIZE), aligned to its page size (Vmdcsystem's
 *                aligned twin gives them). Its first page starts with the
 *                Vmseg_t, the segment's counters and a 64-byte descriptor per
 *                page, all in its first OS page.
 *   page         PG_SIZE (or PG_LSIZE) bytes at P, blocks of one class at
 *                P + start + i * bsize for 0 <= i < cap (start > 0 only in a
 *                segment's first page). No block has a header: the process-
 *                wide page map gives, for any address, its page's descriptor
 *                or NULL.
 *                  bump  = blocks ever carved (never-used ones follow them)
 *                  lim   = min(bump * bsize, 65535): the carved bytes from
 *                          block 0, which a free compares first
 *                  used  = bump - |free| - |gone|: blocks with users, or
 *                          freed by a thread other than the owner and not
 *                          yet collected (in xfree, whose word holds its
 *                          length: used == length means no user is left,
 *                          and a page not first in its owner's queue then
 *                          goes back to the region)
 *                  gone  = the blocks starting in the eighths of a held
 *                          page that a sweep purged: free, on no list, read
 *                          as zeros; none in an owned page
 *                A page is empty (on the dirty or the clean list) or active
 *                (has a class). An active page is owned by one thread heap,
 *                which alone allocates from it and frees to its free list,
 *                without a lock, or held by the region (owner NULL: its
 *                thread ended, or the locked path made it), on partial[cls],
 *                its free list under the region lock. Any other thread frees
 *                to xfree, an atomic list; the owner (or a lock holder, for
 *                a held page) moves xfree to free ("collects").
 *   key          a free block holds its next pointer in word 0 and pg_key(p)
 *                in word 1. A busy block has word 1 cleared when it is
 *                handed out, so a second free of the same block is caught in
 *                O(1) (the user would have to write the region's secret
 *                there to fool it). A block is checked again when it is
 *                handed out or collected: a write after free that broke it
 *                drops the rest of its list (a bounded leak) instead of
 *                handing a block out twice.
 *   thread heap  per (thread, region) (Pgheap_t): for each class, a queue
 *                of the pages it owns; malloc takes from the first. A
 *                region counts every block of an owned page busy (its free
 *                ones are out of the region's hands); vmstat reports them
 *                free.
 */
#ifndef VM_PAGE_H
#define VM_PAGE_H

#include "../vmhdr.h"

#define PG_SHIFT 15 /* small pages: classes up to PG_MAXSMALL */
#define PG_SIZE ((size_t)1 << PG_SHIFT)
#define PG_LSHIFT 16 /* large pages: the classes above, up to PG_MAXCLASS */
#define PG_LSIZE ((size_t)1 << PG_LSHIFT)
#define PG_NCLASS 64
#define PG_NSMALL 40 /* classes in small pages */
#define PG_MAXSMALL ((size_t)2048)
#define PG_MAXCLASS ((size_t)16384)

#define SEG_PAGES 2u /* seg->mflags: a page segment (SEG_HUGE is 1, best.c) */

typedef struct pg_page Pgpage_t;
typedef struct pg_heap Pgheap_t;

/* The layer's state, part of Vmbest's region state; guarded by the region
 * lock except where page.c says otherwise. */
typedef struct {
    int on;                        /* the region uses pages (Vmdcsystem memory) */
    uint64_t key;                  /* keys free blocks (pg_key); renewed by pg_clear */
    /* The active pages no thread owns, by class: with room first (a page
     * that runs out goes to the tail). */
    Pgpage_t* partial[PG_NCLASS];
    Pgpage_t* ptail[PG_NCLASS];
    struct pg_kind {               /* small pages [0], large pages [1] */
        Pgpage_t* empty;           /* empty dirty pages (touched since purged), newest first */
        Pgpage_t* emptytail;       /* the oldest: purged first */
        Pgpage_t* clean;           /* empty pages purged or never touched */
        size_t ndirty, nclean;
        size_t nold;               /* dirty pages that were dirty at the last tick: the
                                    * list's last nold (taking from the head and purging
                                    * from the tail keep it so) */
        size_t npages;             /* pages in all page segments of the kind */
        size_t nextseg;            /* pages in the next page segment */
        struct pg_seginfo* grow;   /* the newest segment: pg_grow grows it in place first */
        int inplace;               /* a segment has grown in place: new ones start small */
        unsigned refused;          /* new segments outside the page map (its window) */
    } kind[2];
    size_t pagebytes;              /* bytes in all page segments */
    Pgheap_t* heaps;               /* this region's thread heaps */
    Pgheap_t* trust;               /* the one heap of a VM_TRUST region, or NULL */
    uint64_t lasttick;             /* ms: Vmbest's last timed upkeep (vm_best_tick) */
    size_t damaged;                /* free lists found damaged (page.c): atomic */
} Pgstate_t;

/* Set up the layer for a new or cleared region: on when its discipline is
 * Vmdcsystem (pages need PG_SIZE-aligned segments). Locked. */
void pg_init(Vmalloc_t* vm, Pgstate_t* pg);

static inline int pg_small(const Pgstate_t* pg, size_t size, size_t align)
{
    /* on is published last by pg_init (Vmheap sets itself up on first use
     * while other threads may already look): an acquire load. */
    return size <= PG_MAXCLASS && align <= VM_ALIGN && __atomic_load_n(&pg->on, __ATOMIC_ACQUIRE);
}

/* Locked entry points (region lock held, or VM_TRUST). */
void* pg_alloc(Vmalloc_t* vm, Pgstate_t* pg, size_t size);
/* 1: p is not in any page (the caller's business); 0: freed; -1: a bad
 * address of a page (VM_BADADDR recorded). */
int pg_free(Vmalloc_t* vm, Pgstate_t* pg, void* p);
/* Usable size of the busy small block p; -2 if p is in no page; -1 if it is
 * in a page but not a busy block of vm. */
long pg_size(Vmalloc_t* vm, Pgstate_t* pg, void* p);
/* vmaddr for an address in a page: offset in its busy block, -1 if none,
 * -2 if addr is in no page. */
long pg_addr(Vmalloc_t* vm, Pgstate_t* pg, void* addr);
void pg_clear(Vmalloc_t* vm, Pgstate_t* pg);
void pg_compact(Vmalloc_t* vm, Pgstate_t* pg);
/* For one page segment: add its figures, visit its busy blocks, check it. */
void pg_stat_seg(Vmalloc_t* vm, Pgstate_t* pg, Vmseg_t* seg, Vmstat_t* st);
/* Before the segments: collect what other threads freed to the held pages
 * and to the caller's own, and take the busy figures again. */
void pg_stat_begin(Vmalloc_t* vm, Pgstate_t* pg, Vmstat_t* st);
int pg_walk_seg(Vmalloc_t* vm, Pgstate_t* pg, Vmseg_t* seg, Vmvisit_f visit, void* arg);
int pg_check_seg(Vmalloc_t* vm, Pgstate_t* pg, Vmseg_t* seg, size_t* nused, size_t* sused);
int pg_check(Vmalloc_t* vm, Pgstate_t* pg);
/* One step of the timed upkeep (vm_best_tick): held pages collected, the
 * empty pages already dirty at the previous step purged, wholly empty page
 * segments given back. 1 if dirty pages wait for the next step. Locked. */
int pg_age(Vmalloc_t* vm, Pgstate_t* pg);
/* Vmbest's rule before its arena grows (best.c), which pg_grow follows
 * too: the best-fit blocks freed and kept resident for reuse go back
 * first. Locked. */
void vm_best_growing(Vmalloc_t* vm);
/* Vmbest's timed upkeep (best.c), which the page layer's locked slow paths
 * call: the step is taken when BEST_TICK_MS have passed since the last.
 * The ms until the next step is due, or -1 when nothing waits for one.
 * Locked. */
long vm_best_tick(Vmalloc_t* vm);

/* Lock-free entry points, for the method table (no lock held by the
 * caller). They find the state at vm_state(vm): Pgstate_t must be the first
 * member of the method's state. */
void* pg_fastallocf(Vmalloc_t* vm, size_t size, size_t align);
/* 0: freed; 1: not served here (the locked path decides, and reports). */
int pg_fastfreef(Vmalloc_t* vm, void* p);
/* The tail entries (vmhdr.h): a block or vm_alloc_locked's answer; 0 or
 * vm_free_locked's. */
void* pg_tailallocf(Vmalloc_t* vm, size_t size, void* caller);
int pg_tailfreef(Vmalloc_t* vm, void* p, void* caller);
/* A realloc-style resize of a small block of vm, or NULL: ask the locked path. */
void* pg_fastresizef(Vmalloc_t* vm, void* p, size_t size);
/* Does a small block of old bytes growing to want leave the pages (for a
 * best-fit block, which can grow in place)? Past PG_GROW_OUT it does. */
#define PG_GROW_OUT PG_MAXSMALL
static inline int pg_grows_out(size_t old, size_t want) { return want > old && want > PG_GROW_OUT; }

/* The resize policy for a small block of old usable bytes asked for size:
 * it stays while the size fits and is more than half of it (or the block is
 * at most 128 bytes: little to gain); a block that grows and must move gets
 * twice its room (the paper's growth slack: a block grown step by step moves
 * O(log n) times). */
static inline int pg_resize_stays(size_t old, size_t size)
{
    return size <= old && (size > old / 2 || old <= 128);
}
static inline size_t pg_resize_want(size_t old, size_t size)
{
    return size > old && size < 2 * old ? 2 * old : size;
}
/* The region is being closed: forget its thread heaps. Unlocked. */
void pg_close(Vmalloc_t* vm, Pgstate_t* pg);

#endif /* VM_PAGE_H */
