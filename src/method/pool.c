/*
 * method/pool.c — Vmpool, blocks of one size (paper §2.3.2).
 *
 * The block size is fixed by the first allocation after vmopen() or
 * vmclear(): max(8, size rounded up to 8). Later requests whose rounded size
 * differs are refused (NULL, EINVAL). Blocks are laid out at multiples of the
 * size's natural alignment, min(VM_ALIGN, largest power of two dividing the
 * block size), which is what C asks of an object of that size.
 *
 * Algorithm. Blocks carry no header. Each segment starts with a Poolseg_t:
 * its free list (free blocks linked through their first word), a bitmap with
 * one busy bit per block, and a count of blocks "carved" so far: blocks past
 * that mark have never been handed out and are carved lazily, so a fresh
 * segment costs nothing until used. Segments with a free or uncarved block are
 * on the region's avail list. Freeing finds the segment (the hint: that of
 * the last block freed or found, else vm_seg_find), and the block index from
 * the offset; the busy bit makes double frees, interior and foreign pointers
 * detectable without touching the block. A free block's link is checked
 * before it is followed, so a program that writes into a freed block cannot
 * make the pool hand out busy or foreign memory; the segment's free list is
 * then rebuilt from its bitmap.
 *
 * VM_TRUST. The caller vouches for every address and for one thread at a
 * time, so vmalloc and vmfree take lock-free paths (pool_tail_alloc and
 * pool_tail_free, which they jump to; pool_fast_alloc and pool_fast_free
 * for the core's other callers) that check nothing a correct caller cannot
 * get wrong: a
 * popped block's link is followed unchecked, and a block freed in the
 * segment of the last block freed or found (the hint) is taken to be busy
 * and to start a block. They still keep the bitmap, the segment's busy
 * count, the avail list and the region's counts exactly, so vmstat,
 * vmwalk, vmdbcheck, vmcompact and vmclear need no special case. A free in
 * another segment is found and validated as on the locked path; a request
 * of another size, a larger alignment, or one that needs a new segment
 * goes to the locked path.
 *
 * Bounds. Allocation O(1) (plus a discipline call when the pool grows); free,
 * vmsize, vmaddr O(log segments), O(1) when the address is in the hint
 * segment. Space: 1 bit per block plus an 80-byte header per segment;
 * segments double from 64 KiB up to 1 MiB, so a large pool of small blocks
 * wastes at most about one segment. vmstat, vmwalk, vmdbcheck and vmcompact
 * visit every segment (vmdbcheck every block).
 */
#include "../vmhdr.h"

#include <stddef.h>

#define POOL_FMT 1u                   /* seg->mflags: seg->mdata is its Poolseg_t */
#define POOL_SEGMIN ((size_t)64 << 10) /* the first segment the pool asks for */
#define POOL_SEGMAX ((size_t)1 << 20)  /* segments stop doubling here */

typedef struct pool_seg_s Poolseg_t;
struct pool_seg_s {
    /* The fields the trusted paths touch come first, to share a cache line. */
    void* free;      /* free blocks among the carved ones */
    char* first;     /* block 0, aligned to the block size's natural alignment */
    size_t span;     /* nblocks * bsize: the bytes from first that hold blocks */
    size_t nbusy;    /* busy blocks: the bits set in map; carved - nbusy are free */
    size_t carved;   /* blocks [0, carved) have been handed out at least once */
    size_t nblocks;  /* blocks that fit in the segment */
    int avail;       /* on the avail list */
    Poolseg_t* next; /* the avail list: segments with a free or uncarved block */
    Poolseg_t* prev;
    Vmseg_t* seg;    /* the segment this header starts */
    uint64_t map[];  /* bit i: block i busy; bits of blocks >= carved are 0 */
};

typedef struct pool_s {
    size_t bsize;     /* the block size; 0 until fixed */
    uint64_t recip;   /* 2^44 / bsize + 1: offset / bsize by a multiply (pool_index) */
    size_t mullim;    /* offsets below it divide exactly by recip: 2^20, or 0 if bsize >= 2^24 */
    Poolseg_t* hint;  /* the segment of the last block freed or found: tried first */
    size_t balign;    /* its natural alignment */
    Poolseg_t* avail; /* segments that can give a block without growing */
    size_t segsize;   /* bytes to ask for the next segment */
} Pool_t;

