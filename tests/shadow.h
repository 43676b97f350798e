/*
 * shadow.h — a randomized shadow-model test for region methods, shared by
 * test_best, test_pool and test_last. Header only; include it first (it asks
 * for POSIX).
 *
 * The model is a table of live blocks {pointer, requested size, usable size,
 * seed}. Each block is filled with a pattern derived from (seed, offset) when
 * it is allocated or resized, and verified before it is freed or resized and
 * periodically. A run opens a region over one discipline and takes seeded,
 * reproducible random steps — vmalloc, vmresize(NULL), vmfree, vmresize with
 * every type combination (0, MOVE, COPY, COPY|CLEAR, MOVE|CLEAR, and size 0),
 * vmalign, vmclear, vmcompact — each checked against what the method promises.
 * After every step: vmdbcheck() is 0 and vmstat() agrees with the model
 * (n_busy, s_busy = sum of usable sizes, max_busy >= s_busy, busy + free
 * bytes within the extent). Every conf.every steps: contents, vmsize, vmaddr
 * of interior addresses, vmregion, vmsegment, and vmwalk visiting exactly the
 * live blocks (Vmlast: spans covering them). Bad-address probes (interior,
 * freed, stack, static, another region's block) must answer -1/NULL, leave
 * every block intact and the region clean.
 *
 * Method knowledge lives in a few sh_* predicates (what is the usable size,
 * must this call succeed); everything else is common. On the first failure
 * the test prints the test, discipline, seed, step and operation, and exits 1;
 * rerun with that seed as argv[1] (or VMALLOC_TEST_SEED) to reproduce. The
 * steps are a function of the seed, but where blocks land is not quite: large
 * alignments depend on where the kernel maps memory, so run the program under
 * `setarch -R` to replay a failure exactly. VMALLOC_TEST_QUICK runs a quarter
 * of the steps; VMALLOC_TEST_VERBOSE prints what each run did.
 *
 * The disciplines (sh_run_all): Vmdcsystem; Vmdcheap with VM_TRACE on
 * (written to /dev/null); a 32 MiB static buffer used from an odd address
 * with round 1000, handing out segments as a stack (only the top can be
 * released or resized; allocation may fail); Vmdcsbrk; Vmdcsystem failing
 * every 3rd request for memory; failing every 2nd with an exceptf that asks
 * to retry (allocation must then succeed); Vmdcsystem with VM_TRUST (no
 * probes, since the caller then vouches for every address).
 */
#ifndef SHADOW_H
#define SHADOW_H

#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L
#endif

#include "vmalloc.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* SH_DEBUG and SH_PROFILE promise what SH_BEST does (they are best fit over
 * an inner Vmbest region); only their vmstat mode differs. SH_SCOPE is
 * Vmscope, a general method too. */
enum { SH_BEST, SH_POOL, SH_LAST, SH_DEBUG, SH_PROFILE, SH_SCOPE };

enum {
    SH_ALLOC,   /* vmalloc */
    SH_RNULL,   /* vmresize(NULL, n, type) */
    SH_FREE,    /* vmfree */
    SH_RESIZE,  /* vmresize of a live block */
    SH_ALIGN,   /* vmalign */
    SH_WRONG,   /* Vmpool: a size other than the pool's */
    SH_COMPACT, /* vmcompact */
    SH_CLEAR,   /* vmclear */
    SH_NOPS
};

static const char* const sh_opname[SH_NOPS] = {"alloc", "resize(NULL)", "free",  "resize",
                                               "align", "wrong-size",   "compact", "clear"};

/* What one run does. Weights are per mille, in the order of the enum. */
typedef struct sh_conf_s {
    int kind;                /* SH_BEST, SH_POOL, SH_LAST, SH_DEBUG, SH_PROFILE, SH_SCOPE */
    long steps;              /* steps of the run (a quarter under VMALLOC_TEST_QUICK) */
    int weight[SH_NOPS];     /* how often each operation is drawn */
    size_t maxlive;          /* live blocks before allocating turns into freeing */
    size_t maxbytes;         /* live requested bytes before the same */
    size_t medium_max;       /* sizes: 85% 0..256, 12% ..4096, 3% ..medium_max (> 4096) */
    size_t large_max;        /* 0.1% of sizes: medium_max .. large_max; 0: none */
    size_t align_max;        /* vmalign: powers of two up to this */
    long every;              /* steps between full checks */
} Sh_conf_t;

/* The mix for a general-purpose method (Vmbest and the methods over it):
 * every operation but wrong-size frees, sizes up to 4 MiB, alignments up to
 * 1 MiB. */
static inline Sh_conf_t sh_conf_general(int kind, long steps)
{
    Sh_conf_t conf = {
        .kind = kind,
        .steps = steps,
        /*          alloc rnull free resize align wrong compact clear */
        .weight = {330, 20, 250, 280, 100, 0, 10, 2},
        .maxlive = 2000,
        .maxbytes = (size_t)16 << 20,
        .medium_max = 65536,
        .large_max = (size_t)4 << 20,
        .align_max = (size_t)1 << 20,
        .every = 200,
    };
    return conf;
}

/* A discipline that is a test device: a user's buffer handed out as a stack
 * of segments (under == NULL), or a wrapper around another discipline that
 * fails every every-th request for memory. It counts the events it hears. */
typedef struct sh_disc_s {
    Vmdisc_t disc;
    Vmdisc_t* under;       /* the wrapped discipline, or NULL: the buffer */
    char* base;            /* the buffer: [base, base + size), used up to top */
    size_t size, top;
    unsigned every;        /* fail every every-th get or grow; 0: never */
    unsigned long calls;   /* gets and grows seen */
    int retry;             /* answer VM_NOMEM with "try again" */
    unsigned long mark;    /* calls when "try again" was last answered */
    unsigned long badaddr; /* VM_BADADDR events heard */
    unsigned long nomem;   /* VM_NOMEM events heard */
} Sh_disc_t;

typedef struct sh_block_s {
    char* p;
    size_t size;   /* requested */
    size_t usable; /* vmsize when it was made (Vmlast: the rounded size) */
    uint64_t seed;
} Sh_block_t;

