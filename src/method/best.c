/*
 * method/best.c — Vmbest, the general-purpose method (paper §2.3.1), and
 * Vmheap, the Vmbest region over Vmdcsystem.
 *
 * Algorithm. Blocks carry a 16-byte header: the block size with flag bits,
 * and a check word (vm_check) that lets vmfree/vmresize reject any pointer
 * that is not the start of a busy block in O(log segments). Free blocks keep
 * their size in a footer too (boundary tags), and the block after a free one
 * has PFREE set, so freeing coalesces with both neighbours at once: no two
 * free blocks are ever adjacent. Free blocks live in
 *   - 254 exact-size bins for block sizes 32 .. 4080, with a bitmap of the
 *     non-empty ones: best fit for a small size is a scan of four words;
 *   - a top-down splay tree (Sleator & Tarjan) keyed by size for larger
 *     blocks, blocks of equal size chained off one tree node: best fit is
 *     one splay, O(log n) amortized;
 *   - the wilderness: the free block at the end of the newest segment, the
 *     only one that can grow by extending its segment in place. It is used
 *     only when no other free block fits (the paper's wilderness
 *     preservation), so the arena grows only when it must.
 * Requests of BEST_HUGE bytes or more get a segment of their own, given back
 * to the discipline when freed and resized in place through memoryf when the
 * discipline can (mremap for Vmdcsystem).
 *
 * Bounds. Allocation: O(1) for sizes served from a bin, O(log n) amortized
 * otherwise, plus a discipline call when the arena grows, and before it a
 * purge pass if due (O(tree blocks), amortized: O(1) per KiB freed). Free:
 * O(1) plus a splay for large neighbours. Overhead: 16 bytes per block; blocks are
 * multiples of 16 bytes, at least 32. vmaddr of an interior address walks its
 * segment (O(blocks in the segment)); vmstat, vmwalk and vmdbcheck walk the
 * whole region.
 *
 * On Vmdcsystem, requests of up to 16 KiB go to the small-block pages
 * first (method/page.c, in front of the bins and the tree): they take the
 * place of the paper's deferred coalescing and small-size fast path.
 * Growth slack on moving resizes is page.h's pg_resize_want.
 *
 * Purging (Vmdcsystem memory only). The pages inside free blocks go back to
 * the kernel (madvise) at once when the bytes freed in blocks of two OS
 * pages and more since the last purge pass max(32 MiB, half the busy
 * bytes), and before the arena grows (best_growing: kept for reuse while
 * the heap takes new memory anyway, they would only add to its peak);
 * otherwise they age: the timed upkeep (vm_best_tick: at most every
 * BEST_TICK_MS, from slow paths or the upkeep thread of upkeep.c) purges
 * them at the step after the one that saw them freed, so memory left
 * unused goes back 0.3-0.6 s later, and ages the small blocks' pages
 * (pg_age) and the discipline's kept ranges the same way. A purged block
 * is marked CLEAN until it changes, so a purge pass madvises only what was
 * touched since.
 */
/* For glibc's adaptive mutex initializer (Vmheap's lock, VM_LOCK_INITIALIZER). */
#define _GNU_SOURCE
#include "page.h"

#include <stddef.h>

#define BEST_HDR ((size_t)16)       /* header: head + check */
#define BEST_MINBLK ((size_t)32)    /* smallest block: head, two links, footer */
#define BEST_NBINS 254              /* exact bins: sizes 32 + 16 i */
#define BEST_NWORDS 4               /* 64-bit words of the bin bitmap */
#define BEST_BIG ((size_t)4096)     /* blocks this size and up live in the tree */
#define BEST_HUGE ((size_t)1 << 20) /* requests this size and up get a segment each */
#define BEST_SEGMIN ((size_t)64 << 10)
#define BEST_SEGMAX ((size_t)8 << 20)
#define BEST_DIRTYMIN ((size_t)32 << 20) /* freed bytes kept resident: this, or half the busy */
#define BEST_TICK_MS 300 /* timed upkeep steps: memory unused for 1-2 steps is purged */
#define BEST_PURGEMIN ((size_t)1 << 20) /* freed bytes that make a step walk the tree */
#define BEST_GROWPURGE ((size_t)128 << 10) /* freed bytes purged before the arena grows */
#define BEST_GROWWALK ((size_t)1024) /* ... and per tree block its walk visits */

#define BUSY ((size_t)1)  /* the block is allocated */
#define PFREE ((size_t)2) /* the previous block is free (its footer holds its size) */
#define HUGE ((size_t)4)  /* the block has a segment of its own */
#define CLEAN ((size_t)8) /* a free block whose inner pages are purged (best_mkfree clears it) */
#define FLAGS ((size_t)15)

#define SEG_HUGE 1u /* seg->mflags: the segment holds one huge block, seg->mdata */

typedef struct blk Blk;
struct blk {
    size_t head; /* size | BUSY | PFREE | HUGE; a free block: size, or size | CLEAN */
    /* busy: the check word, then user data; free: the links below */
    union {
        uint64_t check;
        Blk* left; /* tree: smaller sizes; bins: next in the bin */
    };
    Blk* right; /* tree: larger sizes; bins: previous in the bin */
    Blk* next;  /* tree: next block of the same size */
    Blk* prev;  /* tree: previous block of the same size, NULL for the tree node */
};

typedef struct best_s {
    Pgstate_t pg;      /* the small blocks (page.c), first: see page.h */
    int ready;         /* pg is set up (Vmheap starts all zero) */
    uint64_t binmap[BEST_NWORDS]; /* bit i set: bins[i] not empty */
    Blk* bins[BEST_NBINS];
    Blk* tree;         /* splay tree of free blocks of BEST_BIG bytes and up */
    size_t ntree;      /* blocks in the tree, chained ones included */
    Blk* wild;         /* the wilderness block, in no bin or tree; or NULL */
    Vmseg_t* wildseg;  /* the segment whose end may grow in place */
    size_t dirty;      /* bytes freed in large blocks since the last purge */
    size_t dirtymark;  /* dirty at the last timed upkeep step (0 after a purge) */
} Best_t;