static inline Pool_t* pool_state(Vmalloc_t* vm) { return (Pool_t*)vm_state(vm); }

/* The block size a request of size bytes needs. */
static inline size_t pool_round(size_t size)
{
    return size <= 8 ? 8 : vm_align_up(size, 8);
}

/* The alignment C requires of an object of bsize bytes (a multiple of 8). */
static inline size_t pool_natural(size_t bsize)
{
    size_t low = bsize & (~bsize + 1);
    return low < VM_ALIGN ? low : VM_ALIGN;
}

/* pool_index's multiplier for bsize, and the offsets it is exact below. */
static inline uint64_t pool_recip(size_t bsize) { return (((uint64_t)1) << 44) / bsize + 1; }
static inline size_t pool_mullim(size_t bsize)
{
    return bsize < ((size_t)1 << 24) ? (size_t)1 << 20 : 0;
}

static inline size_t pool_words(size_t nblocks) { return (nblocks + 63) / 64; }

static inline int pool_bit(const Poolseg_t* ps, size_t i)
{
    return (int)((ps->map[i / 64] >> (i % 64)) & 1u);
}

static inline void pool_setbit(Poolseg_t* ps, size_t i)
{
    ps->map[i / 64] |= (uint64_t)1 << (i % 64);
}

static inline void pool_clrbit(Poolseg_t* ps, size_t i)
{
    ps->map[i / 64] &= ~((uint64_t)1 << (i % 64));
}

static inline void* pool_link(const void* block)
{
    void* next;
    memcpy(&next, block, sizeof next);
    return next;
}

static inline void pool_setlink(void* block, void* next) { memcpy(block, &next, sizeof next); }

static void pool_avail_push(Pool_t* pl, Poolseg_t* ps)
{
    ps->prev = NULL;
    ps->next = pl->avail;
    if (pl->avail)
        pl->avail->prev = ps;
    pl->avail = ps;
    ps->avail = 1;
}

static void pool_avail_remove(Pool_t* pl, Poolseg_t* ps)
{
    if (!ps->avail)
        return;
    if (ps->prev)
        ps->prev->next = ps->next;
    else
        pl->avail = ps->next;
    if (ps->next)
        ps->next->prev = ps->prev;
    ps->next = ps->prev = NULL;
    ps->avail = 0;
}

/* Lay a Poolseg_t for blocks of pl->bsize over [seg->data, seg->end) and mark
 * the segment as the pool's. Returns the header, or NULL (segment left
 * unmarked) when not one block fits, as in a small home segment. The bitmap
 * is not cleared here: a word is cleared when its first block is carved. */
static Poolseg_t* pool_format(Pool_t* pl, Vmseg_t* seg)
{
    size_t bsize = pl->bsize, hdr = offsetof(Poolseg_t, map);
    char* data = seg->data;
    seg->mflags &= ~POOL_FMT;
    seg->mdata = NULL;
    if ((size_t)(seg->end - data) < hdr + 8 + bsize)
        return NULL;
    /* The bitmap shrinks with the block count, so settle both by iterating
     * down from the count that ignores the bitmap; it takes a few rounds. */
    size_t n = (size_t)(seg->end - data - hdr) / bsize;
    char* first;
    for (;;) {
        first = vm_ptr_up(data + hdr + pool_words(n) * 8, pl->balign);
        size_t fit = first <= seg->end ? (size_t)(seg->end - first) / bsize : 0;
        if (fit >= n)
            break;
        n = fit < n - 1 ? fit : n - 1;
    }
    if (n == 0)
        return NULL;
    Poolseg_t* ps = (Poolseg_t*)data;
    memset(ps, 0, hdr);
    ps->seg = seg;
    ps->first = first;
    ps->nblocks = n;
    ps->span = n * bsize;
    seg->mflags |= POOL_FMT;
    seg->mdata = ps;
    return ps;
}

static inline Poolseg_t* pool_seg(const Vmseg_t* seg)
{
    return (seg->mflags & POOL_FMT) ? (Poolseg_t*)seg->mdata : NULL;
}

/* Fix the block size: lay out every segment the region already has (after
 * vmclear they are all empty) and put those that hold a block on avail. */