typedef struct sh_span_s {
    char* p;
    size_t size;
} Sh_span_t;

typedef struct sh_s {
    const char* test;
    const char* discname;
    Vmalloc_t* vm;
    Vmdisc_t* disc;
    Sh_disc_t* sdisc; /* disc as a test device, or NULL */
    int flags;        /* the region's vmopen flags */
    int mayfail;      /* the discipline may run out: allocation may answer NULL */
    const Sh_conf_t* conf;
    uint64_t seed, rng;
    long step;
    int op;

    Sh_block_t* blk; /* the live blocks */
    size_t n, cap;
    size_t s_usable; /* sum of usable sizes */
    size_t s_req;    /* sum of requested sizes */
    long lastidx;    /* Vmlast: the index of the last block, or -1 */
    size_t poolreq;  /* Vmpool: the request that fixes the size next */
    size_t poolsize; /* Vmpool: the block size, 0 while unfixed */

    struct {
        void* p;   /* a recently freed pointer, for double-free probes */
        long step; /* when, and how, for the report */
        int op;
    } freed[16];
    unsigned nfreed;

    Vmalloc_t* other; /* another region, and a block of it */
    void* foreign;

    Sh_span_t* walk; /* what vmwalk visited */
    size_t nwalk, capwalk;

    unsigned long nalloc, nnull; /* allocations asked, answered NULL */
    size_t peak, peakbytes;      /* most live blocks, most live usable bytes */
    unsigned long nops[SH_NOPS]; /* operations drawn */
} Sh_t;

/* ---- failing --------------------------------------------------------- */

static void sh_fail(const Sh_t* sh, const char* fmt, ...)
{
    va_list ap;
    fprintf(stderr, "%s: FAIL [disc=%s seed=0x%llx step=%ld op=%s]: ", sh->test, sh->discname,
            (unsigned long long)sh->seed, sh->step, sh->op >= 0 ? sh_opname[sh->op] : "setup");
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    fflush(stderr);
    exit(1);
}

/* ---- random numbers and patterns ------------------------------------- */

static inline uint64_t sh_mix(uint64_t x)
{
    x ^= x >> 30;
    x *= 0xBF58476D1CE4E5B9ull;
    x ^= x >> 27;
    x *= 0x94D049BB133111EBull;
    return x ^ (x >> 31);
}

static inline uint64_t sh_rand(Sh_t* sh)
{
    sh->rng += 0x9E3779B97F4A7C15ull;
    return sh_mix(sh->rng);
}

/* A uniform number in [0, n), n > 0. */
static inline size_t sh_below(Sh_t* sh, size_t n) { return (size_t)(sh_rand(sh) % n); }

/* The pattern's 8 bytes at word w of a block with this seed. */
static inline uint64_t sh_word(uint64_t seed, size_t w)
{
    return sh_mix(seed ^ ((uint64_t)w * 0xD1B54A32D192ED03ull));
}

static void sh_fill(char* p, size_t size, uint64_t seed)
{
    size_t w = 0;
    for (; (w + 1) * 8 <= size; ++w) {
        uint64_t v = sh_word(seed, w);
        memcpy(p + w * 8, &v, 8);
    }
    if (w * 8 < size) {
        uint64_t v = sh_word(seed, w);
        memcpy(p + w * 8, &v, size - w * 8);
    }
}

/* The first offset in [from, to) where p differs from its pattern, or
 * SIZE_MAX when none does. */
static size_t sh_diff(const char* p, size_t from, size_t to, uint64_t seed)
{
    size_t off = from;
    while (off < to) {
        size_t w = off / 8, wend = (w + 1) * 8 < to ? (w + 1) * 8 : to;
        unsigned char v[8];
        uint64_t x = sh_word(seed, w);
        memcpy(v, &x, 8);
        if (off % 8 == 0 && wend == off + 8) {
            if (memcmp(p + off, v, 8) != 0)
                for (size_t k = 0; k < 8; ++k)
                    if ((unsigned char)p[off + k] != v[k])
                        return off + k;
        } else {
            for (size_t k = off; k < wend; ++k)
                if ((unsigned char)p[k] != v[k - w * 8])
                    return k;
        }
        off = wend;
    }
    return SIZE_MAX;
}

/* The first non-zero byte of [p + from, p + to), or SIZE_MAX. */
static size_t sh_nonzero(const char* p, size_t from, size_t to)
{
    for (size_t k = from; k < to; ++k)
        if (p[k])
            return k;
    return SIZE_MAX;
}

/* ---- what the methods promise ---------------------------------------- */

/* The alignment C requires of an object of size bytes, as vmalloc rounds it. */
static inline size_t sh_natural(size_t size)
{
    size_t n = size <= 8 ? 8 : (size + 7) & ~(size_t)7;
    size_t low = n & (~n + 1);
    return low < 16 ? low : 16;
}

static inline size_t sh_round8(size_t size) { return size <= 8 ? 8 : (size + 7) & ~(size_t)7; }

static inline int sh_is_last(const Sh_t* sh, size_t i)
{
    return sh->conf->kind == SH_LAST && sh->lastidx == (long)i;
}

/* ---- the model --------------------------------------------------------- */

static void sh_push(Sh_t* sh, char* p, size_t size, size_t usable, uint64_t seed)
{
    if (sh->n == sh->cap) {
        sh->cap = sh->cap ? 2 * sh->cap : 1024;
        sh->blk = realloc(sh->blk, sh->cap * sizeof *sh->blk);
        if (!sh->blk)
            sh_fail(sh, "the test itself is out of memory");
    }
    sh->blk[sh->n++] = (Sh_block_t){p, size, usable, seed};
    sh->s_usable += usable;
    sh->s_req += size;
}

static void sh_remember_freed(Sh_t* sh, void* p)
{
    unsigned k = sh->nfreed++ % (sizeof sh->freed / sizeof sh->freed[0]);
    sh->freed[k].p = p;
    sh->freed[k].step = sh->step;
    sh->freed[k].op = sh->op;
}