static inline Best_t* best_state(Vmalloc_t* vm) { return (Best_t*)vm_state(vm); }
static inline size_t blk_size(const Blk* b) { return b->head & ~FLAGS; }
static inline Blk* blk_at(const void* p) { return (Blk*)p; }
static inline Blk* blk_next(const Blk* b) { return (Blk*)((char*)b + blk_size(b)); }
static inline void* blk_data(const Blk* b) { return (char*)b + BEST_HDR; }
static inline Blk* data_blk(const void* p) { return (Blk*)((char*)p - BEST_HDR); }
static inline size_t* blk_footer(const Blk* b) { return (size_t*)((char*)b + blk_size(b)) - 1; }
static inline Blk* blk_prev(const Blk* b) { return (Blk*)((char*)b - ((const size_t*)b)[-1]); }
static inline size_t blk_usable(const Blk* b) { return blk_size(b) - BEST_HDR; }
static inline Blk* seg_sentinel(const Vmseg_t* seg) { return (Blk*)(seg->end - BEST_HDR); }

/* Block size for a request of n usable bytes (n <= VM_MAXSIZE). */
static inline size_t best_blksize(size_t n)
{
    size_t s = vm_align_up(n + BEST_HDR, 16);
    return s < BEST_MINBLK ? BEST_MINBLK : s;
}

static inline int bin_index(size_t size) { return (int)((size - BEST_MINBLK) >> 4); }

/* Mark b busy with the given size; its previous block is busy (the
 * no-adjacent-free invariant makes that true for every block we hand out).
 * The check word binds address, size and the region's secret. */
static inline void best_set_busy(Vmalloc_t* vm, Blk* b, size_t size, size_t extra)
{
    b->head = size | BUSY | extra;
    b->check = vm_check(vm, b, b->head & ~PFREE);
}

static inline int best_check_ok(const Vmalloc_t* vm, const Blk* b)
{
    return b->check == vm_check(vm, b, b->head & ~PFREE);
}

/* ---- free structures: bins and the splay tree ----------------------------- */

/* Top-down splay: the node of size key, or the last node on its search path
 * (its predecessor or successor), becomes the root. */
static Blk* splay(Blk* t, size_t key)
{
    Blk n, *l, *r, *y;
    if (!t)
        return t;
    n.left = n.right = NULL;
    l = r = &n;
    for (;;) {
        if (key < blk_size(t)) {
            if (!t->left)
                break;
            if (key < blk_size(t->left)) {
                y = t->left;
                t->left = y->right;
                y->right = t;
                t = y;
                if (!t->left)
                    break;
            }
            r->left = t;
            r = t;
            t = t->left;
        } else if (key > blk_size(t)) {
            if (!t->right)
                break;
            if (key > blk_size(t->right)) {
                y = t->right;
                t->right = y->left;
                y->left = t;
                t = y;
                if (!t->right)
                    break;
            }
            l->right = t;
            l = t;
            t = t->right;
        } else
            break;
    }
    l->right = t->left;
    r->left = t->right;
    t->left = n.right;
    t->right = n.left;
    return t;
}

static void tree_insert(Best_t* st, Blk* b)
{
    size_t size = blk_size(b);
    st->ntree += 1;
    b->next = b->prev = NULL;
    if (!st->tree) {
        b->left = b->right = NULL;
        st->tree = b;
        return;
    }
    Blk* t = splay(st->tree, size);
    if (blk_size(t) == size) { /* chain behind the node of this size */
        b->next = t->next;
        b->prev = t;
        if (t->next)
            t->next->prev = b;
        t->next = b;
        b->left = b->right = NULL;
        st->tree = t;
        return;
    }
    if (size < blk_size(t)) {
        b->left = t->left;
        b->right = t;
        t->left = NULL;
    } else {
        b->right = t->right;
        b->left = t;
        t->right = NULL;
    }
    st->tree = b;
}

/* Remove the node at the root, promoting its chain or joining its subtrees. */
static void tree_pop_root(Best_t* st)
{
    Blk* t = st->tree;
    st->ntree -= 1;
    if (t->next) {
        Blk* c = t->next;
        c->left = t->left;
        c->right = t->right;
        c->prev = NULL;
        st->tree = c;
    } else if (!t->left)
        st->tree = t->right;
    else {
        Blk* l = splay(t->left, blk_size(t)); /* largest of the left: no right child */
        l->right = t->right;
        st->tree = l;
    }
}

static void tree_remove(Best_t* st, Blk* b)
{
    if (b->prev) { /* a chained block: O(1) */
        st->ntree -= 1;
        b->prev->next = b->next;
        if (b->next)
            b->next->prev = b->prev;
        return;
    }
    st->tree = splay(st->tree, blk_size(b));
    tree_pop_root(st);
}

/* The smallest free block in the tree of at least size bytes, removed. */
static Blk* tree_take(Best_t* st, size_t size)
{
    if (!st->tree)
        return NULL;
    Blk* t = splay(st->tree, size);
    if (blk_size(t) < size) {
        if (!t->right) {
            st->tree = t;
            return NULL;
        }
        Blk* m = splay(t->right, size); /* every size there exceeds size: min rises */
        t->right = m->left;
        m->left = t;
        t = m;
    }
    st->tree = t;
    Blk* b = t->next ? t->next : t; /* prefer a chained block: no restructuring */
    if (b != t)
        tree_remove(st, b);
    else
        tree_pop_root(st);
    return b;
}

static void bin_insert(Best_t* st, Blk* b)
{
    int i = bin_index(blk_size(b));
    b->right = NULL;
    b->left = st->bins[i];
    if (b->left)
        b->left->right = b;
    st->bins[i] = b;
    st->binmap[i >> 6] |= (uint64_t)1 << (i & 63);
}

static void bin_remove(Best_t* st, Blk* b)
{
    int i = bin_index(blk_size(b));
    if (b->right)
        b->right->left = b->left;
    else
        st->bins[i] = b->left;
    if (b->left)
        b->left->right = b->right;
    if (!st->bins[i])
        st->binmap[i >> 6] &= ~((uint64_t)1 << (i & 63));
}

/* Would the root t, grown to size bytes, stay below every block in its
 * right subtree? Looks a few steps down the left spine at most. */
