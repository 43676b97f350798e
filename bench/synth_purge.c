/* synth_purge [PEAK_MIB] [SECONDS] [THREADS] — does unused memory go back to
 * the OS (issue 5)? Run under each allocator's LD_PRELOAD (bench/run.sh).
 *
 * The program builds a peak of PEAK_MIB MiB (default 1024) of requested
 * bytes, half in small blocks (16..512 bytes) and half in medium ones
 * (4..64 KiB), every block written in full. A sixteenth of it is a live set
 * allocated first; of the temporaries that follow, one in 4096 survives too
 * (so live blocks are scattered among the dead, as in real programs). Then
 * every other temporary is freed, in random order. With THREADS > 1 (default
 * 1: the main thread does it) each of THREADS threads builds and frees its
 * share and exits. Then, without allocating, the program reads its resident
 * set every 20 ms for SECONDS seconds (default 2); then allocates and frees
 * 1,000 small blocks (an allocator that purges only when called gets its
 * chance) and reads it again; and finally asks the allocator to give memory
 * back at once: malloc_trim(0) where the allocator itself defines it (glibc,
 * vmalloc), else its own call (mimalloc's mi_collect, jemalloc's arena
 * purge, tcmalloc's ReleaseFreeMemory).
 *
 * One line out, key=value, sizes in KiB, times in ms:
 *   purge threads= peak_mib= seconds= base_kb= peak_kb= live_kb= rss0_kb=
 *   rss100ms_kb= rss1s_kb= rss_end_kb= settle_ms= poke_kb= release= trim_kb= build_cpu_ms=
 *   free_cpu_ms= idle_cpu_ms=
 * base is the resident set before the first allocation; the others are
 * whole-process resident sets. settle_ms is the first sample at which
 * rss - base <= 1.25 live + 4 MiB (-1: not within SECONDS); poke_kb is the
 * resident set after the 1,000 small blocks; trim_kb the resident set right
 * after the release call; idle_cpu_ms the CPU time spent while the program
 * slept (an allocator's background purging). A block found overwritten
 * exits with status 1. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "rss.h"

enum { SURVIVE = 4096, LIVE_PART = 16, TICK_MS = 20, MAX_TICKS = 3000, POKES = 1000 };

struct worker {
    size_t budget;        /* requested bytes to build */
    uint64_t rng;
    void** temp;          /* the temporaries (mapped here: not the allocator's) */
    size_t ntemp, captemp;
    void** live;          /* the live set */
    size_t nlive, caplive;
    size_t live_bytes;
    double build_cpu, free_cpu;
    int bad;
};

static pthread_barrier_t built, go;
static int threaded;

static uint64_t next(uint64_t* s)
{
    uint64_t x = *s;
    x ^= x << 13; x ^= x >> 7; x ^= x << 17;
    return *s = x;
}

/* N pointer slots mapped from the OS, so that the program's own arrays are
 * no part of what the allocator holds; NULL if the kernel refuses. */