static void pool_fix(Vmalloc_t* vm, Pool_t* pl, size_t bsize)
{
    pl->bsize = bsize;
    pl->recip = pool_recip(bsize);
    pl->mullim = pool_mullim(bsize);
    pl->balign = pool_natural(bsize);
    pl->avail = NULL;
    pl->hint = NULL;
    for (size_t i = vm->nsegs; i-- > 0;) {
        Poolseg_t* ps = pool_format(pl, vm->segs[i]);
        if (ps)
            pool_avail_push(pl, ps);
    }
}

/* Forget the block size (nothing is busy): segments go back to unmarked. */
static void pool_unfix(Vmalloc_t* vm, Pool_t* pl)
{
    for (size_t i = 0; i < vm->nsegs; ++i) {
        vm->segs[i]->mflags &= ~POOL_FMT;
        vm->segs[i]->mdata = NULL;
    }
    pl->bsize = pl->balign = pl->mullim = 0;
    pl->hint = NULL;
    pl->avail = NULL;
}

/* Get a segment for more blocks, doubling the request each time up to
 * POOL_SEGMAX, but always big enough for one block. If the discipline cannot
 * give the generous size, ask for just one block's worth before giving up
 * (a user's buffer near its end). NULL with the VM_NOMEM fault set. */
static Poolseg_t* pool_grow(Vmalloc_t* vm, Pool_t* pl)
{
    size_t fixed = vm_seg_need(0, 0);
    size_t want = pl->segsize ? pl->segsize : POOL_SEGMIN;
    size_t one = offsetof(Poolseg_t, map) + 8 + pl->balign + pl->bsize;
    size_t minsize = want > fixed ? want - fixed : 0;
    if (minsize < one)
        minsize = one;
    Vmseg_t* seg = vm_seg_get(vm, minsize);
    if (!seg && one < minsize)
        seg = vm_seg_get(vm, one);
    if (!seg)
        return NULL;
    vm->fault = 0; /* a first refusal above was answered by the second try */
    if (want < POOL_SEGMAX)
        pl->segsize = want * 2;
    Poolseg_t* ps = pool_format(pl, seg);
    if (ps)
        pool_avail_push(pl, ps);
    return ps;
}

/* d / bsize by a multiply: exact for d < 2^20 (segments stop at 1 MiB) and
 * sizes below 2^24, since the multiply's error, under d / 2^44 < 2^-24, is
 * less than d / bsize's distance to the next integer; a division otherwise. */
static inline size_t pool_index(const Pool_t* pl, size_t d)
{
    if (__builtin_expect(d < pl->mullim, 1))
        return (size_t)((d * pl->recip) >> 44);
    return d / pl->bsize;
}

/* Rebuild a segment's free list from its bitmap, after a freed block's link
 * was found overwritten. Blocks the bitmap calls free are free. */
static void pool_relink(Pool_t* pl, Poolseg_t* ps)
{
    ps->free = NULL;
    for (size_t i = ps->carved; i-- > 0;) {
        if (!pool_bit(ps, i)) {
            char* b = ps->first + i * pl->bsize;
            pool_setlink(b, ps->free);
            ps->free = b;
        }
    }
}

/* Is next an acceptable successor on ps's free list: NULL, or a carved, free
 * block of ps? */
static int pool_link_ok(const Pool_t* pl, const Poolseg_t* ps, const char* next)
{
    if (!next)
        return 1;
    if (next < ps->first)
        return 0;
    size_t off = (size_t)(next - ps->first);
    size_t i = pool_index(pl, off);
    return off == i * pl->bsize && i < ps->carved && !pool_bit(ps, i);
}

/* Carve ps's next uncarved block (ps->free is empty); its index in *idx. A
 * bitmap word is cleared when its first block is carved (pool_format leaves
 * the bitmap as it found it). */
static inline char* pool_carve(const Pool_t* pl, Poolseg_t* ps, size_t* idx)
{
    size_t i = ps->carved++;
    if (i % 64 == 0)
        ps->map[i / 64] = 0;
    *idx = i;
    return ps->first + i * pl->bsize;
}

/* Block i of ps has just been taken off its free list or carved: mark it
 * busy and count it; ps leaves avail when it has nothing left to give. */
static inline void pool_taken(Vmalloc_t* vm, Pool_t* pl, Poolseg_t* ps, size_t i)
{
    pool_setbit(ps, i);
    ps->nbusy += 1;
    if (__builtin_expect(!ps->free && ps->carved == ps->nblocks, 0))
        pool_avail_remove(pl, ps);
    vm_busy_add(vm, pl->bsize);
}