static int tree_below_successor(const Blk* t, size_t size)
{
    const Blk* s = t->right;
    if (!s)
        return 1;
    for (int steps = 0; s->left; ++steps) {
        if (steps == 8)
            return 0;
        s = s->left;
    }
    return size < blk_size(s);
}

/* Enter a free block into the structure for its size (not the wilderness). */
static void best_link(Best_t* st, Blk* b)
{
    if (blk_size(b) < BEST_BIG)
        bin_insert(st, b);
    else
        tree_insert(st, b);
}

static void best_unlink(Best_t* st, Blk* b)
{
    if (b == st->wild)
        st->wild = NULL;
    else if (blk_size(b) < BEST_BIG)
        bin_remove(st, b);
    else
        tree_remove(st, b);
}

/* Write b as a free block of size bytes (its previous block is busy) and
 * tell the next block. Does not link it. */
static void best_mkfree(Blk* b, size_t size)
{
    b->head = size;
    *blk_footer(b) = size;
    blk_next(b)->head |= PFREE;
}

/* The best-fitting free block of at least size bytes in the bins, unlinked;
 * NULL if no bin has one. */
static Blk* best_take_bin(Best_t* st, size_t size)
{
    if (size < BEST_BIG) {
        int i = bin_index(size);
        uint64_t m = st->binmap[i >> 6] & (~(uint64_t)0 << (i & 63));
        for (int w = i >> 6;;) {
            if (m) {
                Blk* b = st->bins[(w << 6) + __builtin_ctzll(m)];
                bin_remove(st, b);
                return b;
            }
            if (++w == BEST_NWORDS)
                break;
            m = st->binmap[w];
        }
    }
    return NULL;
}

/* Give the free, unlinked block b (which was the wilderness if wild) to a
 * request of size bytes: split off and keep the remainder. */
static Blk* best_carve(Vmalloc_t* vm, Blk* b, size_t size, int wild)
{
    Best_t* st = best_state(vm);
    size_t have = blk_size(b);
    if (have - size >= BEST_MINBLK) {
        Blk* r = (Blk*)((char*)b + size);
        best_mkfree(r, have - size);
        if (wild)
            st->wild = r;
        else
            best_link(st, r);
    } else {
        size = have;
        blk_next(b)->head &= ~PFREE;
    }
    best_set_busy(vm, b, size, 0);
    return b;
}

/* ---- segments and growth ------------------------------------------------ */

static void best_purge(Vmalloc_t* vm, int wild);

/* Free blocks kept resident for reuse pay for themselves while the heap
 * reuses them; once it takes new memory anyway, they only add to its peak.
 * So the arena grows only after what was freed since the last purge goes
 * back (the discipline's kept ranges follow the same rule), the wilderness
 * too unless wild is 0 (it is about to serve the block that grows it).
 * Measured on the study's traces: peak RSS 8-9% lower on gcc and sqlite
 * (freed buffers of a realloc-doubling), for 2% more page faults. Not the
 * empty pages: purging them too cost python's replay 3% more faults for
 * no gain (pages are reused within a step). The walk visits every tree
 * block, so it waits for BEST_GROWWALK bytes freed per block: a large
 * fragmented tree and a run of growths cannot make each free pay a walk. */
static void best_growing(Vmalloc_t* vm, int wild)
{
    Best_t* st = best_state(vm);
    if (st->dirty >= BEST_GROWPURGE && st->dirty / BEST_GROWWALK >= st->ntree)
        best_purge(vm, wild);
}

void vm_best_growing(Vmalloc_t* vm) { best_growing(vm, 1); }

/* Lay out a fresh (or wholly free) segment as one free block and a sentinel;
 * the block becomes the wilderness, the old wilderness goes to the bins. */
static void best_seg_format(Vmalloc_t* vm, Vmseg_t* seg)
{
    Best_t* st = best_state(vm);
    seg->mflags = 0;
    seg->mdata = NULL;
    if ((size_t)(seg->end - seg->data) < BEST_MINBLK + BEST_HDR) {
        blk_at(seg->data)->head = BUSY; /* too small to hold a block: sentinel only */
        return;
    }
    Blk* b = blk_at(seg->data);
    seg_sentinel(seg)->head = BUSY;
    best_mkfree(b, (size_t)((char*)seg_sentinel(seg) - seg->data));
    if (st->wild)
        best_link(st, st->wild);
    st->wild = b;
    st->wildseg = seg;
}

/* Grow the wilderness segment in place so the wilderness has size bytes. */
static int best_extend(Vmalloc_t* vm, size_t size)
{
    Best_t* st = best_state(vm);
    Vmseg_t* seg = st->wildseg;
    if (!seg)
        return -1;
    Blk* sent = seg_sentinel(seg);
    size_t have = st->wild ? blk_size(st->wild) : 0;
    size_t used = (size_t)(seg->end - seg->data);
    size_t grow = size - have;
    /* An eighth more than asked, so that a run of small growths costs few
     * discipline calls and the arena stays within ~1/8 of what the
     * wilderness serves. */
    size_t more = grow > used / 8 ? grow : used / 8;
    best_growing(vm, 0);
    if (vm_seg_resize(vm, seg, used + more) < 0 && vm_seg_resize(vm, seg, used + grow) < 0)
        return -1;
    /* Without a wilderness the block before the old sentinel is busy (a free
     * one would be the wilderness), so the new space starts at the sentinel. */
    Blk* b = st->wild ? st->wild : sent;
    seg_sentinel(seg)->head = BUSY;
    best_mkfree(b, (size_t)((char*)seg_sentinel(seg) - (char*)b));
    st->wild = b;
    return 0;
}

/* The discipline of a new segment (huge: for one huge block). On
 * Vmdcsystem, its twins: a huge block's segment stays mapped a while after
 * its release, and the next segment of either kind reuses it (system.c). */
static Vmdisc_t* best_disc(Vmalloc_t* vm, int huge)
{
    if (vm->disc != &vm_dc_system)
        return vm->disc;
    return huge ? &vm_dc_system_kept : &vm_dc_system_aligned;
}

