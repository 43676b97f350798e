/*
 * bench_regions.c — time the region methods against the process's malloc on
 * three single-threaded patterns, each chosen to suit one method:
 *   random  a live set of 10,000 blocks of 16..1024 bytes, 2M random
 *           alloc/free steps (general purpose: Vmbest vs malloc);
 *   fixed   1M blocks of 32 bytes allocated, then all freed, 4 rounds
 *           (one size: Vmpool vs malloc);
 *   bump    1M blocks of 8..256 bytes allocated, then all dropped at once:
 *           vmclear for a region, a free() per block for malloc, 4 rounds
 *           (Vmlast vs malloc).
 * Each line is "pattern allocator ns-per-operation" in CPU time. The
 * allocator "malloc" is whatever malloc the process has: run the program
 * under LD_PRELOAD to measure jemalloc, mimalloc, tcmalloc or our own malloc
 * interface (bench/run.sh does, and takes medians). Baselines for issue 5:
 * "bare-bump" (a pointer bumped through one buffer,
 * reset at each drop) on the bump pattern, and "bare-freelist" (an
 * intrusive LIFO list over a bumped buffer) on the fixed pattern — the least
 * any region method can do there, so Vmlast and Vmpool with VM_TRUST are
 * read as multiples of them. Usage: bench_regions [all|malloc] [DIV], where
 * DIV (default 1) divides every count (a quick run for the tests). No
 * result is checked against a time limit.
 */
#define _POSIX_C_SOURCE 200809L
#include <vmalloc.h>

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define LIVE 10000
#define STEPS 2000000
#define FIXED 1000000
#define ROUNDS 4
#define ALIGN 16 /* what malloc and the region methods give */

static long steps = STEPS, fixed = FIXED; /* the counts, after DIV */

typedef struct {
    void* (*alloc)(void* ctx, size_t n);
    void (*release)(void* ctx, void* p);
    void (*drop)(void* ctx); /* free everything at once, if it can; else NULL */
    void* ctx;
} Alloc;

static void* m_alloc(void* ctx, size_t n) { (void)ctx; return malloc(n); }
static void m_free(void* ctx, void* p) { (void)ctx; free(p); }
static void* v_alloc(void* ctx, size_t n) { return vmalloc(ctx, n); }
static void v_free(void* ctx, void* p) { vmfree(ctx, p); }
static void v_drop(void* ctx) { vmclear(ctx); }

/* The baselines: one buffer obtained from malloc before the clock starts
 * (its pages untouched), carved by a pointer; the free list links freed
 * blocks through their first word. Neither checks for running out: the
 * buffer is sized for the pattern. */
typedef struct {
    char* base;
    size_t used, cap;
    void* head; /* free list (bare-freelist only) */
} Bare;

static void* bare_bump(void* ctx, size_t n)
{
    Bare* b = ctx;
    void* p = b->base + b->used;
    b->used += (n + ALIGN - 1) & ~(size_t)(ALIGN - 1);
    return p;
}
static void bare_reset(void* ctx) { ((Bare*)ctx)->used = 0; }
static void* bare_pop(void* ctx, size_t n)
{
    Bare* b = ctx;
    void* p = b->head;
    if (p) {
        b->head = *(void**)p;
        return p;
    }
    return bare_bump(ctx, n);
}
static void bare_push(void* ctx, void* p)
{
    Bare* b = ctx;
    *(void**)p = b->head;
    b->head = p;
}
static void bare_none(void* ctx, void* p) { (void)ctx; (void)p; }

static uint64_t rng = 88172645463325252ull;
static inline uint64_t next(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

static double cpu_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return ts.tv_sec * 1e9 + ts.tv_nsec;
}

static void* slots[FIXED];

static double run_random(Alloc* a)
{
    rng = 88172645463325252ull;
    memset(slots, 0, LIVE * sizeof slots[0]);
    double t = cpu_now();
    for (long i = 0; i < steps; ++i) {
        size_t k = next() % LIVE;
        if (slots[k]) {
            a->release(a->ctx, slots[k]);
            slots[k] = NULL;
        } else {
            size_t n = 16 + next() % 1009;
            slots[k] = a->alloc(a->ctx, n);
            *(char*)slots[k] = 1;
        }
    }
    t = cpu_now() - t;
    for (size_t k = 0; k < LIVE; ++k)
        if (slots[k])
            a->release(a->ctx, slots[k]);
    return t / (double)steps;
}