/* Hand out one block: from the first avail segment's free list, else its
 * next uncarved block, else a new segment. The free list's next link is
 * checked before it is kept (the block may have been written after it was
 * freed); a bad one makes the segment's list be rebuilt from the bitmap. */
static void* pool_take(Vmalloc_t* vm, Pool_t* pl)
{
    Poolseg_t* ps = pl->avail;
    if (!ps && !(ps = pool_grow(vm, pl)))
        return NULL;
    char* b;
    size_t i;
    if (ps->free) {
        b = ps->free;
        i = pool_index(pl, (size_t)(b - ps->first));
        void* next = pool_link(b);
        pool_setbit(ps, i); /* so that neither check below takes b as free */
        ps->free = next;
        /* The list holds carved - nbusy blocks: b was the last iff one. */
        if (!pool_link_ok(pl, ps, next) || (next == NULL) != (ps->carved - ps->nbusy == 1))
            pool_relink(pl, ps);
    } else
        b = pool_carve(pl, ps, &i);
    pool_taken(vm, pl, ps, i);
    return b;
}

/* The pool segment holding addr, with addr's block index and offset in it;
 * NULL when addr is not in a carved block. Busy state is not checked. */
static Poolseg_t* pool_owner(Vmalloc_t* vm, const void* addr, size_t* idx, size_t* off)
{
    Pool_t* pl = pool_state(vm);
    Poolseg_t* ps = pl->hint;
    /* Blocks freed together mostly share a segment: one compare instead of a
     * search of the segment table. */
    if (!ps || (uintptr_t)addr - (uintptr_t)ps->first >= ps->span) {
        Vmseg_t* seg = vm_seg_find(vm, addr);
        ps = seg ? pool_seg(seg) : NULL;
        if (!ps || (const char*)addr < ps->first)
            return NULL;
        pl->hint = ps;
    }
    size_t d = (size_t)((const char*)addr - ps->first);
    size_t i = pool_index(pl, d);
    if (i >= ps->carved)
        return NULL;
    *idx = i;
    *off = d - i * pl->bsize;
    return ps;
}

/* The pool segment of a busy block that starts at block, or NULL. */
static Poolseg_t* pool_busy(Vmalloc_t* vm, const void* block, size_t* idx)
{
    size_t off;
    Poolseg_t* ps = pool_owner(vm, block, idx, &off);
    return ps && off == 0 && pool_bit(ps, *idx) ? ps : NULL;
}

static int pool_init(Vmalloc_t* vm)
{
    (void)vm; /* zeroed state is an unfixed, empty pool */
    return 0;
}

/* A block of the pool's size. The first request fixes the size; a request
 * that cannot fix it (alignment) or fails for want of memory leaves it free. */
static void* pool_alloc(Vmalloc_t* vm, size_t size, size_t align)
{
    Pool_t* pl = pool_state(vm);
    size_t bsize = pool_round(size);
    int fixing = pl->bsize == 0;
    if (fixing) {
        if (align > pool_natural(bsize)) {
            errno = EINVAL;
            return NULL;
        }
        pool_fix(vm, pl, bsize);
    } else if (bsize != pl->bsize || align > pl->balign) {
        errno = EINVAL;
        return NULL;
    }
    void* b = pool_take(vm, pl);
    if (!b && fixing)
        pool_unfix(vm, pl);
    return b;
}

/* Free block i of ps (busy, validated or vouched for by VM_TRUST). */
static inline void pool_free_at(Vmalloc_t* vm, Pool_t* pl, Poolseg_t* ps, size_t i, void* block)
{
    pool_clrbit(ps, i);
    pool_setlink(block, ps->free);
    ps->free = block;
    ps->nbusy -= 1;
    if (__builtin_expect(!ps->avail, 0))
        pool_avail_push(pl, ps);
    vm_busy_sub(vm, pl->bsize);
}

static int pool_free(Vmalloc_t* vm, void* block)
{
    size_t i;
    Poolseg_t* ps = pool_busy(vm, block, &i);
    if (!ps) {
        vm_fault(vm, VM_BADADDR, block);
        return -1;
    }
    pool_free_at(vm, pool_state(vm), ps, i, block);
    return 0;
}

/* A pool has one size, so a resize succeeds only in place: when the new size
 * fits the block and the alignment C wants for an object of the new size is
 * one every block of the pool has (balign). Moving cannot help, whatever type
 * allows. */
