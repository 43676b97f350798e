/*
 * bench_scope.c — the cost of a scope: make a temporary heap, allocate in it,
 * drop it, side by side for
 *   vmscope   vmenter + vmnew + vmleave (the VM_SUBHEAP block);
 *   talloc    talloc_new + talloc_size + talloc_free (Samba's talloc);
 *   apr       apr_pool_create + apr_palloc + apr_pool_destroy (APR pools);
 *   malloc    malloc + free of the same blocks (no heap at all: for scale).
 * Two patterns: "one" allocates one 32-byte block per scope; "ten" allocates
 * ten blocks of 16..304 bytes. Each line is "pattern allocator ns-per-scope"
 * in CPU time (user+sys of the process), after one unreported round of
 * everything (warm caches and clock); bench/scope.sh runs the program
 * several times and takes medians. talloc and APR are measured when the
 * build found them (HAVE_TALLOC, HAVE_APR); otherwise a "skip" line on
 * standard error names the packages to install.
 * No result is checked against a time limit.
 */
#define _POSIX_C_SOURCE 200809L
#include <vmalloc.h>

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#ifdef HAVE_TALLOC
#include <talloc.h>
#endif
#ifdef HAVE_APR
#include <apr_pools.h>
#endif

#define SCOPES 2000000

static double cpu_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return ts.tv_sec * 1e9 + ts.tv_nsec;
}

static volatile unsigned long sink; /* keeps the blocks from being optimised away */

static inline void touch(void* p) { sink += (unsigned long)(uintptr_t)p & 0xff; }

static int warming; /* a first, unreported round: caches, page faults, clock speed */

static void report(const char* pat, const char* who, double t0)
{
    if (!warming)
        printf("%s %s %.2f\n", pat, who, (cpu_now() - t0) / SCOPES);
}

static void bench_vmscope(int n)
{
    double t0 = cpu_now();
    for (int i = 0; i < SCOPES; ++i) {
        VM_SUBHEAP {
            for (int k = 0; k < n; ++k)
                touch(vmnew(n == 1 ? 32 : 16 + 32 * (size_t)k));
        }
    }
    report(n == 1 ? "one" : "ten", "vmscope", t0);
}

static void bench_malloc(int n)
{
    void* p[10];
    double t0 = cpu_now();
    for (int i = 0; i < SCOPES; ++i) {
        for (int k = 0; k < n; ++k)
            touch(p[k] = malloc(n == 1 ? 32 : 16 + 32 * (size_t)k));
        for (int k = 0; k < n; ++k)
            free(p[k]);
    }
    report(n == 1 ? "one" : "ten", "malloc", t0);
}

#ifdef HAVE_TALLOC
static void bench_talloc(int n)
{
    double t0 = cpu_now();
    for (int i = 0; i < SCOPES; ++i) {
        void* ctx = talloc_new(NULL);
        for (int k = 0; k < n; ++k)
            touch(talloc_size(ctx, n == 1 ? 32 : 16 + 32 * (size_t)k));
        talloc_free(ctx);
    }
    report(n == 1 ? "one" : "ten", "talloc", t0);
}
#endif

#ifdef HAVE_APR
static void bench_apr(int n)
{
    apr_pool_t* root;
    apr_pool_create(&root, NULL);
    double t0 = cpu_now();
    for (int i = 0; i < SCOPES; ++i) {
        apr_pool_t* pool;
        apr_pool_create(&pool, root);
        for (int k = 0; k < n; ++k)
            touch(apr_palloc(pool, n == 1 ? 32 : 16 + 32 * (size_t)k));
        apr_pool_destroy(pool);
    }
    report(n == 1 ? "one" : "ten", "apr", t0);
    apr_pool_destroy(root);
}
#endif

int main(void)
{
#ifdef HAVE_APR
    apr_initialize();
#endif
    for (warming = 1; warming >= 0; --warming) {
        for (int n = 1; n <= 10; n += 9) {
            bench_vmscope(n);
            bench_malloc(n);
#ifdef HAVE_TALLOC
            bench_talloc(n);
#endif
#ifdef HAVE_APR
            bench_apr(n);
#endif
        }
    }
#ifndef HAVE_TALLOC
    fprintf(stderr, "skip talloc: apt-get install libtalloc-dev, then reconfigure\n");
#endif
#ifndef HAVE_APR
    fprintf(stderr, "skip apr: apt-get install libapr1-dev, then reconfigure\n");
#endif
    return sink == 12345 ? 1 : 0;
}