static void sh_remove(Sh_t* sh, size_t i)
{
    sh->s_usable -= sh->blk[i].usable;
    sh->s_req -= sh->blk[i].size;
    sh_remember_freed(sh, sh->blk[i].p);
    if (sh->lastidx == (long)i)
        sh->lastidx = -1;
    sh->blk[i] = sh->blk[--sh->n];
    if (sh->lastidx == (long)sh->n)
        sh->lastidx = (long)i;
}

static void sh_forget_all(Sh_t* sh)
{
    for (size_t i = 0; i < sh->n && i < 4; ++i)
        sh_remember_freed(sh, sh->blk[sh->n - 1 - i].p);
    sh->n = 0;
    sh->s_usable = sh->s_req = 0;
    sh->lastidx = -1;
    sh->poolsize = 0;
}

static long sh_find(const Sh_t* sh, const void* p)
{
    for (size_t i = 0; i < sh->n; ++i)
        if (sh->blk[i].p == p)
            return (long)i;
    return -1;
}

/* Verify block i against its pattern: all of it, or (partial) its first and
 * last 4 KiB and one random 4 KiB in between. */
static void sh_verify(Sh_t* sh, size_t i, int partial)
{
    Sh_block_t* b = &sh->blk[i];
    size_t bad;
    if (!partial || b->size <= 16384)
        bad = sh_diff(b->p, 0, b->size, b->seed);
    else {
        size_t mid = 4096 + sh_below(sh, b->size - 12288);
        bad = sh_diff(b->p, 0, 4096, b->seed);
        if (bad == SIZE_MAX)
            bad = sh_diff(b->p, mid, mid + 4096, b->seed);
        if (bad == SIZE_MAX)
            bad = sh_diff(b->p, b->size - 4096, b->size, b->seed);
    }
    if (bad != SIZE_MAX)
        sh_fail(sh, "block %p (size %zu) corrupted at offset %zu", (void*)b->p, b->size, bad);
}

/* ---- sizes ------------------------------------------------------------- */

static size_t sh_size(Sh_t* sh)
{
    const Sh_conf_t* c = sh->conf;
    size_t r = sh_below(sh, 1000);
    if (r < 850 || c->medium_max <= 4096)
        return sh_below(sh, 257);
    if (r < 970)
        return 257 + sh_below(sh, 3840);
    if (r < 999 || c->large_max <= c->medium_max)
        return 4097 + sh_below(sh, c->medium_max - 4096);
    return c->medium_max + 1 + sh_below(sh, c->large_max - c->medium_max);
}

/* Vmpool: a request that fixes the block size after open or clear. */
static size_t sh_pool_pick(Sh_t* sh)
{
    size_t r = sh_below(sh, 100);
    if (r < 70)
        return sh_below(sh, 257);
    if (r < 95)
        return 257 + sh_below(sh, 3840);
    return 4097 + sh_below(sh, 61440);
}

/* Vmpool: a size that rounds to the pool's block size. */
static size_t sh_pool_size(Sh_t* sh)
{
    size_t r = sh->poolsize ? sh->poolsize : sh_round8(sh->poolreq);
    return r == 8 ? sh_below(sh, 9) : r - sh_below(sh, 8);
}

/* ---- one allocation ---------------------------------------------------- */

/* A block p of size bytes came back from an allocation: check what every
 * method promises of a new block, fill it, enter it into the model. align is
 * the alignment asked (0: natural); clear says it must read as zeros. */
static void sh_adopt(Sh_t* sh, char* p, size_t size, size_t align, int clear)
{
    int kind = sh->conf->kind;
    size_t nat = sh_natural(kind == SH_POOL && sh->poolsize ? sh->poolsize : size);
    if ((uintptr_t)p % nat != 0 || (align && (uintptr_t)p % align != 0))
        sh_fail(sh, "%p for %zu bytes is not aligned to %zu (asked %zu)", (void*)p, size, nat,
                align);
    long u = vmsize(sh->vm, p);
    if (kind == SH_POOL) {
        if (!sh->poolsize)
            sh->poolsize = sh_round8(size);
        if (u != (long)sh->poolsize)
            sh_fail(sh, "vmsize %ld of a pool block, the pool's size is %zu", u, sh->poolsize);
    } else if (kind == SH_LAST) {
        if (u != (long)sh_round8(size))
            sh_fail(sh, "vmsize %ld of the last block of %zu bytes, expected %zu", u, size,
                    sh_round8(size));
    } else if (u < (long)size || u < 0)
        sh_fail(sh, "vmsize %ld of a new block of %zu bytes", u, size);
    if (vmaddr(sh->vm, p) != 0)
        sh_fail(sh, "vmaddr of a new block %p is %ld", (void*)p, vmaddr(sh->vm, p));
    if (clear) {
        size_t nz = sh_nonzero(p, 0, (size_t)u);
        if (nz != SIZE_MAX)
            sh_fail(sh, "a cleared new block of %zu bytes has byte %zu non-zero", size, nz);
    }
    uint64_t seed = sh_rand(sh);
    sh_fill(p, size, seed);
    sh_push(sh, p, size, (size_t)u, seed);
    if (kind == SH_LAST)
        sh->lastidx = (long)sh->n - 1;
}

/* Must an allocation of size bytes aligned to align (0: natural) succeed? */
static int sh_must_alloc(const Sh_t* sh, size_t size, size_t align)
{
    if (sh->conf->kind == SH_POOL) {
        size_t r = sh->poolsize ? sh->poolsize : sh_round8(sh->poolreq);
        if (sh_round8(size) != r || align > sh_natural(r))
            return 0;
    }
    return !sh->mayfail;
}

/* May an allocation of size bytes aligned to align succeed at all? */
static int sh_may_alloc(const Sh_t* sh, size_t size, size_t align)
{
    if (sh->conf->kind == SH_POOL) {
        size_t r = sh->poolsize ? sh->poolsize : sh_round8(sh->poolreq);
        return sh_round8(size) == r && align <= sh_natural(r);
    }
    return 1;
}

