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
 * under LD_PRELOAD to measure jemalloc, mimalloc or tcmalloc (bench/run.sh
 * does, and takes medians). No result is checked against a time limit.
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
    for (long i = 0; i < STEPS; ++i) {
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
    return t / STEPS;
}

static double run_fixed(Alloc* a)
{
    double t = cpu_now();
    for (int r = 0; r < ROUNDS; ++r) {
        for (long i = 0; i < FIXED; ++i) {
            slots[i] = a->alloc(a->ctx, 32);
            *(char*)slots[i] = 1;
        }
        for (long i = 0; i < FIXED; ++i)
            a->release(a->ctx, slots[i]);
    }
    return (cpu_now() - t) / (2.0 * ROUNDS * FIXED);
}

static double run_bump(Alloc* a)
{
    rng = 88172645463325252ull;
    double t = cpu_now();
    for (int r = 0; r < ROUNDS; ++r) {
        for (long i = 0; i < FIXED; ++i) {
            slots[i] = a->alloc(a->ctx, 8 + next() % 249);
            *(char*)slots[i] = 1;
        }
        if (a->drop)
            a->drop(a->ctx);
        else
            for (long i = 0; i < FIXED; ++i)
                a->release(a->ctx, slots[i]);
    }
    return (cpu_now() - t) / (2.0 * ROUNDS * FIXED);
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

int main(int argc, char** argv)
{
    const char* only = argc > 1 ? argv[1] : "all";
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
    return 0;
}