/* Get a new segment able to hold a block of size bytes. */
static int best_grow(Vmalloc_t* vm, size_t size)
{
    /* A quarter of the arena outside the small-block pages, and room for
     * the block to double: few segments, little overshoot, and a block
     * growing at the end of the new one grows in place for a while. */
    size_t pages = best_state(vm)->pg.pagebytes;
    size_t want = (vm->extent > pages ? vm->extent - pages : 0) / 4;
    if (want < 2 * (size + BEST_HDR))
        want = 2 * (size + BEST_HDR);
    want = want < BEST_SEGMIN ? BEST_SEGMIN : want > BEST_SEGMAX ? BEST_SEGMAX : want;
    size_t need = size + BEST_HDR;
    Vmseg_t* seg = NULL;
    best_growing(vm, 1);
    if (want > need)
        seg = vm_seg_get_from(vm, best_disc(vm, 0), want);
    if (!seg)
        seg = vm_seg_get_from(vm, best_disc(vm, 0), need);
    if (!seg)
        return -1;
    vm->fault = 0; /* the first, larger try may have failed */
    best_seg_format(vm, seg);
    return 0;
}

/* A huge block in a segment of its own, its data aligned to align. */
static void* best_huge_alloc(Vmalloc_t* vm, size_t size, size_t align)
{
    size_t slack = align > VM_ALIGN ? align : 0;
    best_growing(vm, 1);
    Vmseg_t* seg = vm_seg_get_from(vm, best_disc(vm, 1), size + BEST_HDR + slack);
    if (!seg)
        return NULL;
    char* data = align > VM_ALIGN ? vm_ptr_up(seg->data + BEST_HDR, align) : seg->data + BEST_HDR;
    Blk* b = data_blk(data);
    seg->mflags = SEG_HUGE;
    seg->mdata = b;
    best_set_busy(vm, b, (size_t)(seg->end - (char*)b), HUGE);
    vm_busy_add(vm, blk_usable(b));
    return data;
}

/* ---- the method --------------------------------------------------------- */

/* A busy block of block size bsize, or NULL with the fault recorded. */
static Blk* best_alloc_blk(Vmalloc_t* vm, size_t bsize)
{
    Best_t* st = best_state(vm);
    Blk* b = best_take_bin(st, bsize);
    if (b)
        return best_carve(vm, b, bsize, 0);
    /* No bin fits, so the smallest tree block that fits is the best fit. If
     * that is the root (no smaller block, none of its size) and what is left
     * stays tree-sized, the rest takes its place as root: still the smallest,
     * so the tree stays ordered without a splay. Carving a run of small
     * blocks out of one large free block costs O(1) each. */
    Blk* t = st->tree;
    if (t && !t->left && !t->next && blk_size(t) >= bsize + BEST_BIG) {
        Blk* r = (Blk*)((char*)t + bsize);
        r->left = NULL;
        r->right = t->right;
        r->next = r->prev = NULL;
        best_mkfree(r, blk_size(t) - bsize);
        st->tree = r;
        best_set_busy(vm, t, bsize, 0);
        return t;
    }
    b = tree_take(st, bsize);
    if (b)
        return best_carve(vm, b, bsize, 0);
    /* A block the wilderness cannot hold gets a new segment (best_grow);
     * the wilderness grows in place only under a growing block
     * (best_grow_inplace). Extending it here too was measured: python's
     * replay then held 1.4 MiB more resident (3.1 MiB of 3.2 in its large
     * blocks' segments, against 1.7 of 2.4) for an arena 3% larger. */
    if (!(st->wild && blk_size(st->wild) >= bsize) && best_grow(vm, bsize) < 0)
        return NULL;
    b = st->wild;
    st->wild = NULL;
    return best_carve(vm, b, bsize, 1);
}

/* Free the busy block b; coalesce with free neighbours. A free block that
 * ends the wilderness segment is the wilderness. */
static void best_free_blk(Vmalloc_t* vm, Blk* b)
{
    Best_t* st = best_state(vm);
    size_t size = blk_size(b);
    Blk* nb = blk_next(b);
    /* If b merges into its predecessor its header stays behind inside the
     * merged block, later inside user data: erase the check word so no bit
     * the user writes there can make it pass as busy again. */
    b->head &= ~BUSY;
    b->check = 0;
    if (b->head & PFREE) {
        Blk* pb = blk_prev(b);
        /* Freeing blocks in address order grows one free run: when it is the
         * tree's root, alone at its size and with nothing larger, growing it
         * keeps the tree ordered, so it stays in place (no splays). */
        if (pb == st->tree && !pb->next && (nb->head & BUSY) &&
            !(st->wildseg && nb == seg_sentinel(st->wildseg)) &&
            tree_below_successor(pb, blk_size(pb) + size)) {
            best_mkfree(pb, blk_size(pb) + size);
            return;
        }
        best_unlink(st, pb);
        size += blk_size(pb);
        b = pb;
    }
    if (!(nb->head & BUSY)) {
        best_unlink(st, nb);
        size += blk_size(nb);
    }
    best_mkfree(b, size);
    if (st->wildseg && blk_next(b) == seg_sentinel(st->wildseg))
        st->wild = b;
    else
        best_link(st, b);
}

/* Shrink the busy block b to size bytes in place, freeing the tail. */
static void best_trim(Vmalloc_t* vm, Blk* b, size_t size)
{
    size_t have = blk_size(b);
    if (have - size < BEST_MINBLK)
        return;
    best_set_busy(vm, b, size, b->head & PFREE);
    Blk* r = (Blk*)((char*)b + size);
    best_set_busy(vm, r, have - size, 0);
    best_free_blk(vm, r);
}

/* The page layer is set up lazily: Vmheap is a static region, all zero. */
static inline Pgstate_t* best_pages(Vmalloc_t* vm)
{
    Best_t* st = best_state(vm);
    if (__builtin_expect(!st->ready, 0)) {
        pg_init(vm, &st->pg);
        st->ready = 1;
    }
    return &st->pg;
}

static void* best_alloc_fit(Vmalloc_t* vm, size_t size, size_t align);

static void* best_alloc(Vmalloc_t* vm, size_t size, size_t align)
{
    Pgstate_t* pg = best_pages(vm);
    if (pg_small(pg, size, align)) {
        void* p = pg_alloc(vm, pg, size);
        if (p)
            return p;
        vm->fault = 0; /* no page: try the shared segments */
    }
    return best_alloc_fit(vm, size, align);
}