static void sh_alloc_result(Sh_t* sh, char* p, size_t size, size_t align, int clear, int err)
{
    sh->nalloc++;
    if (p) {
        if (!sh_may_alloc(sh, size, align))
            sh_fail(sh, "%zu bytes aligned to %zu were given, the pool's size is %zu", size,
                    align, sh->poolsize);
        sh_adopt(sh, p, size, align, clear);
        return;
    }
    sh->nnull++;
    if (sh_must_alloc(sh, size, align))
        sh_fail(sh, "%zu bytes aligned to %zu: NULL (errno %d)", size, align, err);
    if (!sh_may_alloc(sh, size, align) && err != EINVAL)
        sh_fail(sh, "a refused pool request of %zu bytes set errno %d, not EINVAL", size, err);
}

static void sh_op_alloc(Sh_t* sh)
{
    size_t size = sh->conf->kind == SH_POOL ? sh_pool_size(sh) : sh_size(sh);
    errno = 0;
    char* p = vmalloc(sh->vm, size);
    sh_alloc_result(sh, p, size, 0, 0, errno);
}

static void sh_op_rnull(Sh_t* sh)
{
    size_t size = sh->conf->kind == SH_POOL ? sh_pool_size(sh) : sh_size(sh);
    int clear = sh_below(sh, 2) == 0;
    errno = 0;
    char* p = vmresize(sh->vm, NULL, size, clear ? VM_RSCLEAR | VM_RSCOPY : VM_RSCOPY);
    sh_alloc_result(sh, p, size, 0, clear, errno);
}

static void sh_op_align(Sh_t* sh)
{
    const Sh_conf_t* c = sh->conf;
    size_t size, align;
    int lg = 0;
    while (((size_t)2 << lg) <= c->align_max)
        lg++;
    align = (size_t)1 << sh_below(sh, (size_t)lg + 1);
    if (c->kind == SH_POOL)
        size = sh_pool_size(sh);
    else
        size = sh_below(sh, 4) ? sh_below(sh, 300) : sh_size(sh);
    errno = 0;
    char* p = vmalign(sh->vm, size, align);
    sh_alloc_result(sh, p, size, align, 0, errno);
}

static void sh_op_wrong(Sh_t* sh)
{
    if (!sh->poolsize)
        return; /* the request would fix the size, so no size is wrong yet */
    size_t r = sh->poolsize;
    size_t size = r > 8 && sh_below(sh, 2) ? sh_below(sh, r - 7) : r + 1 + sh_below(sh, 200);
    errno = 0;
    char* p = vmalloc(sh->vm, size);
    if (p || errno != EINVAL)
        sh_fail(sh, "%zu bytes from a pool of %zu: %p, errno %d", size, r, (void*)p, errno);
}

/* ---- freeing and resizing ---------------------------------------------- */

/* A live block to free or resize; Vmlast mostly picks the last one. */
static size_t sh_pick(Sh_t* sh)
{
    if (sh->conf->kind == SH_LAST && sh->lastidx >= 0 && sh_below(sh, 10) < 7)
        return (size_t)sh->lastidx;
    return sh_below(sh, sh->n);
}

/* A block that was refused or failed to resize: still intact and the same. */
static void sh_intact(Sh_t* sh, size_t i)
{
    sh_verify(sh, i, 0);
    long u = vmsize(sh->vm, sh->blk[i].p);
    long want = sh->conf->kind == SH_LAST && !sh_is_last(sh, i) ? -1 : (long)sh->blk[i].usable;
    if (u != want)
        sh_fail(sh, "vmsize of an untouched block %p is %ld, was %ld", (void*)sh->blk[i].p, u,
                want);
}

static void sh_op_free(Sh_t* sh)
{
    if (!sh->n)
        return;
    size_t i = sh_pick(sh);
    char* p = sh->blk[i].p;
    sh_verify(sh, i, 0);
    int must = sh->conf->kind != SH_LAST || sh_is_last(sh, i);
    errno = 0;
    int r = vmfree(sh->vm, p);
    if (must) {
        if (r != 0)
            sh_fail(sh, "vmfree of live block %p: %d (errno %d)", (void*)p, r, errno);
        sh_remove(sh, i);
    } else {
        if (r != -1 || errno != EINVAL)
            sh_fail(sh, "vmfree of a block that is not the last: %d, errno %d", r, errno);
        sh_intact(sh, i);
    }
}

static const int sh_rstypes[] = {0, VM_RSMOVE, VM_RSCOPY, VM_RSCOPY | VM_RSCLEAR,
                                 VM_RSMOVE | VM_RSCLEAR};

/* vmresize(p, 0, type) frees p when vmfree would. */
static void sh_resize_zero(Sh_t* sh, size_t i, int type)
{
    char* p = sh->blk[i].p;
    int frees = sh->conf->kind != SH_LAST || sh_is_last(sh, i);
    void* q = vmresize(sh->vm, p, 0, type);
    if (q)
        sh_fail(sh, "vmresize(%p, 0) returned %p", (void*)p, q);
    if (frees)
        sh_remove(sh, i);
    else
        sh_intact(sh, i);
}

/* Must a resize of block i to size bytes with type succeed, may it? */
static int sh_resize_must(const Sh_t* sh, size_t i, size_t size, int type, int* may)
{
    int kind = sh->conf->kind;
    *may = 1;
    if (kind == SH_POOL) {
        size_t r = sh->poolsize, n = sh_round8(size);
        *may = n <= r && sh_natural(n) <= sh_natural(r);
        return *may;
    }
    if (kind == SH_LAST && !sh_is_last(sh, i)) {
        *may = 0;
        return 0;
    }
    if (!(type & (VM_RSMOVE | VM_RSCOPY)))
        return kind != SH_LAST && size <= sh->blk[i].usable; /* shrinking needs no memory */
    return !sh->mayfail;
}

