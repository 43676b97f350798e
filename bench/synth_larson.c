/* synth_larson THREADS OPS — a larson-style server simulation (issue 4);
 * built a second time with LARSON_SOAK as synth_soak [THREADS] [REQUESTS],
 * the long steady run of issue 5 that watches the resident set.
 *
 * THREADS chains run at once; each chain owns an array of SLOTS blocks. In
 * each of EPOCHS epochs a fresh thread takes over each chain's array (the
 * blocks it frees were allocated by the previous thread: cross-thread
 * frees) and does its share of the steps: free a random slot (checking what
 * was written into it) and allocate a new block of 16..1024 bytes into it.
 * Random numbers come from a per-chain generator, so the output depends only
 * on the arguments.
 *
 * synth_larson: 1,000 slots, 10 epochs, OPS steps per chain. Prints one
 * line: "larson THREADS OPS CHECKSUM".
 *
 * synth_soak: 10,000 slots, 100 epochs, REQUESTS steps in all (default
 * 1,000,000), and one block in ten of 1..16 KiB. The live set stays about
 * the same all along, so a resident set that keeps growing is the
 * allocator's doing. Chain 0's thread reads the resident set halfway through
 * each epoch, without allocating (rss.h). Prints one key=value line, sizes
 * in KiB:
 *   soak threads= requests= live_kb= rss10_kb= rss_end_kb= rss_max_kb=
 *   growth_pct= cpu_ms= sum=
 * rss10 is the sample at 10% of the run, rss_end the last; growth_pct is
 * (rss_end - rss10) / rss10 in percent; live_kb the bytes in the slots at
 * the end; sum the checksum. */
#define _POSIX_C_SOURCE 200809L
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rss.h"

#ifdef LARSON_SOAK
enum { SLOTS = 10000, EPOCHS = 100, MEDIUM_IN = 10, STEPS_IN_ALL = 1 };
#else
enum { SLOTS = 1000, EPOCHS = 10, MEDIUM_IN = 0, STEPS_IN_ALL = 0 };
#endif

struct chain {
    unsigned char *slot[SLOTS];
    size_t len[SLOTS];
    uint64_t rng;
    uint64_t sum;
    long steps;    /* per epoch */
    int sampler;   /* this chain's thread reads the resident set */
    int epoch;
    int bad;
};

static long rss[EPOCHS];

static uint64_t next(uint64_t *s)
{
    uint64_t x = *s;
    x ^= x << 13; x ^= x >> 7; x ^= x << 17;
    return *s = x;
}

/* A block size from the random R: 16..1024 bytes, or (soak) one time in
 * MEDIUM_IN 1..16 KiB. */
static size_t size_of(uint64_t r)
{
    if (MEDIUM_IN && r % MEDIUM_IN == 0)
        return 1024 + (r >> 8) % (15 * 1024 + 1);
    return 16 + r % 1009;
}

static void put(struct chain *c, int i)
{
    size_t n = size_of(next(&c->rng));
    unsigned char *p = malloc(n);
    if (!p) { c->bad = 1; return; }
    unsigned char v = (unsigned char)(n ^ (size_t)i);
    memset(p, v, n);
    c->slot[i] = p;
    c->len[i] = n;
}

static void take(struct chain *c, int i)
{
    unsigned char *p = c->slot[i];
    if (!p) return;
    size_t n = c->len[i];
    unsigned char v = (unsigned char)(n ^ (size_t)i);
    if (p[0] != v || p[n - 1] != v || p[n / 2] != v) c->bad = 1;
    c->sum = c->sum * 1000003u + n + p[n / 2];
    free(p);
    c->slot[i] = NULL;
}

static void *run(void *arg)
{
    struct chain *c = arg;
    for (long k = 0; k < c->steps; ++k) {
        if (c->sampler && k == c->steps / 2)
            rss[c->epoch] = rss_kb();
        int i = (int)(next(&c->rng) % SLOTS);
        take(c, i);
        put(c, i);
    }
    return NULL;
}

/* The soak's line: the resident set over the run, from the samples; LIVE
 * is the bytes the slots held at the end. */
static void report_soak(int threads, long ops, size_t live, double cpu, uint64_t sum)
{
    long peak = 0;
    for (int e = 0; e < EPOCHS; ++e)
        peak = rss[e] > peak ? rss[e] : peak;
    long r10 = rss[EPOCHS / 10], end = rss[EPOCHS - 1];
    printf("soak threads=%d requests=%ld live_kb=%zu rss10_kb=%ld rss_end_kb=%ld rss_max_kb=%ld "
           "growth_pct=%.1f cpu_ms=%.0f sum=%llu\n",
           threads, ops, live / 1024, r10, end, peak,
           r10 > 0 ? 100.0 * (double)(end - r10) / (double)r10 : 0.0, cpu * 1e3,
           (unsigned long long)sum);
}

int main(int argc, char **argv)
{
    int threads = argc > 1 ? atoi(argv[1]) : 2;
    long ops = argc > 2 ? atol(argv[2]) : 1000000;
    long least = STEPS_IN_ALL ? 2L * EPOCHS * threads : EPOCHS;
    if (threads < 1 || threads > 256 || ops < least) {
        fprintf(stderr, "usage: %s THREADS(1..256) %s(>=%ld)\n",
                STEPS_IN_ALL ? "synth_soak" : "synth_larson", STEPS_IN_ALL ? "REQUESTS" : "OPS",
                least);
        return 2;
    }
    struct chain *c = calloc((size_t)threads, sizeof *c);
    pthread_t *tid = malloc((size_t)threads * sizeof *tid);
    if (!c || !tid) return 1;
    double cpu = clock_s(CLOCK_PROCESS_CPUTIME_ID);
    for (int t = 0; t < threads; ++t) {
        c[t].rng = 0x9e3779b97f4a7c15ull * (uint64_t)(t + 1);
        c[t].steps = (STEPS_IN_ALL ? ops / threads : ops) / EPOCHS;
        c[t].sampler = STEPS_IN_ALL && t == 0;
        for (int i = 0; i < SLOTS; ++i) put(&c[t], i);   /* main thread allocates */
    }
    for (int e = 0; e < EPOCHS; ++e) {
        for (int t = 0; t < threads; ++t) {
            c[t].epoch = e;
            if (pthread_create(&tid[t], NULL, run, &c[t]) != 0) return 1;
        }
        for (int t = 0; t < threads; ++t) pthread_join(tid[t], NULL);
    }
    cpu = clock_s(CLOCK_PROCESS_CPUTIME_ID) - cpu;
    uint64_t sum = 0;
    size_t live = 0;
    int bad = 0;
    for (int t = 0; t < threads; ++t) {
        for (int i = 0; i < SLOTS; ++i) live += c[t].slot[i] ? c[t].len[i] : 0;
        for (int i = 0; i < SLOTS; ++i) take(&c[t], i);   /* main thread frees */
        sum ^= c[t].sum + (uint64_t)t;
        bad |= c[t].bad;
    }
    free(tid);
    free(c);
    if (bad) { fprintf(stderr, "%s: corrupted block\n", argv[0]); return 1; }
    if (STEPS_IN_ALL)
        report_soak(threads, ops, live, cpu, sum);
    else
        printf("larson %d %ld %llu\n", threads, ops, (unsigned long long)sum);
    return 0;
}