static void* pool_resize(Vmalloc_t* vm, void* block, size_t size, int type)
{
    Pool_t* pl = pool_state(vm);
    size_t i;
    (void)type;
    if (!pool_busy(vm, block, &i)) {
        vm_fault(vm, VM_BADADDR, block);
        return NULL;
    }
    size_t n = pool_round(size);
    if (n <= pl->bsize && pool_natural(n) <= pl->balign)
        return block;
    errno = EINVAL;
    return NULL;
}

static long pool_addr(Vmalloc_t* vm, void* addr)
{
    size_t i, off;
    Poolseg_t* ps = pool_owner(vm, addr, &i, &off);
    return ps && pool_bit(ps, i) ? (long)off : -1;
}

static long pool_size(Vmalloc_t* vm, void* block)
{
    size_t i;
    return pool_busy(vm, block, &i) ? (long)pool_state(vm)->bsize : -1;
}

/* Every block becomes free and the size unfixed; the segments stay, to be
 * laid out again for the next size. */
static int pool_clear(Vmalloc_t* vm)
{
    pool_unfix(vm, pool_state(vm));
    return 0;
}

/* Give back every segment but home that holds no busy block. A segment the
 * discipline refuses to take stays exactly as it was. Segments are visited
 * from the top of the table down, so removals do not shift unvisited ones. */
static int pool_compact(Vmalloc_t* vm)
{
    Pool_t* pl = pool_state(vm);
    pl->hint = NULL; /* its segment may go */
    for (size_t i = vm->nsegs; i-- > 0;) {
        Vmseg_t* seg = vm->segs[i];
        Poolseg_t* ps = pool_seg(seg);
        if (seg == vm->home || (ps && ps->nbusy > 0))
            continue;
        int was_avail = ps && ps->avail;
        if (ps)
            pool_avail_remove(pl, ps);
        if (vm_seg_put(vm, seg) < 0 && was_avail)
            pool_avail_push(pl, ps);
    }
    if (vm->nsegs <= 1)
        pl->segsize = 0; /* an emptied pool starts small again */
    return 0;
}

/* Free capacity: free and uncarved blocks, each of the block size. While the
 * size is unfixed there are no blocks; each segment's usable space is then
 * reported as one free block. */
static int pool_stat(Vmalloc_t* vm, Vmstat_t* st)
{
    Pool_t* pl = pool_state(vm);
    for (size_t i = 0; i < vm->nsegs; ++i) {
        Vmseg_t* seg = vm->segs[i];
        Poolseg_t* ps = pool_seg(seg);
        if (!pl->bsize) {
            size_t room = (size_t)(seg->end - seg->data);
            st->n_free += 1;
            st->s_free += room;
            if (room > st->m_free)
                st->m_free = room;
        } else if (ps)
            st->n_free += ps->nblocks - ps->nbusy;
    }
    if (pl->bsize) {
        st->s_free = st->n_free * pl->bsize;
        st->m_free = st->n_free ? pl->bsize : 0;
        st->m_busy = vm->n_busy ? pl->bsize : 0;
    }
    return 0;
}

static int pool_walk(Vmalloc_t* vm, Vmvisit_f visit, void* arg)
{
    Pool_t* pl = pool_state(vm);
    for (size_t s = 0; s < vm->nsegs; ++s) {
        Poolseg_t* ps = pool_seg(vm->segs[s]);
        if (!ps)
            continue;
        for (size_t w = 0; w < pool_words(ps->carved); ++w) {
            for (uint64_t bits = ps->map[w]; bits; bits &= bits - 1) {
                size_t i = w * 64 + (size_t)__builtin_ctzll(bits);
                int r = visit(vm, ps->first + i * pl->bsize, pl->bsize, vm->disc, arg);
                if (r)
                    return r;
            }
        }
    }
    return 0;
}

/* Check one laid-out segment; adds its busy blocks to *busy. Every pointer
 * is bounded by the segment before it is followed. */
