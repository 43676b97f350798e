/* synth_soak [THREADS] [REQUESTS] — a long larson-style steady workload that
 * watches the resident set (issue 5: no RSS growth over a long run). Run
 * under each allocator's LD_PRELOAD (bench/run.sh).
 *
 * THREADS chains (default 2) each own SLOTS blocks, filled by the main
 * thread. The run has EPOCHS epochs; in each a fresh thread takes over each
 * chain (so it frees blocks another thread allocated, and threads come and
 * go) and serves its share of REQUESTS (default 1,000,000 in all): free a
 * random slot, checking its contents, and allocate a new block into it —
 * nine in ten of 16..1024 bytes, one in ten of 1..16 KiB. The live set stays
 * about the same all along, so a resident set that keeps growing is the
 * allocator's doing. Chain 0's thread samples the resident set halfway
 * through each epoch, without allocating.
 *
 * One line out, key=value, sizes in KiB:
 *   soak threads= requests= live_kb= rss10_kb= rss_end_kb= rss_max_kb=
 *   growth_pct= cpu_ms= sum=
 * rss10 is the sample at 10% of the run, rss_end the last; growth_pct is
 * (rss_end - rss10) / rss10 in percent; live_kb the bytes in the slots at
 * the end; sum a checksum that depends only on the arguments. A corrupted
 * block exits with status 1. */
#define _POSIX_C_SOURCE 200809L
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rss.h"

enum { SLOTS = 10000, EPOCHS = 100 };

struct chain {
    unsigned char* slot[SLOTS];
    size_t len[SLOTS];
    uint64_t rng;
    uint64_t sum;
    long steps;   /* requests per epoch */
    int sampler;  /* this chain's thread samples the resident set */
    int epoch;
    int bad;
};

static long rss[EPOCHS];

static uint64_t next(uint64_t* s)
{
    uint64_t x = *s;
    x ^= x << 13; x ^= x >> 7; x ^= x << 17;
    return *s = x;
}

/* Allocates slot I's new block and writes it in full. */
static void put(struct chain* c, int i)
{
    uint64_t r = next(&c->rng);
    size_t n = r % 10 ? 16 + (r >> 8) % 1009 : 1024 + (r >> 8) % (15 * 1024 + 1);
    unsigned char* p = malloc(n);
    if (!p) {
        c->bad = 1;
        return;
    }
    memset(p, (int)((n ^ (size_t)i) & 0xff), n);
    c->slot[i] = p;
    c->len[i] = n;
}

/* Checks and frees slot I's block. */
static void take(struct chain* c, int i)
{
    unsigned char* p = c->slot[i];
    if (!p)
        return;
    size_t n = c->len[i];
    unsigned char v = (unsigned char)(n ^ (size_t)i);
    if (p[0] != v || p[n - 1] != v || p[n / 2] != v)
        c->bad = 1;
    c->sum = c->sum * 1000003u + n + p[n / 2];
    free(p);
    c->slot[i] = NULL;
}

static void* run(void* arg)
{
    struct chain* c = arg;
    for (long k = 0; k < c->steps; ++k) {
        if (c->sampler && k == c->steps / 2)
            rss[c->epoch] = rss_kb();
        int i = (int)(next(&c->rng) % SLOTS);
        take(c, i);
        put(c, i);
    }
    return NULL;
}

int main(int argc, char** argv)
{
    int threads = argc > 1 ? atoi(argv[1]) : 2;
    long requests = argc > 2 ? atol(argv[2]) : 1000000;
    if (threads < 1 || threads > 64 || requests < 2L * EPOCHS * threads) {
        fprintf(stderr, "usage: synth_soak [THREADS 1..64] [REQUESTS >= %d per thread]\n",
                2 * EPOCHS);
        return 2;
    }
    struct chain* c = calloc((size_t)threads, sizeof *c);
    pthread_t tid[64];
    if (!c)
        return 1;
    double cpu = clock_s(CLOCK_PROCESS_CPUTIME_ID);
    for (int t = 0; t < threads; ++t) {
        c[t].rng = 0x9e3779b97f4a7c15ull * (uint64_t)(t + 1);
        c[t].steps = requests / threads / EPOCHS;
        c[t].sampler = t == 0;
        for (int i = 0; i < SLOTS; ++i)
            put(&c[t], i);
    }
    for (int e = 0; e < EPOCHS; ++e) {
        for (int t = 0; t < threads; ++t) {
            c[t].epoch = e;
            if (pthread_create(&tid[t], NULL, run, &c[t]) != 0)
                return 1;
        }
        for (int t = 0; t < threads; ++t)
            pthread_join(tid[t], NULL);
    }
    cpu = clock_s(CLOCK_PROCESS_CPUTIME_ID) - cpu;
    size_t live = 0;
    long peak = 0;
    for (int t = 0; t < threads; ++t)
        for (int i = 0; i < SLOTS; ++i)
            live += c[t].len[i];
    for (int e = 0; e < EPOCHS; ++e)
        peak = rss[e] > peak ? rss[e] : peak;
    uint64_t sum = 0;
    int bad = 0;
    for (int t = 0; t < threads; ++t) {
        for (int i = 0; i < SLOTS; ++i)
            take(&c[t], i);
        sum ^= c[t].sum + (uint64_t)t;
        bad |= c[t].bad;
    }
    free(c);
    if (bad) {
        fprintf(stderr, "synth_soak: corrupted block\n");
        return 1;
    }
    long r10 = rss[EPOCHS / 10], end = rss[EPOCHS - 1];
    printf("soak threads=%d requests=%ld live_kb=%zu rss10_kb=%ld rss_end_kb=%ld rss_max_kb=%ld "
           "growth_pct=%.1f cpu_ms=%.0f sum=%llu\n",
           threads, requests, live / 1024, r10, end, peak,
           r10 > 0 ? 100.0 * (double)(end - r10) / (double)r10 : 0.0, cpu * 1e3,
           (unsigned long long)sum);
    return 0;
}