static double run_fixed(Alloc* a)
{
    double t = cpu_now();
    for (int r = 0; r < ROUNDS; ++r) {
        for (long i = 0; i < fixed; ++i) {
            slots[i] = a->alloc(a->ctx, 32);
            *(char*)slots[i] = 1;
        }
        for (long i = 0; i < fixed; ++i)
            a->release(a->ctx, slots[i]);
    }
    return (cpu_now() - t) / (2.0 * ROUNDS * (double)fixed);
}

static double run_bump(Alloc* a)
{
    rng = 88172645463325252ull;
    double t = cpu_now();
    for (int r = 0; r < ROUNDS; ++r) {
        for (long i = 0; i < fixed; ++i) {
            slots[i] = a->alloc(a->ctx, 8 + next() % 249);
            *(char*)slots[i] = 1;
        }
        if (a->drop)
            a->drop(a->ctx);
        else
            for (long i = 0; i < fixed; ++i)
                a->release(a->ctx, slots[i]);
    }
    return (cpu_now() - t) / (2.0 * ROUNDS * (double)fixed);
}

static void report(const char* pattern, const char* name, double ns)
{
    printf("%s %s %.2f\n", pattern, name, ns);
    fflush(stdout);
}

static void region(const char* pattern, const char* name, Vmethod_t* meth, int flags,
                   double (*run)(Alloc*), int drop)
{
    Vmalloc_t* vm = vmopen(Vmdcsystem, meth, flags);
    Alloc a = {v_alloc, v_free, drop ? v_drop : NULL, vm};
    report(pattern, name, run(&a));
    vmclose(vm);
}

/* Times a baseline on its pattern, over a fresh buffer of CAP bytes. */
static void bare(const char* pattern, const char* name, size_t cap, int list,
                 double (*run)(Alloc*))
{
    Bare b = {malloc(cap), 0, cap, NULL};
    if (!b.base) {
        fprintf(stderr, "bench_regions: no %zu bytes for %s\n", cap, name);
        exit(1);
    }
    Alloc a = {list ? bare_pop : bare_bump, list ? bare_push : bare_none,
               list ? NULL : bare_reset, &b};
    report(pattern, name, run(&a));
    free(b.base);
}

int main(int argc, char** argv)
{
    const char* only = argc > 1 ? argv[1] : "all";
    long div = argc > 2 ? atol(argv[2]) : 1;
    if ((strcmp(only, "all") != 0 && strcmp(only, "malloc") != 0) || div < 1 || div > fixed) {
        fprintf(stderr, "usage: bench_regions [all|malloc] [DIV 1..%d]\n", FIXED);
        return 2;
    }
    steps /= div;
    fixed /= div;
    Alloc m = {m_alloc, m_free, NULL, NULL};
    int all = strcmp(only, "all") == 0, mal = strcmp(only, "malloc") == 0;
    if (all || mal) {
        report("random", "malloc", run_random(&m));
        report("fixed", "malloc", run_fixed(&m));
        report("bump", "malloc", run_bump(&m));
    }
    if (mal)
        return 0;
    region("random", "vmbest", Vmbest, 0, run_random, 0);
    region("random", "vmbest-trust", Vmbest, VM_TRUST, run_random, 0);
    region("fixed", "vmbest", Vmbest, 0, run_fixed, 0);
    region("fixed", "vmpool", Vmpool, 0, run_fixed, 0);
    region("fixed", "vmpool-trust", Vmpool, VM_TRUST, run_fixed, 0);
    region("bump", "vmbest", Vmbest, 0, run_bump, 0);
    region("bump", "vmlast", Vmlast, 0, run_bump, 1);
    region("bump", "vmlast-trust", Vmlast, VM_TRUST, run_bump, 1);
    bare("fixed", "bare-freelist", (size_t)fixed * 32, 1, run_fixed);
    bare("bump", "bare-bump", (size_t)fixed * (256 + ALIGN), 0, run_bump);
    return 0;
}