static int pool_check_seg(const Pool_t* pl, Vmseg_t* seg, Poolseg_t* ps, size_t* busy)
{
    if (ps != (Poolseg_t*)seg->data || ps->seg != seg)
        return 1;
    /* Bound the counts by the segment first, so no address below can wrap. */
    if (ps->nblocks == 0 || ps->nblocks > (size_t)(seg->end - seg->data) / 8 ||
        ps->carved > ps->nblocks)
        return 1;
    char* bitend = (char*)ps->map + pool_words(ps->nblocks) * 8;
    if (ps->first < bitend || ps->first > seg->end || (uintptr_t)ps->first % pl->balign != 0 ||
        ps->nblocks > (size_t)(seg->end - ps->first) / pl->bsize ||
        ps->span != ps->nblocks * pl->bsize)
        return 1;
    int bad = 0;
    size_t nbusy = 0, words = pool_words(ps->carved);
    for (size_t w = 0; w < words; ++w)
        nbusy += (size_t)__builtin_popcountll(ps->map[w]);
    if (ps->carved % 64 && (ps->map[words - 1] >> (ps->carved % 64)) != 0)
        bad++; /* a bit set beyond the carved blocks */
    if (nbusy != ps->nbusy)
        bad++;
    size_t nfree = 0, limit = ps->carved >= nbusy ? ps->carved - nbusy : 0;
    for (char* b = ps->free; b; b = pool_link(b)) {
        if (!pool_link_ok(pl, ps, b) || nfree == limit) {
            bad++; /* outside, misaligned, busy, or a cycle */
            break;
        }
        nfree++;
    }
    if (nfree != limit)
        bad++; /* the list lost blocks (or nbusy is wrong, counted above) */
    if (ps->avail != (ps->free != NULL || ps->carved < ps->nblocks))
        bad++;
    *busy += nbusy;
    return bad;
}

static int pool_check(Vmalloc_t* vm)
{
    Pool_t* pl = pool_state(vm);
    int bad = 0;
    size_t busy = 0, navail = 0;
    if (vm->nsegs > vm->capsegs)
        return 1;
    int sized = pl->bsize >= 8 && pl->bsize % 8 == 0 && pl->bsize <= VM_MAXSIZE &&
                pl->balign == pool_natural(pl->bsize) && pl->recip == pool_recip(pl->bsize) &&
                pl->mullim == pool_mullim(pl->bsize);
    if (pl->bsize && !sized)
        return 1;
    for (size_t i = 0; i < vm->nsegs; ++i) {
        Vmseg_t* seg = vm->segs[i];
        Poolseg_t* ps = pool_seg(seg);
        if (!ps) {
            bad += seg->mdata != NULL;
            continue;
        }
        if (!pl->bsize) {
            bad++; /* laid out for no size */
            continue;
        }
        int b = pool_check_seg(pl, seg, ps, &busy);
        bad += b;
        if (!b && ps->avail)
            navail++;
    }
    /* The avail list: each entry a laid-out segment's header, back links
     * consistent, no entry twice (bounded by the count of marked ones). */
    size_t n = 0;
    Poolseg_t* prev = NULL;
    for (Poolseg_t* ps = pl->avail; ps; prev = ps, ps = ps->next) {
        Vmseg_t* seg = vm_seg_find(vm, ps);
        if (!seg || pool_seg(seg) != ps || !ps->avail || ps->prev != prev || n == navail) {
            bad++;
            break;
        }
        n++;
    }
    if (n != navail)
        bad++;
    if (vm->n_busy != busy || vm->s_busy != busy * pl->bsize || vm->max_busy < vm->s_busy)
        bad++;
    return bad;
}

/* The lock-free paths, taken only under VM_TRUST: one thread at a time, so
 * no lock, and the caller vouches for every address, so no validation. They
 * keep the busy bitmap and every count exactly as the locked paths do
 * (vmstat, vmwalk, vmdbcheck, vmcompact and vmclear rely on them) but skip
 * what only guards against a caller's mistakes: the check of a popped free
 * block's link, and, for a block in the hint segment, the busy-bit,
 * interior-pointer and double-free checks. A request the pool would refuse,
 * or one that needs a new segment, goes to the locked path, which reports
 * it; so does a free outside every pool segment. pool_fast_alloc is
 * inlined into the tail entry as well (called, it cost the entry a frame:
 * 6.6 against 6.2 ns on the fixed pattern). */