static void sh_op_resize(Sh_t* sh)
{
    if (!sh->n)
        return;
    int kind = sh->conf->kind;
    size_t i = sh_pick(sh);
    int type = sh_rstypes[sh_below(sh, sizeof sh_rstypes / sizeof sh_rstypes[0])];
    if (sh_below(sh, 50) == 0) {
        sh_verify(sh, i, 0);
        sh_resize_zero(sh, i, type);
        return;
    }
    size_t size;
    if (kind == SH_POOL)
        size = sh_below(sh, 2) ? 1 + sh_below(sh, sh->poolsize)
                               : sh->poolsize + 1 + sh_below(sh, 200);
    else
        size = sh_below(sh, 4) ? sh_size(sh) : 1 + sh_below(sh, sh->blk[i].usable + 64);
    if (size == 0)
        size = 1;
    Sh_block_t old = sh->blk[i];
    sh_verify(sh, i, 0);
    int may, must = sh_resize_must(sh, i, size, type, &may);
    errno = 0;
    char* q = vmresize(sh->vm, old.p, size, type);
    if (!q) {
        if (must)
            sh_fail(sh, "vmresize(%p of %zu, %zu, type %d) failed (errno %d)", (void*)old.p,
                    old.size, size, type, errno);
        if (!may && errno != EINVAL)
            sh_fail(sh, "a refused vmresize(%p, %zu, type %d) set errno %d, not EINVAL",
                    (void*)old.p, size, type, errno);
        sh_intact(sh, i);
        return;
    }
    if (!may)
        sh_fail(sh, "vmresize(%p, %zu, type %d) succeeded: %p", (void*)old.p, size, type,
                (void*)q);
    if (!type && q != old.p)
        sh_fail(sh, "vmresize type 0 moved %p to %p", (void*)old.p, (void*)q);
    size_t nat = sh_natural(kind == SH_POOL ? sh->poolsize : size);
    if ((uintptr_t)q % nat != 0)
        sh_fail(sh, "resized block %p of %zu bytes not aligned to %zu", (void*)q, size, nat);
    long u = vmsize(sh->vm, q);
    if (u < (long)size || (kind == SH_LAST && u != (long)sh_round8(size)) ||
        (kind == SH_POOL && u != (long)sh->poolsize))
        sh_fail(sh, "vmsize %ld after resizing to %zu", u, size);
    int kept = q == old.p || (type & VM_RSCOPY);
    if (kept) {
        size_t keep = old.size < size ? old.size : size;
        size_t bad = sh_diff(q, 0, keep, old.seed);
        if (bad != SIZE_MAX)
            sh_fail(sh, "resize %p -> %p (type %d, %zu -> %zu) lost byte %zu", (void*)old.p,
                    (void*)q, type, old.size, size, bad);
    }
    if (type & VM_RSCLEAR) {
        size_t from = kept ? old.usable : 0;
        size_t nz = sh_nonzero(q, from, (size_t)u);
        if (nz != SIZE_MAX)
            sh_fail(sh, "resize %p -> %p (type %d, %zu -> %zu): byte %zu not cleared",
                    (void*)old.p, (void*)q, type, old.size, size, nz);
    }
    if (q != old.p)
        sh_remember_freed(sh, old.p);
    Sh_block_t* b = &sh->blk[i];
    sh->s_usable = sh->s_usable - b->usable + (size_t)u;
    sh->s_req = sh->s_req - b->size + size;
    b->p = q;
    b->size = size;
    b->usable = (size_t)u;
    b->seed = sh_rand(sh);
    sh_fill(q, size, b->seed);
}

static void sh_op_clear(Sh_t* sh)
{
    if (vmclear(sh->vm) != 0)
        sh_fail(sh, "vmclear failed");
    sh_forget_all(sh);
    sh->poolreq = sh_pool_pick(sh);
    Vmstat_t st;
    vmstat(sh->vm, &st);
    if (st.n_busy || st.s_busy || st.max_busy)
        sh_fail(sh, "after vmclear: n_busy %zu s_busy %zu max_busy %zu", st.n_busy, st.s_busy,
                st.max_busy);
}

static void sh_op_compact(Sh_t* sh)
{
    if (vmcompact(sh->vm) != 0)
        sh_fail(sh, "vmcompact failed");
}

/* ---- checks ------------------------------------------------------------ */

/* After every step: the region's own check and its accounting. */
static void sh_check_step(Sh_t* sh)
{
    int bad = vmdbcheck(sh->vm);
    if (bad != 0)
        sh_fail(sh, "vmdbcheck found %d violations", bad);
    Vmstat_t st;
    if (vmstat(sh->vm, &st) != 0)
        sh_fail(sh, "vmstat failed");
    if (st.n_busy != sh->n || st.s_busy != sh->s_usable)
        sh_fail(sh, "vmstat n_busy %zu s_busy %zu, the model has %zu blocks of %zu bytes",
                st.n_busy, st.s_busy, sh->n, sh->s_usable);
    if (st.max_busy < st.s_busy || st.s_busy + st.s_free > st.extent || st.n_seg < 1)
        sh_fail(sh, "vmstat max_busy %zu s_busy %zu s_free %zu extent %zu n_seg %zu",
                st.max_busy, st.s_busy, st.s_free, st.extent, st.n_seg);
    static const int ids[] = {VM_MTBEST, VM_MTPOOL, VM_MTLAST, VM_MTDEBUG, VM_MTPROFILE,
                              VM_MTSCOPE};
    int id = ids[sh->conf->kind];
    if ((st.mode & VM_METHODS) != id || (st.mode & VM_FLAGS) != sh->flags)
        sh_fail(sh, "vmstat mode 0x%x", st.mode);
}

static int sh_visit(Vmalloc_t* vm, void* block, size_t size, Vmdisc_t* disc, void* arg)
{
    Sh_t* sh = arg;
    (void)disc;
    if (vm != sh->vm)
        sh_fail(sh, "vmwalk visited region %p, not %p", (void*)vm, (void*)sh->vm);
    if (sh->nwalk == sh->capwalk) {
        sh->capwalk = sh->capwalk ? 2 * sh->capwalk : 1024;
        sh->walk = realloc(sh->walk, sh->capwalk * sizeof *sh->walk);
        if (!sh->walk)
            sh_fail(sh, "the test itself is out of memory");
    }
    sh->walk[sh->nwalk++] = (Sh_span_t){block, size};
    return 0;
}