/* A block of the best-fit layer (never a small-block page). */
static void* best_alloc_fit(Vmalloc_t* vm, size_t size, size_t align)
{
    if (align <= VM_ALIGN) {
        if (size >= BEST_HUGE) {
            void* p = best_huge_alloc(vm, size, 0);
            if (p)
                return p;
            vm->fault = 0; /* fall back on the shared segments */
        }
        Blk* b = best_alloc_blk(vm, best_blksize(size));
        if (!b)
            return NULL;
        vm_busy_add(vm, blk_usable(b));
        return blk_data(b);
    }
    if (align > VM_MAXSIZE || size > VM_MAXSIZE - align) {
        errno = ENOMEM;
        return NULL;
    }
    if (size + align >= BEST_HUGE) {
        void* p = best_huge_alloc(vm, size, align);
        if (p)
            return p;
        vm->fault = 0;
    }
    /* Over-allocate, then give back the misaligned front and the excess tail. */
    size_t bsize = best_blksize(size);
    Blk* b = best_alloc_blk(vm, bsize + align + BEST_MINBLK);
    if (!b)
        return NULL;
    char* data = vm_ptr_up(blk_data(b), align);
    if (data != (char*)blk_data(b)) {
        if ((size_t)(data - (char*)blk_data(b)) < BEST_MINBLK)
            data += align;
        Blk* a = data_blk(data);
        size_t front = (size_t)((char*)a - (char*)b);
        best_set_busy(vm, a, blk_size(b) - front, 0);
        best_set_busy(vm, b, front, b->head & PFREE);
        best_free_blk(vm, b); /* sets a's PFREE */
        a->check = vm_check(vm, a, a->head & ~PFREE);
        b = a;
    }
    best_trim(vm, b, bsize);
    vm_busy_add(vm, blk_usable(b));
    return blk_data(b);
}

/* The busy block whose data is p, or NULL with VM_BADADDR recorded. Under
 * VM_TRUST the caller vouches for p and only the header is read. */
static Blk* best_busy(Vmalloc_t* vm, void* p)
{
    Blk* b = data_blk(p);
    if (vm->flags & VM_TRUST)
        return b;
    Vmseg_t* seg = ((uintptr_t)p & (VM_ALIGN - 1)) ? NULL : vm_seg_find(vm, p);
    if (!seg || (seg->mflags & SEG_PAGES) || (char*)b < seg->data || (char*)p > seg->end)
        goto bad;
    if (!(b->head & BUSY) || !best_check_ok(vm, b))
        goto bad;
    if (b->head & HUGE) {
        if (!(seg->mflags & SEG_HUGE) || seg->mdata != b)
            goto bad;
    } else if (blk_size(b) < BEST_MINBLK || (char*)b + blk_size(b) > seg->end - BEST_HDR ||
               (seg->mflags & (SEG_HUGE | SEG_PAGES)))
        goto bad;
    return b;
bad:
    vm_fault(vm, VM_BADADDR, p);
    return NULL;
}

/* Give the pages inside a free block back to the system (madvise): what a
 * program freed stops counting in its resident memory, and costs a page
 * fault when used again. Only for Vmdcsystem memory (a user's buffer keeps
 * its content). The block's header, links and footer stay. */
static void best_purge_blk(Vmalloc_t* vm, Blk* b, size_t os)
{
    if (blk_size(b) < 2 * os + sizeof(Blk) || (b->head & CLEAN))
        return;
    Vmseg_t* seg = vm_seg_find(vm, b);
    if (!seg || !vm_disc_os(seg->disc))
        return;
    char* from = vm_ptr_up((char*)b + sizeof(Blk), os);
    char* to = (char*)((uintptr_t)((char*)b + blk_size(b) - sizeof(size_t)) & ~(os - 1));
    if (to > from && vm_os_purge(from, (size_t)(to - from)) == 0)
        b->head |= CLEAN;
}

/* Purge every free block big enough to hold whole pages and not purged
 * since it last changed: the tree's (bins hold blocks under a page or so)
 * and, if wild, the wilderness. The tree is walked in order by Morris
 * traversal, which threads and unthreads right pointers: no stack, the tree
 * left as it was. O(free tree blocks), and a madvise per block purged. */
static void best_purge(Vmalloc_t* vm, int wild)
{
    Best_t* st = best_state(vm);
    size_t os = vm_os_pagesize();
    if (st->wild && wild)
        best_purge_blk(vm, st->wild, os);
    for (Blk* t = st->tree; t;) {
        Blk* pre = t->left;
        if (pre) {
            while (pre->right && pre->right != t)
                pre = pre->right;
            if (!pre->right) {
                pre->right = t;
                t = t->left;
                continue;
            }
            pre->right = NULL;
        }
        for (Blk* c = t; c; c = c->next)
            best_purge_blk(vm, c, os);
        t = t->right;
    }
    /* A wilderness left out stays due at the timed upkeep. */
    Blk* w = st->wild;
    st->dirty = w && !wild && !(w->head & CLEAN) ? blk_size(w) : 0;
    st->dirtymark = 0;
}

/* A segment that a large free left wholly free goes back to its discipline
 * at once, unless it is the home or the wilderness segment (the one that
 * serves the next growth). */
static void best_release_if_empty(Vmalloc_t* vm, Vmseg_t* seg)
{
    Best_t* st = best_state(vm);
    if (!seg || seg == vm->home || seg == st->wildseg || (seg->mflags & (SEG_HUGE | SEG_PAGES)))
        return;
    Blk* first = blk_at(seg->data);
    if (blk_size(first) == 0 || (first->head & BUSY) || blk_next(first) != seg_sentinel(seg))
        return;
    best_unlink(st, first);
    if (vm_seg_put(vm, seg) < 0)
        best_link(st, first); /* the discipline keeps it: still a free block */
}

/* After a large free: purge at once when much was freed; else it ages
 * (vm_best_tick). */