static inline __attribute__((always_inline)) void* pool_fast_alloc(Vmalloc_t* vm, size_t size,
                                                                  size_t align)
{
    /* Without VM_TRUST other threads may be in the pool under the lock: not
     * one field of it may be read before the flag is. */
    if (__builtin_expect(!(vm->flags & VM_TRUST), 0))
        return NULL;
    Pool_t* pl = pool_state(vm);
    Poolseg_t* ps = pl->avail; /* NULL while the size is unfixed */
    /* The size test is pool_round's without its case for 0 bytes, which
     * goes the locked way. */
    if (__builtin_expect(!ps || ((size - 1) | 7) + 1 != pl->bsize || align > pl->balign, 0))
        return NULL;
    char* b = ps->free;
    size_t i;
    if (__builtin_expect(b != NULL, 1)) {
        ps->free = pool_link(b);
        i = pool_index(pl, (size_t)(b - ps->first));
    } else
        b = pool_carve(pl, ps, &i);
    pool_taken(vm, pl, ps, i);
    return b;
}

/* pool_fast_free's rare half: a region without VM_TRUST (1: the locked path
 * serves it, and nothing of the pool is read, see pool_fast_alloc), or a
 * block outside the hint segment, whose segment is found and which is
 * validated as on the locked path (1 if invalid: the locked path reports
 * it). Out of line, so that the common half saves no registers. */
__attribute__((noinline)) static int pool_fast_free_far(Vmalloc_t* vm, void* block)
{
    if (!(vm->flags & VM_TRUST))
        return 1;
    Pool_t* pl = pool_state(vm);
    size_t i;
    if (!pl->bsize)
        return 1;
    Poolseg_t* ps = pool_busy(vm, block, &i);
    if (!ps)
        return 1;
    pool_free_at(vm, pl, ps, i, block);
    return 0;
}

/* The common half of both lock-free frees: the hint segment, with block's
 * offset in it in *d, if the region trusts its callers and block lies
 * there; else NULL (the far half decides). */
static inline __attribute__((always_inline)) Poolseg_t* pool_near(Vmalloc_t* vm, void* block,
                                                                   size_t* d)
{
    /* Not one field of the pool before the flag (see pool_fast_alloc). */
    if (__builtin_expect(!(vm->flags & VM_TRUST), 0))
        return NULL;
    Poolseg_t* ps = pool_state(vm)->hint;
    if (__builtin_expect(!ps || (*d = (uintptr_t)block - (uintptr_t)ps->first) >= ps->span, 0))
        return NULL;
    return ps;
}

static int pool_fast_free(Vmalloc_t* vm, void* block)
{
    size_t d;
    Poolseg_t* ps = pool_near(vm, block, &d);
    if (__builtin_expect(!ps, 0))
        return pool_fast_free_far(vm, block);
    Pool_t* pl = pool_state(vm);
    pool_free_at(vm, pl, ps, pool_index(pl, d), block);
    return 0;
}

/* The tail entries (vmhdr.h): the same, with the core's locked path
 * reached by tail calls. */
static void* pool_tail_alloc(Vmalloc_t* vm, size_t size, void* caller)
{
    void* b = pool_fast_alloc(vm, size, 0);
    return __builtin_expect(b != NULL, 1) ? b : vm_alloc_locked(vm, size, caller);
}

__attribute__((noinline)) static int pool_tail_free_far(Vmalloc_t* vm, void* block, void* caller)
{
    return pool_fast_free_far(vm, block) == 0 ? 0 : vm_free_locked(vm, block, caller);
}

static int pool_tail_free(Vmalloc_t* vm, void* block, void* caller)
{
    size_t d;
    Poolseg_t* ps = pool_near(vm, block, &d);
    if (__builtin_expect(!ps, 0))
        return pool_tail_free_far(vm, block, caller);
    Pool_t* pl = pool_state(vm);
    pool_free_at(vm, pl, ps, pool_index(pl, d), block);
    return 0;
}

Vmethod_t vm_pool_method = {
    .name = "pool",
    .id = VM_MTPOOL,
    .statesize = sizeof(Pool_t),
    .initf = pool_init,
    .allocf = pool_alloc,
    .freef = pool_free,
    .resizef = pool_resize,
    .addrf = pool_addr,
    .sizef = pool_size,
    .clearf = pool_clear,
    .compactf = pool_compact,
    .statf = pool_stat,
    .walkf = pool_walk,
    .checkf = pool_check,
    .fastallocf = pool_fast_alloc,
    .fastfreef = pool_fast_free,
    .tailallocf = pool_tail_alloc,
    .tailfreef = pool_tail_free,
};

Vmethod_t* Vmpool = &vm_pool_method;