static void** slots(size_t n)
{
    void* p = mmap(NULL, n * sizeof(void*), PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    return p == MAP_FAILED ? NULL : p;
}

/* A block of N bytes written in full: its size first, then a pattern that
 * depends on the size, checked by drop(). NULL on failure. */
static void* fill(size_t n)
{
    unsigned char* p = malloc(n);
    if (!p)
        return NULL;
    memset(p, (int)(n & 0xff), n);
    memcpy(p, &n, sizeof n);
    return p;
}

/* Frees a block made by fill(), after checking its pattern; returns its size. */
static size_t drop(struct worker* w, void* blk)
{
    unsigned char* p = blk;
    size_t n;
    memcpy(&n, p, sizeof n);
    unsigned char v = (unsigned char)(n & 0xff);
    if (n < 16 || p[n - 1] != v || p[n / 2 + 4] != v)
        w->bad = 1;
    free(p);
    return n;
}

/* The next size: small while the small half has had no more bytes than the
 * medium half, so each half gets about half the bytes. */
static size_t pick(struct worker* w, size_t* small, size_t* medium)
{
    size_t n;
    if (*small <= *medium) {
        n = 16 + next(&w->rng) % 497;
        *small += n;
    } else {
        n = 4096 + next(&w->rng) % (60 * 1024 + 1);
        *medium += n;
    }
    return n;
}

/* Builds the worker's live set and temporaries (budget bytes in all);
 * returns 0, or -1 when out of memory. */
static int build(struct worker* w)
{
    size_t small = 0, medium = 0, total = 0;
    double t = clock_s(CLOCK_THREAD_CPUTIME_ID);
    while (total < w->budget) {
        size_t n = pick(w, &small, &medium);
        void* p = fill(n);
        if (!p)
            return -1;
        total += n;
        if (total <= w->budget / LIVE_PART || w->ntemp % SURVIVE == SURVIVE - 1) {
            if (w->nlive == w->caplive)
                return -1;
            w->live[w->nlive++] = p;
            w->live_bytes += n;
            if (total > w->budget / LIVE_PART)
                w->ntemp++; /* a survivor keeps its turn in the count */
        } else {
            if (w->ntemp == w->captemp)
                return -1;
            w->temp[w->ntemp++] = p;
        }
    }
    w->build_cpu = clock_s(CLOCK_THREAD_CPUTIME_ID) - t;
    return 0;
}

/* Frees the temporaries in random order and unmaps their slot array. */
static void release_temps(struct worker* w)
{
    double t = clock_s(CLOCK_THREAD_CPUTIME_ID);
    for (size_t i = w->ntemp; i > 1; --i) {
        size_t j = next(&w->rng) % i;
        void* x = w->temp[i - 1];
        w->temp[i - 1] = w->temp[j];
        w->temp[j] = x;
    }
    for (size_t i = 0; i < w->ntemp; ++i)
        if (w->temp[i])
            drop(w, w->temp[i]);
    munmap(w->temp, w->captemp * sizeof(void*));
    w->temp = NULL;
    w->free_cpu = clock_s(CLOCK_THREAD_CPUTIME_ID) - t;
}

static void* work(void* arg)
{
    struct worker* w = arg;
    if (build(w) != 0)
        w->bad = 2;
    if (threaded)
        pthread_barrier_wait(&built); /* the main thread reads the peak */
    if (threaded)
        pthread_barrier_wait(&go);
    release_temps(w);
    return NULL;
}

/* Asks the allocator to return free memory now; names the call used.
 * malloc_trim counts only when the library that defines malloc defines it
 * too (otherwise it is glibc's, which knows nothing of this heap). */
static const char* give_back(void)
{
    Dl_info mi, ti;
    void* m = dlsym(RTLD_DEFAULT, "malloc");
    void* f = dlsym(RTLD_DEFAULT, "malloc_trim");
    if (m && f && dladdr(m, &mi) && dladdr(f, &ti) && mi.dli_fname && ti.dli_fname &&
        strcmp(mi.dli_fname, ti.dli_fname) == 0) {
        int (*trim)(size_t);
        memcpy(&trim, &f, sizeof f);
        trim(0);
        return "malloc_trim";
    }
    if ((f = dlsym(RTLD_DEFAULT, "mi_collect"))) {
        void (*collect)(_Bool);
        memcpy(&collect, &f, sizeof f);
        collect(1);
        return "mi_collect";
    }
    if ((f = dlsym(RTLD_DEFAULT, "mallctl"))) {
        int (*ctl)(const char*, void*, size_t*, void*, size_t);
        memcpy(&ctl, &f, sizeof f);
        ctl("arena.4096.purge", NULL, NULL, NULL, 0); /* 4096: every arena */
        return "mallctl_purge";
    }
    if ((f = dlsym(RTLD_DEFAULT, "MallocExtension_ReleaseFreeMemory"))) {
        void (*rel)(void);
        memcpy(&rel, &f, sizeof f);
        rel();
        return "ReleaseFreeMemory";
    }
    return "none";
}

static long at_ms[MAX_TICKS], rss_at[MAX_TICKS];

/* The resident set of the last sample taken no later than MS. */
static long sample_at(int ticks, long ms)
{
    long v = rss_at[0];
    for (int i = 0; i < ticks && at_ms[i] <= ms; ++i)
        v = rss_at[i];
    return v;
}

int main(int argc, char** argv)
{
    long peak_mib = argc > 1 ? atol(argv[1]) : 1024;
    double seconds = argc > 2 ? atof(argv[2]) : 2.0;
    int nthreads = argc > 3 ? atoi(argv[3]) : 1;
    if (peak_mib < 1 || peak_mib > (1L << 20) || !(seconds > 0) ||
        seconds * 1000 / TICK_MS >= MAX_TICKS || nthreads < 1 || nthreads > 64) {
        fprintf(stderr, "usage: synth_purge [PEAK_MIB 1..] [SECONDS 0..60] [THREADS 1..64]\n");
        return 2;
    }
    long base = rss_kb();
    if (base < 0) {
        fprintf(stderr, "synth_purge: no /proc/self/statm: cannot watch the resident set\n");
        return 2;
    }
    struct worker w[64];
    memset(w, 0, sizeof w);
    for (int t = 0; t < nthreads; ++t) {
        w[t].budget = (size_t)peak_mib * 1024 * 1024 / (size_t)nthreads;
        w[t].rng = 0x9e3779b97f4a7c15ull * (uint64_t)(t + 1);
        /* half the bytes in >= 16-byte blocks, half in >= 4 KiB ones */
        w[t].captemp = w[t].budget / 32 + w[t].budget / 4096 + 64;
        w[t].caplive = w[t].budget / LIVE_PART / 16 + w[t].captemp / SURVIVE + 16;
        w[t].temp = slots(w[t].captemp);
        w[t].live = slots(w[t].caplive);
        if (!w[t].temp || !w[t].live) {
            fprintf(stderr, "synth_purge: cannot map the block arrays\n");
            return 1;
        }
    }
    pthread_t tid[64];
    long peak;
    threaded = nthreads > 1;
    if (threaded) {
        pthread_barrier_init(&built, NULL, (unsigned)nthreads + 1);
        pthread_barrier_init(&go, NULL, (unsigned)nthreads + 1);
        for (int t = 0; t < nthreads; ++t)
            if (pthread_create(&tid[t], NULL, work, &w[t]) != 0)
                return 1;
        pthread_barrier_wait(&built);
        peak = rss_kb();
        pthread_barrier_wait(&go);
        for (int t = 0; t < nthreads; ++t)
            pthread_join(tid[t], NULL);
    } else {
        if (build(&w[0]) != 0)
            w[0].bad = 2;
        peak = rss_kb();
        release_temps(&w[0]);
    }
    size_t live_bytes = 0;
    double build_cpu = 0, free_cpu = 0;
    for (int t = 0; t < nthreads; ++t) {
        if (w[t].bad == 2) {
            fprintf(stderr, "synth_purge: out of memory building the peak\n");
            return 1;
        }
        live_bytes += w[t].live_bytes;
        build_cpu += w[t].build_cpu;
        free_cpu += w[t].free_cpu;
    }
    long live = (long)(live_bytes / 1024);

    /* Watch, without allocating. */
    double t0 = clock_s(CLOCK_MONOTONIC), c0 = clock_s(CLOCK_PROCESS_CPUTIME_ID);
    long settle = -1;
    int ticks = 0;
    for (;;) {
        long ms = (long)((clock_s(CLOCK_MONOTONIC) - t0) * 1000 + 0.5);
        at_ms[ticks] = ms;
        rss_at[ticks] = rss_kb();
        if (settle < 0 && rss_at[ticks] - base <= live + live / 4 + 4096)
            settle = ms;
        ++ticks;
        if (ms >= seconds * 1000 || ticks == MAX_TICKS)
            break;
        sleep_ms(TICK_MS);
    }
    double idle_cpu = clock_s(CLOCK_PROCESS_CPUTIME_ID) - c0;
    /* Some allocators purge only when called: a little activity (1,000
     * small blocks allocated and freed) lets them. */
    for (int i = 0; i < POKES; ++i)
        free(fill(64));
    long poked = rss_kb();
    const char* how = give_back();
    long trimmed = rss_kb();

    int bad = 0;
    for (int t = 0; t < nthreads; ++t) {
        for (size_t i = 0; i < w[t].nlive; ++i)
            drop(&w[t], w[t].live[i]);
        bad |= w[t].bad;
    }
    if (bad) {
        fprintf(stderr, "synth_purge: a block was overwritten\n");
        return 1;
    }
    printf("purge threads=%d peak_mib=%ld seconds=%g base_kb=%ld peak_kb=%ld live_kb=%ld "
           "rss0_kb=%ld rss100ms_kb=%ld rss1s_kb=%ld rss_end_kb=%ld settle_ms=%ld poke_kb=%ld "
           "release=%s trim_kb=%ld build_cpu_ms=%.0f free_cpu_ms=%.0f idle_cpu_ms=%.1f\n",
           nthreads, peak_mib, seconds, base, peak, live, rss_at[0], sample_at(ticks, 100),
           sample_at(ticks, 1000), rss_at[ticks - 1], settle, poked, how, trimmed, build_cpu * 1e3,
           free_cpu * 1e3, idle_cpu * 1e3);
    return 0;
}