static int sh_cmp_block(const void* a, const void* b)
{
    const char* x = ((const Sh_block_t*)a)->p;
    const char* y = ((const Sh_block_t*)b)->p;
    return x < y ? -1 : x > y;
}

/* vmwalk: in address order, without overlap; exactly the live blocks with
 * their usable sizes, or (Vmlast) spans that cover every live block. */
static void sh_check_walk(Sh_t* sh)
{
    sh->nwalk = 0;
    if (vmwalk(sh->vm, sh_visit, sh) != 0)
        sh_fail(sh, "vmwalk returned non-zero");
    for (size_t k = 1; k < sh->nwalk; ++k)
        if (sh->walk[k].p < sh->walk[k - 1].p + sh->walk[k - 1].size)
            sh_fail(sh, "vmwalk out of order or overlapping at %p", (void*)sh->walk[k].p);
    Sh_block_t* sorted = malloc((sh->n + 1) * sizeof *sorted);
    if (!sorted)
        sh_fail(sh, "the test itself is out of memory");
    if (sh->n)
        memcpy(sorted, sh->blk, sh->n * sizeof *sorted);
    qsort(sorted, sh->n, sizeof *sorted, sh_cmp_block);
    if (sh->conf->kind != SH_LAST) {
        if (sh->nwalk != sh->n)
            sh_fail(sh, "vmwalk visited %zu blocks, %zu are live", sh->nwalk, sh->n);
        for (size_t k = 0; k < sh->n; ++k)
            if (sh->walk[k].p != sorted[k].p || sh->walk[k].size != sorted[k].usable)
                sh_fail(sh, "vmwalk visited %p (%zu), the model has %p (%zu)",
                        (void*)sh->walk[k].p, sh->walk[k].size, (void*)sorted[k].p,
                        sorted[k].usable);
    } else {
        size_t s = 0;
        for (size_t k = 0; k < sh->n; ++k) {
            while (s < sh->nwalk && sh->walk[s].p + sh->walk[s].size <= sorted[k].p)
                s++;
            if (s == sh->nwalk || sorted[k].p < sh->walk[s].p ||
                sorted[k].p + sorted[k].usable > sh->walk[s].p + sh->walk[s].size)
                sh_fail(sh, "live block %p (%zu) is in no span vmwalk visited",
                        (void*)sorted[k].p, sorted[k].usable);
        }
    }
    free(sorted);
}

/* Every few steps: contents, sizes, interior addresses, ownership, walk. */
static void sh_check_full(Sh_t* sh)
{
    int kind = sh->conf->kind;
    size_t m = 0;
    for (size_t i = 0; i < sh->n; ++i) {
        Sh_block_t* b = &sh->blk[i];
        sh_verify(sh, i, 1);
        int exact = kind != SH_LAST || sh_is_last(sh, i);
        long u = vmsize(sh->vm, b->p);
        if (u != (exact ? (long)b->usable : -1))
            sh_fail(sh, "vmsize of live %p is %ld, expected %ld", (void*)b->p, u,
                    exact ? (long)b->usable : -1L);
        /* vmaddr may walk a segment (Vmbest), so ask it of a sample. */
        size_t offs[3] = {0, b->usable / 2, b->usable - 1};
        for (int k = 0; k < 3 && (sh->n <= 32 || sh_below(sh, sh->n) < 16); ++k) {
            long a = vmaddr(sh->vm, b->p + offs[k]);
            if (exact ? a != (long)offs[k] : a < (long)offs[k])
                sh_fail(sh, "vmaddr(%p + %zu) is %ld", (void*)b->p, offs[k], a);
        }
        if (vmregion(b->p) != sh->vm || vmregion(b->p + b->usable - 1) != sh->vm)
            sh_fail(sh, "vmregion of live %p is %p", (void*)b->p, (void*)vmregion(b->p));
        if (!vmsegment(sh->vm, b->p))
            sh_fail(sh, "vmsegment of live %p is NULL", (void*)b->p);
        if (b->usable > m)
            m = b->usable;
    }
    Vmstat_t st;
    vmstat(sh->vm, &st);
    if (st.m_busy < m)
        sh_fail(sh, "vmstat m_busy %zu, a live block has %zu", st.m_busy, m);
    sh_check_walk(sh);
}

/* ---- bad addresses ------------------------------------------------------ */

static char sh_static_probe[256];

/* addr is no busy block of the region: vmfree and vmresize refuse it and
 * vmsize knows it not. fault says whether the two refusals must announce
 * VM_BADADDR (1), must not (0: Vmlast inside a busy span), or may (-1); it is
 * checked only where the discipline counts events. */
static void sh_reject(Sh_t* sh, void* addr, const char* what, int fault)
{
    unsigned long before = sh->sdisc ? sh->sdisc->badaddr : 0;
    errno = 0;
    int r = vmfree(sh->vm, addr);
    if (r != -1 || errno != EINVAL)
        sh_fail(sh, "vmfree of %s %p: %d, errno %d", what, addr, r, errno);
    void* q = vmresize(sh->vm, addr, 100, VM_RSCOPY);
    if (q)
        sh_fail(sh, "vmresize of %s %p: %p", what, addr, q);
    if (vmsize(sh->vm, addr) != -1)
        sh_fail(sh, "vmsize of %s %p: %ld", what, addr, vmsize(sh->vm, addr));
    unsigned long heard = sh->sdisc ? sh->sdisc->badaddr - before : 0;
    if (sh->sdisc && fault >= 0 && heard != (fault ? 2u : 0u))
        sh_fail(sh, "%s %p: %lu VM_BADADDR events for a free and a resize", what, addr, heard);
}

