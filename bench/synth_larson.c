/* synth_larson THREADS OPS — a larson-style server simulation (issue 4).
 *
 * THREADS chains run at once; each chain owns an array of SLOTS blocks. In
 * each of EPOCHS epochs a fresh thread takes over each chain's array (the
 * blocks it frees were allocated by the previous thread: cross-thread
 * frees) and does OPS/EPOCHS steps: free a random slot (checking what was
 * written into it) and allocate a new block of 16..1024 bytes into it.
 * Random numbers come from a per-chain generator, so the output depends only
 * on the arguments. Prints one line: "larson THREADS OPS CHECKSUM". */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { SLOTS = 1000, EPOCHS = 10 };

struct chain {
    unsigned char *slot[SLOTS];
    size_t len[SLOTS];
    uint64_t rng;
    uint64_t sum;
    long steps;
    int bad;
};

static uint64_t next(uint64_t *s)
{
    uint64_t x = *s;
    x ^= x << 13; x ^= x >> 7; x ^= x << 17;
    return *s = x;
}

static void put(struct chain *c, int i)
{
    size_t n = 16 + next(&c->rng) % 1009;
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
        int i = (int)(next(&c->rng) % SLOTS);
        take(c, i);
        put(c, i);
    }
    return NULL;
}

int main(int argc, char **argv)
{
    int threads = argc > 1 ? atoi(argv[1]) : 2;
    long ops = argc > 2 ? atol(argv[2]) : 1000000;
    if (threads < 1 || threads > 256 || ops < EPOCHS) {
        fprintf(stderr, "usage: synth_larson THREADS(1..256) OPS(>=%d)\n", EPOCHS);
        return 2;
    }
    struct chain *c = calloc((size_t)threads, sizeof *c);
    pthread_t *tid = malloc((size_t)threads * sizeof *tid);
    if (!c || !tid) return 1;
    for (int t = 0; t < threads; ++t) {
        c[t].rng = 0x9e3779b97f4a7c15ull * (uint64_t)(t + 1);
        c[t].steps = ops / EPOCHS;
        for (int i = 0; i < SLOTS; ++i) put(&c[t], i);   /* main thread allocates */
    }
    for (int e = 0; e < EPOCHS; ++e) {
        for (int t = 0; t < threads; ++t)
            if (pthread_create(&tid[t], NULL, run, &c[t]) != 0) return 1;
        for (int t = 0; t < threads; ++t) pthread_join(tid[t], NULL);
    }
    uint64_t sum = 0;
    int bad = 0;
    for (int t = 0; t < threads; ++t) {
        for (int i = 0; i < SLOTS; ++i) take(&c[t], i);   /* main thread frees */
        sum ^= c[t].sum + (uint64_t)t;
        bad |= c[t].bad;
    }
    free(tid);
    free(c);
    if (bad) { fprintf(stderr, "synth_larson: corrupted block\n"); return 1; }
    printf("larson %d %ld %llu\n", threads, ops, (unsigned long long)sum);
    return 0;
}