static void best_maybe_purge(Vmalloc_t* vm, size_t freed)
{
    Best_t* st = best_state(vm);
    st->dirty += freed;
    size_t limit = vm->s_busy / 2 > BEST_DIRTYMIN ? vm->s_busy / 2 : BEST_DIRTYMIN;
    if (st->dirty > limit)
        best_purge(vm, 1);
    else
        (void)vm_best_tick(vm);
    vm_upkeep_note(vm);
}

long vm_best_tick(Vmalloc_t* vm)
{
    Best_t* st = best_state(vm);
    Pgstate_t* pg = &st->pg;
    uint64_t now = vm_os_now_ms();
    if (now - pg->lasttick < BEST_TICK_MS)
        return (long)(BEST_TICK_MS - (now - pg->lasttick));
    pg->lasttick = now;
    /* The free blocks are purged together (one walk of the tree), once
     * bytes freed before the previous step are among them. */
    if (st->dirtymark >= BEST_PURGEMIN)
        best_purge(vm, 1);
    st->dirtymark = st->dirty;
    int more = st->dirty >= BEST_PURGEMIN;
    more |= pg_age(vm, pg);
    if (vm_disc_os(vm->disc))
        more |= vm_dc_system_tick();
    return more ? BEST_TICK_MS : -1;
}

static int best_free(Vmalloc_t* vm, void* p)
{
    int r = pg_free(vm, best_pages(vm), p);
    if (r != 1)
        return r;
    Blk* b = best_busy(vm, p);
    if (!b)
        return -1;
    vm_busy_sub(vm, blk_usable(b));
    if (b->head & HUGE) {
        Vmseg_t* seg = vm_seg_find(vm, p);
        if (vm_seg_put(vm, seg) < 0)
            best_seg_format(vm, seg); /* the discipline keeps it: reuse it */
        else
            vm_upkeep_note(vm); /* kept ranges expire at a later step */
        return 0;
    }
    size_t size = blk_size(b);
    best_free_blk(vm, b);
    if (size >= BEST_SEGMIN / 2)
        best_release_if_empty(vm, vm_seg_find(vm, p));
    if (size >= 2 * vm_os_pagesize() && vm->disc == &vm_dc_system)
        best_maybe_purge(vm, size);
    return 0;
}

/* Grow the busy block b in place to size bytes by taking its free successor
 * and, for the last block of the wilderness segment, extending the segment. */
static int best_grow_inplace(Vmalloc_t* vm, Blk* b, size_t size)
{
    Best_t* st = best_state(vm);
    Blk* nb = blk_next(b);
    size_t have = blk_size(b);
    if (!(nb->head & BUSY)) {
        if (nb == st->wild && have + blk_size(nb) < size && best_extend(vm, size - have) < 0)
            return -1;
        nb = blk_next(b); /* best_extend may have made the wilderness */
        if (have + blk_size(nb) < size)
            return -1;
    } else if (blk_size(nb) == 0 && st->wildseg && nb == seg_sentinel(st->wildseg)) {
        if (best_extend(vm, size - have) < 0)
            return -1;
        nb = blk_next(b);
    } else
        return -1;
    int wild = nb == st->wild;
    best_unlink(st, nb);
    size_t total = have + blk_size(nb);
    blk_next(nb)->head &= ~PFREE;
    best_set_busy(vm, b, total, b->head & PFREE);
    if (total - size >= BEST_MINBLK) {
        Blk* r = (Blk*)((char*)b + size);
        best_set_busy(vm, b, size, b->head & PFREE);
        best_mkfree(r, total - size);
        if (wild)
            st->wild = r;
        else
            best_link(st, r);
    }
    return 0;
}

/* Resize a small block: it stays while the size fits its class and is more
 * than half of it; otherwise it moves (to a block of any kind). */
static void* best_resize_small(Vmalloc_t* vm, void* p, long old, size_t size, int type)
{
    if (old < 0) {
        vm_fault(vm, VM_BADADDR, p);
        return NULL;
    }
    if (pg_resize_stays((size_t)old, size) || (size <= (size_t)old && !(type & VM_RSMOVE)))
        return p;
    size_t want = pg_resize_want((size_t)old, size);
    if (pg_grows_out((size_t)old, want) && (type & VM_RSMOVE)) {
        /* Out of the pages: a best-fit block can grow in place from now on. */
        void* q = best_alloc_fit(vm, want, 0);
        if (!q)
            return NULL;
        if (type & VM_RSCOPY)
            memcpy(q, p, (size_t)old);
        (void)pg_free(vm, best_pages(vm), p);
        return q;
    }
    return vm_resize_move(vm, p, (size_t)old, want, type);
}

static void* best_resize(Vmalloc_t* vm, void* p, size_t size, int type)
{
    long small = pg_size(vm, best_pages(vm), p);
    if (small != -2)
        return best_resize_small(vm, p, small, size, type);
    Blk* b = best_busy(vm, p);
    if (!b)
        return NULL;
    size_t old = blk_usable(b);
    size_t bsize = best_blksize(size);
    if (b->head & HUGE) {
        Vmseg_t* seg = vm_seg_find(vm, p);
        size_t lead = (size_t)((char*)b - seg->data);
        if (bsize <= blk_size(b) && blk_size(b) - bsize < vm_round(seg->disc))
            return p; /* not worth a discipline call */
        if (bsize > blk_size(b))
            best_growing(vm, 1);
        if (vm_seg_resize(vm, seg, lead + bsize) == 0) {
            best_set_busy(vm, b, (size_t)(seg->end - (char*)b), HUGE);
            vm_busy_resize(vm, old, blk_usable(b));
            return p;
        }
        if (bsize <= blk_size(b))
            return p;
    } else if (bsize <= blk_size(b)) {
        best_trim(vm, b, bsize);
        vm_busy_resize(vm, old, blk_usable(b));
        return p;
    } else if (best_grow_inplace(vm, b, bsize) == 0) {
        vm_busy_resize(vm, old, blk_usable(b));
        return p;
    }
    return vm_resize_move(vm, p, old, size, type);
}

static long best_size(Vmalloc_t* vm, void* p)
{
    long small = pg_size(vm, best_pages(vm), p);
    if (small != -2)
        return small;
    Blk* b = best_busy(vm, p);
    vm->fault = 0; /* a question, not a call that failed */
    return b ? (long)blk_usable(b) : -1;
}