static void sh_probe(Sh_t* sh)
{
    int kind = sh->conf->kind;
    char stack[64];
    if (sh->n) {
        size_t i = sh_below(sh, sh->n);
        Sh_block_t* b = &sh->blk[i];
        static const size_t offs[3] = {1, 8, 16};
        for (int k = 0; k < 3; ++k)
            if (offs[k] < b->usable)
                sh_reject(sh, b->p + offs[k], "an interior pointer", kind != SH_LAST);
        if (kind == SH_LAST && !sh_is_last(sh, i))
            sh_reject(sh, b->p, "a block that is not the last", 0);
        sh_verify(sh, i, 1);
    }
    for (unsigned k = 0; k < sizeof sh->freed / sizeof sh->freed[0] && k < sh->nfreed; ++k) {
        void* p = sh->freed[k].p;
        if (!p || sh_find(sh, p) >= 0)
            continue;
        char what[64];
        snprintf(what, sizeof what, "a pointer freed at step %ld by %s", sh->freed[k].step,
                 sh->freed[k].op >= 0 ? sh_opname[sh->freed[k].op] : "setup");
        sh_reject(sh, p, what, kind != SH_LAST ? 1 : -1);
    }
    sh_reject(sh, stack + 16, "a stack address", 1);
    sh_reject(sh, sh_static_probe + 64, "a static address", 1);
    if (sh->foreign) {
        sh_reject(sh, sh->foreign, "another region's block", 1);
        if (vmsize(sh->other, sh->foreign) < 64)
            sh_fail(sh, "the other region's block was harmed");
    }
    sh_check_step(sh);
}

/* ---- a run ------------------------------------------------------------- */

static int sh_draw(Sh_t* sh)
{
    const Sh_conf_t* c = sh->conf;
    int total = 0;
    for (int k = 0; k < SH_NOPS; ++k)
        total += c->weight[k];
    int r = (int)sh_below(sh, (size_t)total);
    int op = 0;
    while (r >= c->weight[op])
        r -= c->weight[op++];
    /* Alternate phases that grow and shrink the live set, so that it
     * reaches hundreds of blocks and also drains. */
    int grow = (sh->step / (c->steps / 8 + 1)) % 2 == 0;
    if (grow && op == SH_FREE && sh_below(sh, 2))
        op = SH_ALLOC;
    else if (!grow && (op == SH_ALLOC || op == SH_ALIGN) && sh_below(sh, 2))
        op = SH_FREE;
    int full = sh->n >= c->maxlive || sh->s_req >= c->maxbytes;
    if (full && (op == SH_ALLOC || op == SH_RNULL || op == SH_ALIGN))
        op = c->kind == SH_LAST ? SH_CLEAR : SH_FREE;
    return op;
}

static void sh_step(Sh_t* sh)
{
    switch (sh->op) {
    case SH_ALLOC: sh_op_alloc(sh); break;
    case SH_RNULL: sh_op_rnull(sh); break;
    case SH_FREE: sh_op_free(sh); break;
    case SH_RESIZE: sh_op_resize(sh); break;
    case SH_ALIGN: sh_op_align(sh); break;
    case SH_WRONG: sh_op_wrong(sh); break;
    case SH_COMPACT: sh_op_compact(sh); break;
    case SH_CLEAR: sh_op_clear(sh); break;
    }
}

static long sh_steps(const Sh_conf_t* c)
{
    return getenv("VMALLOC_TEST_QUICK") ? c->steps / 4 : c->steps;
}

/* One run: a region with method meth over disc, flags, seed. mayfail says the
 * discipline may run out of memory. Probes need address validation, so they
 * are left out under VM_TRUST. Returns the steps taken. */
static long sh_run(const char* test, const char* discname, Vmdisc_t* disc, Vmethod_t* meth,
                   int flags, const Sh_conf_t* conf, uint64_t seed, int mayfail, int sdisc)
{
    Sh_t sh;
    memset(&sh, 0, sizeof sh);
    sh.test = test;
    sh.discname = discname;
    sh.disc = disc;
    sh.sdisc = sdisc ? (Sh_disc_t*)disc : NULL;
    sh.flags = flags;
    sh.mayfail = mayfail;
    sh.conf = conf;
    sh.seed = sh.rng = seed;
    sh.lastidx = -1;
    sh.op = -1;
    for (int tries = 0; !sh.vm && tries < 100; ++tries)
        sh.vm = vmopen(disc, meth, flags);
    if (!sh.vm)
        sh_fail(&sh, "vmopen failed (errno %d)", errno);
    sh.other = vmopen(Vmdcsystem, Vmbest, 0);
    sh.foreign = sh.other ? vmalloc(sh.other, 64) : NULL;
    if (!sh.foreign)
        sh_fail(&sh, "could not make another region");
    sh.poolreq = sh_pool_pick(&sh);
    long steps = sh_steps(conf);
    for (sh.step = 0; sh.step < steps; ++sh.step) {
        sh.op = sh_draw(&sh);
        sh.nops[sh.op]++;
        sh_step(&sh);
        if (sh.n > sh.peak)
            sh.peak = sh.n;
        if (sh.s_usable > sh.peakbytes)
            sh.peakbytes = sh.s_usable;
        sh_check_step(&sh);
        if (!(flags & VM_TRUST) && sh.step % 4 == 0)
            sh_probe(&sh);
        if (sh.step % conf->every == 0)
            sh_check_full(&sh);
    }
    sh.op = -1;
    sh_check_full(&sh);
    while (sh.n) {
        size_t i = sh.conf->kind == SH_LAST ? (size_t)(sh.lastidx >= 0 ? sh.lastidx : 0) : 0;
        if (sh.conf->kind == SH_LAST && sh.lastidx < 0)
            break;
        sh_verify(&sh, i, 0);
        if (vmfree(sh.vm, sh.blk[i].p) != 0)
            sh_fail(&sh, "final vmfree of %p failed", (void*)sh.blk[i].p);
        sh_remove(&sh, i);
        sh_check_step(&sh);
    }
    if (vmclose(sh.vm) != 0)
        sh_fail(&sh, "vmclose failed");
    vmclose(sh.other);
    if (sh.nalloc && sh.nnull == sh.nalloc)
        sh_fail(&sh, "every one of %lu allocations failed", sh.nalloc);
    if (getenv("VMALLOC_TEST_VERBOSE")) {
        printf("%s %-13s %6ld steps: %lu allocations (%lu NULL), peak %zu blocks / %zu bytes;",
               test, discname, steps, sh.nalloc, sh.nnull, sh.peak, sh.peakbytes);
        for (int k = 0; k < SH_NOPS; ++k)
            printf(" %s %lu", sh_opname[k], sh.nops[k]);
        printf("\n");
    }
    free(sh.blk);
    free(sh.walk);
    return steps;
}

