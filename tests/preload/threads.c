/*
 * threads.c — a multi-threaded program for the preload tests: 4 threads
 * each run a seeded series of malloc, calloc, realloc and free calls, fill
 * every block from the seed and fold its bytes into a checksum when the
 * block is resized or freed. Blocks also pass between threads through a
 * mutex-protected exchange (freed by a thread other than the allocating
 * one). Every thread's checksum depends only on its seed, so the output is
 * the same with any correct malloc; a block that another call overwrote
 * changes it. Not linked with vmalloc: the test preloads it.
 */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { NTHREADS = 4, OPS = 40000, LIVE = 128, XCAP = 8 };

typedef struct {
    unsigned char* p;
    size_t n;
    unsigned char seed;
} Blk_t;

static pthread_mutex_t xlock = PTHREAD_MUTEX_INITIALIZER;
static Blk_t xslot[XCAP];
static uint64_t xsum; /* checksum of blocks freed from the exchange, order-independent */

static uint64_t rnd(uint64_t* s)
{
    uint64_t x = *s;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *s = x;
    return x * 0x2545F4914F6CDD1Dull;
}

static void fill(Blk_t* b)
{
    for (size_t i = 0; i < b->n; ++i)
        b->p[i] = (unsigned char)(b->seed + i);
}

/* Sum of the block's bytes; also counts bytes that are not what fill() wrote. */
static uint64_t fold(const Blk_t* b, size_t n, uint64_t* bad)
{
    uint64_t s = 0;
    for (size_t i = 0; i < n; ++i) {
        s += b->p[i];
        if (b->p[i] != (unsigned char)(b->seed + i))
            *bad += 1;
    }
    return s;
}

typedef struct {
    uint64_t seed, sum, bad, calls;
} Work_t;

static void* run(void* arg)
{
    Work_t* w = arg;
    uint64_t s = w->seed;
    Blk_t live[LIVE];
    memset(live, 0, sizeof live);
    for (int op = 0; op < OPS; ++op) {
        uint64_t r = rnd(&s);
        Blk_t* b = &live[r % LIVE];
        size_t n = (r >> 8) % 64 == 0 ? 1000 + (size_t)(r >> 16) % 200000 : 1 + (size_t)(r >> 16) % 600;
        if (!b->p) {
            b->n = n;
            b->seed = (unsigned char)(r >> 40);
            b->p = (r >> 32) % 5 == 0 ? calloc(1, n) : malloc(n);
            if (!b->p) {
                w->bad += 1;
                continue;
            }
            fill(b);
        } else if ((r >> 32) % 3 == 0) {
            size_t keep = b->n < n ? b->n : n;
            w->sum += fold(b, b->n, &w->bad);
            unsigned char* q = realloc(b->p, n);
            if (!q) {
                w->bad += 1;
                continue;
            }
            b->p = q;
            (void)fold(b, keep, &w->bad); /* the kept prefix must have moved intact */
            b->n = n;
            fill(b);
        } else if ((r >> 32) % 7 == 0) {
            /* swap with the exchange: someone else frees what we put there */
            pthread_mutex_lock(&xlock);
            Blk_t* x = &xslot[(r >> 48) % XCAP];
            Blk_t old = *x;
            *x = *b;
            pthread_mutex_unlock(&xlock);
            b->p = NULL;
            if (old.p) {
                uint64_t bad = 0;
                uint64_t sum = fold(&old, old.n, &bad);
                free(old.p);
                pthread_mutex_lock(&xlock);
                xsum += sum;
                pthread_mutex_unlock(&xlock);
                w->bad += bad;
            }
        } else {
            w->sum += fold(b, b->n, &w->bad);
            free(b->p);
            b->p = NULL;
        }
        w->calls += 1;
    }
    for (int i = 0; i < LIVE; ++i)
        if (live[i].p) {
            w->sum += fold(&live[i], live[i].n, &w->bad);
            free(live[i].p);
        }
    return NULL;
}

int main(void)
{
    pthread_t th[NTHREADS];
    Work_t w[NTHREADS];
    for (int i = 0; i < NTHREADS; ++i) {
        memset(&w[i], 0, sizeof w[i]);
        w[i].seed = 0x1234567ull * (uint64_t)(i + 1);
        if (pthread_create(&th[i], NULL, run, &w[i]) != 0) {
            fprintf(stderr, "pthread_create failed\n");
            return 1;
        }
    }
    uint64_t bad = 0;
    for (int i = 0; i < NTHREADS; ++i) {
        pthread_join(th[i], NULL);
        bad += w[i].bad;
    }
    for (int i = 0; i < XCAP; ++i)
        if (xslot[i].p) {
            xsum += fold(&xslot[i], xslot[i].n, &bad);
            free(xslot[i].p);
        }
    /* Which thread frees a block that went through the exchange depends on
     * timing, so per-thread sums do; the total does not: every block is
     * folded once when it is freed (and before each realloc by its owner). */
    uint64_t total = xsum;
    for (int i = 0; i < NTHREADS; ++i)
        total += w[i].sum;
    printf("threads: %d x %d operations\n", NTHREADS, OPS);
    printf("checksum: %llu\n", (unsigned long long)total);
    printf("corrupted bytes: %llu\n", (unsigned long long)bad);
    return bad != 0;
}