static long best_addr(Vmalloc_t* vm, void* addr)
{
    long small = pg_addr(vm, best_pages(vm), addr);
    if (small != -2)
        return small;
    Vmseg_t* seg = vm_seg_find(vm, addr);
    char* a = addr;
    if (!seg || (seg->mflags & SEG_PAGES))
        return -1;
    if (seg->mflags & SEG_HUGE) {
        Blk* b = seg->mdata;
        return a >= (char*)blk_data(b) && a < (char*)b + blk_size(b) ? a - (char*)blk_data(b) : -1;
    }
    if (a < seg->data || a >= seg->end)
        return -1;
    for (Blk* b = blk_at(seg->data); blk_size(b) != 0; b = blk_next(b)) {
        if (a < (char*)b + blk_size(b))
            return (b->head & BUSY) && a >= (char*)blk_data(b) ? a - (char*)blk_data(b) : -1;
    }
    return -1;
}

static int best_init(Vmalloc_t* vm)
{
    if (vm->home)
        best_seg_format(vm, vm->home);
    (void)best_pages(vm);
    return 0;
}

static int best_clear(Vmalloc_t* vm)
{
    Best_t* st = best_state(vm);
    Pgstate_t* pg = best_pages(vm);
    memset(&st->binmap, 0, sizeof *st - offsetof(Best_t, binmap)); /* pg is kept */
    pg_clear(vm, pg);
    /* Huge segments go back; the others become single free blocks. Walk
     * backwards: vm_seg_put shifts the table's tail. */
    for (size_t i = vm->nsegs; i-- > 0;) {
        Vmseg_t* seg = vm->segs[i];
        if (seg->mflags & SEG_PAGES)
            continue;
        if ((seg->mflags & SEG_HUGE) && vm_seg_put(vm, seg) == 0)
            continue;
        best_seg_format(vm, seg);
    }
    return 0;
}

static int best_compact(Vmalloc_t* vm)
{
    Best_t* st = best_state(vm);
    pg_compact(vm, best_pages(vm));
    for (size_t i = vm->nsegs; i-- > 0;) {
        Vmseg_t* seg = vm->segs[i];
        if (seg->mflags & (SEG_HUGE | SEG_PAGES))
            continue;
        Blk* first = blk_at(seg->data);
        if (seg != vm->home && blk_size(first) && !(first->head & BUSY) &&
            blk_next(first) == seg_sentinel(seg)) {
            best_unlink(st, first);
            if (st->wildseg == seg)
                st->wildseg = NULL;
            if (vm_seg_put(vm, seg) == 0)
                continue;
            best_seg_format(vm, seg);
        }
    }
    /* Shorten the wilderness segment to its last busy block. */
    Vmseg_t* seg = st->wildseg;
    Blk* w = st->wild;
    if (seg && w && blk_size(w) > vm_round(seg->disc)) {
        size_t keep = (size_t)((char*)w - seg->data) + BEST_MINBLK + BEST_HDR;
        best_unlink(st, w);
        if (vm_seg_resize(vm, seg, keep) == 0) {
            seg_sentinel(seg)->head = BUSY;
            best_mkfree(w, (size_t)((char*)seg_sentinel(seg) - (char*)w));
        }
        st->wild = w;
    }
    best_purge(vm, 1);
    if (vm->disc == &vm_dc_system)
        vm_dc_system_flush();
    return 0;
}

static int best_stat(Vmalloc_t* vm, Vmstat_t* st)
{
    Pgstate_t* pg = best_pages(vm);
    pg_stat_begin(vm, pg, st);
    for (size_t i = 0; i < vm->nsegs; ++i) {
        Vmseg_t* seg = vm->segs[i];
        if (seg->mflags & SEG_PAGES) {
            pg_stat_seg(vm, pg, seg, st);
            continue;
        }
        Blk* b = (seg->mflags & SEG_HUGE) ? seg->mdata : blk_at(seg->data);
        for (; blk_size(b) != 0; b = blk_next(b)) {
            if (b->head & BUSY) {
                if (blk_usable(b) > st->m_busy)
                    st->m_busy = blk_usable(b);
            } else {
                st->n_free += 1;
                st->s_free += blk_size(b);
                if (blk_size(b) > st->m_free)
                    st->m_free = blk_size(b);
            }
            if (b->head & HUGE)
                break;
        }
    }
    return 0;
}

static int best_walk(Vmalloc_t* vm, Vmvisit_f visit, void* arg)
{
    Pgstate_t* pg = best_pages(vm);
    for (size_t i = 0; i < vm->nsegs; ++i) {
        Vmseg_t* seg = vm->segs[i];
        if (seg->mflags & SEG_PAGES) {
            int r = pg_walk_seg(vm, pg, seg, visit, arg);
            if (r != 0)
                return r;
            continue;
        }
        Blk* b = (seg->mflags & SEG_HUGE) ? seg->mdata : blk_at(seg->data);
        for (; blk_size(b) != 0; b = blk_next(b)) {
            if (b->head & BUSY) {
                int r = visit(vm, blk_data(b), blk_usable(b), vm_disc_shown(seg->disc), arg);
                if (r != 0)
                    return r;
            }
            if (b->head & HUGE)
                break;
        }
    }
    return 0;
}

/* ---- integrity ---------------------------------------------------------- */

/* Is b a plausible free-block address of this region (so it may be read)? */
static int best_owns(Vmalloc_t* vm, const Blk* b)
{
    Vmseg_t* seg = b ? vm_seg_find(vm, b) : NULL;
    return seg && !(seg->mflags & (SEG_HUGE | SEG_PAGES)) && (const char*)b >= seg->data &&
           (const char*)b + BEST_MINBLK <= seg->end - BEST_HDR && ((uintptr_t)b & 15) == 0;
}

/* Check the tree in order without recursion (a splay tree can be a chain as
 * long as the number of its nodes): Morris traversal threads and unthreads
 * right pointers, so a sound tree is left exactly as it was. Counts blocks in
 * *count; gives up after limit of them. Returns the violations found. */