/* ---- test disciplines --------------------------------------------------- */

/* The buffer: segments are handed out bottom up; only the topmost can be
 * released or resized, as with a stack. Sizes must be multiples of round. */
static void* sh_buf_memory(Vmalloc_t* vm, void* addr, size_t csz, size_t nsz, Vmdisc_t* disc)
{
    Sh_disc_t* d = (Sh_disc_t*)disc;
    char* a = addr;
    (void)vm;
    if (csz % disc->round || nsz % disc->round) {
        fprintf(stderr, "buffer discipline: sizes %zu, %zu are not multiples of %zu\n", csz, nsz,
                disc->round);
        exit(1);
    }
    if (csz && (a < d->base || a + csz > d->base + d->top)) {
        fprintf(stderr, "buffer discipline: %p of %zu bytes was never given\n", addr, csz);
        exit(1);
    }
    if (csz == 0) {
        if (nsz > d->size - d->top)
            return NULL;
        d->top += nsz;
        return d->base + d->top - nsz;
    }
    if (a + csz != d->base + d->top)
        return NULL; /* not the topmost segment */
    if (nsz == 0) {
        d->top -= csz;
        return addr;
    }
    if (nsz > csz && nsz - csz > d->size - d->top)
        return NULL;
    d->top = d->top - csz + nsz;
    return addr;
}

/* Fault injection: every every-th get or grow fails; releases and shrinks
 * always pass through. */
static void* sh_fail_memory(Vmalloc_t* vm, void* addr, size_t csz, size_t nsz, Vmdisc_t* disc)
{
    Sh_disc_t* d = (Sh_disc_t*)disc;
    if ((csz == 0 || nsz > csz) && d->every && ++d->calls % d->every == 0)
        return NULL;
    return d->under->memoryf(vm, addr, csz, nsz, d->under);
}

static int sh_except(Vmalloc_t* vm, int type, void* obj, Vmdisc_t* disc)
{
    Sh_disc_t* d = (Sh_disc_t*)disc;
    (void)vm;
    (void)obj;
    if (type == VM_BADADDR)
        d->badaddr++;
    if (type == VM_NOMEM) {
        d->nomem++;
        /* Again only if the discipline was asked since the last "again":
         * a refusal that no discipline call can cure must not loop. */
        if (d->retry && d->calls != d->mark) {
            d->mark = d->calls;
            return 1;
        }
    }
    return 0;
}

static void sh_buf_init(Sh_disc_t* d, char* base, size_t size, size_t round)
{
    memset(d, 0, sizeof *d);
    d->disc.memoryf = sh_buf_memory;
    d->disc.exceptf = sh_except;
    d->disc.round = round;
    d->base = base;
    d->size = size;
}

static void sh_fail_init(Sh_disc_t* d, unsigned every, int retry)
{
    memset(d, 0, sizeof *d);
    d->disc.memoryf = sh_fail_memory;
    d->disc.exceptf = sh_except;
    d->under = Vmdcsystem;
    d->every = every;
    d->retry = retry;
}

/* 32 MiB of static memory, used from an odd address. */
static char sh_arena[((size_t)32 << 20) + 64];

/* The seed: argv[1], else VMALLOC_TEST_SEED, else a fixed one. */
static uint64_t sh_seed(int argc, char** argv)
{
    const char* s = argc > 1 ? argv[1] : getenv("VMALLOC_TEST_SEED");
    return s ? (uint64_t)strtoull(s, NULL, 0) : 0x5eed0001ull;
}

/* The seed of run k of a test seeded with seed: distinct for distinct
 * (seed, k), so neighbouring seeds do not share runs. */
static inline uint64_t sh_seed_of(uint64_t seed, int k)
{
    return sh_mix(seed * 8 + (uint64_t)k);
}

/* Every discipline in turn, each with its own seed derived from seed.
 * Returns the total steps; *ndisc gets the number of runs. */
static long sh_run_all(const char* test, Vmethod_t* meth, const Sh_conf_t* conf, uint64_t seed,
                       int* ndisc)
{
    static Sh_disc_t buf, fail, retry;
    Sh_conf_t small = *conf;
    small.steps = conf->steps / 4;
    small.large_max = 0;
    small.maxbytes = conf->maxbytes / 4;
    sh_buf_init(&buf, sh_arena + 1, sizeof sh_arena - 33, 1000);
    sh_fail_init(&fail, 3, 0);
    sh_fail_init(&retry, 2, 1);
    const struct {
        const char* name;
        Vmdisc_t* disc;
        int flags;
        const Sh_conf_t* conf;
        int mayfail; /* the discipline may run out */
        int counts;  /* the discipline is an Sh_disc_t that counts events */
    } runs[] = {
        {"system", Vmdcsystem, 0, conf, 0, 0},
        {"heap+trace", Vmdcheap, VM_TRACE, conf, 0, 0},
        {"buffer", &buf.disc, 0, conf, 1, 1},
        {"sbrk", Vmdcsbrk, 0, &small, 0, 0},
        {"fail/3", &fail.disc, 0, &small, 1, 1},
        {"fail/2+retry", &retry.disc, 0, &small, 0, 1},
        {"system+trust", Vmdcsystem, VM_TRUST, &small, 0, 0},
    };
    int devnull = open("/dev/null", O_WRONLY);
    int oldfd = vmtrace(devnull);
    long total = 0;
    for (int k = 0; k < (int)(sizeof runs / sizeof runs[0]); ++k)
        total += sh_run(test, runs[k].name, runs[k].disc, meth, runs[k].flags, runs[k].conf,
                        sh_seed_of(seed, k + 1), runs[k].mayfail, runs[k].counts);
    *ndisc = (int)(sizeof runs / sizeof runs[0]);
    vmtrace(oldfd);
    if (devnull >= 0)
        close(devnull);
    return total;
}

#endif /* SHADOW_H */