static int best_check_tree(Vmalloc_t* vm, Blk* t, size_t* count, size_t limit)
{
    int bad = 0;
    size_t last = 0, steps = 0;
    while (t) {
        if (!best_owns(vm, t) || ++steps > 4 * (limit + 1))
            return bad + 1;
        Blk* pre = t->left;
        if (pre) {
            while (pre->right && pre->right != t) {
                if (!best_owns(vm, pre->right) || ++steps > 4 * (limit + 1))
                    return bad + 1;
                pre = pre->right;
            }
            if (!pre->right) { /* first visit: thread and descend */
                pre->right = t;
                t = t->left;
                continue;
            }
            pre->right = NULL; /* second visit: unthread */
        }
        size_t s = blk_size(t);
        if ((t->head & BUSY) || s < BEST_BIG || s <= last || t->prev)
            bad++;
        last = s;
        *count += 1;
        for (Blk *c = t->next, *p = t; c; p = c, c = c->next) {
            if (!best_owns(vm, c) || *count > limit)
                return bad + 1;
            if (blk_size(c) != s || (c->head & BUSY) || c->prev != p)
                bad++;
            *count += 1;
        }
        t = t->right;
    }
    return bad;
}

static int best_check(Vmalloc_t* vm)
{
    Best_t* st = best_state(vm);
    Pgstate_t* pg = best_pages(vm);
    int bad = pg_check(vm, pg);
    size_t nfree = 0, nbusy = 0, sbusy = 0, wildseen = 0;
    for (size_t i = 0; i < vm->nsegs; ++i) {
        Vmseg_t* seg = vm->segs[i];
        if (seg->mflags & SEG_PAGES) {
            bad += pg_check_seg(vm, pg, seg, &nbusy, &sbusy);
            continue;
        }
        if (seg->mflags & SEG_HUGE) {
            Blk* b = seg->mdata;
            if ((char*)b < seg->data || !(b->head & HUGE) || !(b->head & BUSY) ||
                !best_check_ok(vm, b) || (char*)b + blk_size(b) != seg->end) {
                bad++;
                continue;
            }
            nbusy++;
            sbusy += blk_usable(b);
            continue;
        }
        int prevfree = 0;
        Blk* b = blk_at(seg->data);
        for (;;) {
            char* pos = (char*)b;
            if (pos < seg->data || pos > seg->end - BEST_HDR || ((uintptr_t)pos & 15)) {
                bad++;
                break;
            }
            size_t s = blk_size(b);
            if (((b->head & PFREE) != 0) != prevfree)
                bad++;
            if (s == 0) { /* the sentinel */
                if (!(b->head & BUSY))
                    bad++;
                break;
            }
            if (s < BEST_MINBLK || (b->head & HUGE) || pos + s > seg->end - BEST_HDR) {
                bad++;
                break;
            }
            if (b->head & BUSY) {
                if (!best_check_ok(vm, b))
                    bad++;
                nbusy++;
                sbusy += blk_usable(b);
                prevfree = 0;
            } else {
                if (prevfree || *blk_footer(b) != s)
                    bad++;
                if (b == st->wild) {
                    wildseen++;
                    if (seg != st->wildseg || blk_next(b) != seg_sentinel(seg))
                        bad++;
                } else {
                    nfree++;
                    if (seg == st->wildseg && blk_next(b) == seg_sentinel(seg))
                        bad++; /* the wilderness, lost */
                }
                prevfree = 1;
            }
            b = blk_next(b);
        }
    }
    if (st->wild && wildseen != 1)
        bad++;
    if (nbusy != vm->n_busy || sbusy != vm->s_busy || vm->s_busy > vm->max_busy)
        bad++;
    /* Every free block (bar the wilderness) is in exactly one bin or the tree. */
    size_t linked = 0;
    for (int i = 0; i < BEST_NBINS; ++i) {
        int nonempty = st->bins[i] != NULL;
        if (nonempty != (int)((st->binmap[i >> 6] >> (i & 63)) & 1))
            bad++;
        Blk* prev = NULL;
        for (Blk* b = st->bins[i]; b; prev = b, b = b->left) {
            if (!best_owns(vm, b) || linked > nfree) {
                bad++;
                break;
            }
            if ((b->head & BUSY) || blk_size(b) != BEST_MINBLK + 16 * (size_t)i || b->right != prev)
                bad++;
            linked++;
        }
    }
    size_t inbins = linked;
    bad += best_check_tree(vm, st->tree, &linked, nfree);
    if (linked != nfree || linked - inbins != st->ntree)
        bad++;
    return bad;
}

static void best_close(Vmalloc_t* vm)
{
    Best_t* st = best_state(vm);
    if (st->ready)
        pg_close(vm, &st->pg);
}

Vmethod_t vm_best_method = {
    .name = "best",
    .id = VM_MTBEST,
    .statesize = sizeof(Best_t),
    .initf = best_init,
    .allocf = best_alloc,
    .freef = best_free,
    .resizef = best_resize,
    .addrf = best_addr,
    .sizef = best_size,
    .clearf = best_clear,
    .compactf = best_compact,
    .statf = best_stat,
    .walkf = best_walk,
    .checkf = best_check,
    .fastallocf = pg_fastallocf,
    .fastfreef = pg_fastfreef,
    .fastresizef = pg_fastresizef,
    .tailallocf = pg_tailallocf,
    .tailfreef = pg_tailfreef,
    .closef = best_close,
    .tickf = vm_best_tick,
};
Vmethod_t* Vmbest = &vm_best_method;

/* Vmheap: a static region (so it exists before any constructor runs) whose
 * Vmbest state is valid when zero; its segments come from Vmdcsystem. */
static struct {
    Vmalloc_t vm;
    alignas(16) Best_t state;
} best_heap = {
    .vm = {
        .meth = &vm_best_method,
        .disc = &vm_dc_system,
        .lock = VM_LOCK_INITIALIZER,
        .segs = best_heap.vm.seginline,
        .capsegs = VM_INLINE_SEGS,
    },
};

Vmalloc_t* vm_heap_region(void) { return &best_heap.vm; }
Vmalloc_t* Vmheap = &best_heap.vm;
Vmalloc_t* Vmregion = &best_heap.vm; /* malloc() arrives with its own issue */
