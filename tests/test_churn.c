/*
 * test_churn.c — threads created and ended by the hundred, each allocating
 * and freeing, some blocks outliving their thread.
 *
 * Each round starts BATCH short-lived threads. A thread frees the blocks the
 * main thread left for it, allocates and frees a few hundred blocks of mixed
 * sizes (cookies checked), resizes some, and hands HANDOFF blocks back to
 * the main thread, which checks and frees them after the join. Some threads
 * are detached instead of joined, so thread exit without join is exercised.
 *
 * What must hold: no cookie broken; Vmheap intact (vmdbcheck) at the end;
 * the busy count back where it was, within what the C library itself keeps
 * per thread; and no leak: the heap's extent after all rounds is within a
 * generous bound of the extent after the warm-up rounds. A thread's memory
 * must come back when it ends (whatever per-thread caching the heap does),
 * so a per-thread leak of even a few KiB shows over the rounds.
 *
 * Allocation goes through malloc() when the library provides it
 * (VMALLOC_MALLOC_ON), else through vmalloc(Vmheap, ...), so that the
 * sanitizer builds (whose malloc is the sanitizer's) test the region path.
 */
#define _GNU_SOURCE
#include "t.h"
#include "heapcalls.h"
#include "vmalloc.h"

#include <pthread.h>
#include <stdint.h>
#include <string.h>


enum { BATCH = 8, WARMUP = 4, ROUNDS = 100, OPS = 1000, LIVE = 48, HANDOFF = 8, GIFTS = 8 };

typedef struct {
    unsigned id;
    int detached;
    unsigned char* gift[GIFTS];      /* blocks from main for the thread to free */
    unsigned char* handoff[HANDOFF]; /* blocks from the thread for main to free */
    unsigned long errors;
} Job_t;

static pthread_mutex_t done_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t done_cond = PTHREAD_COND_INITIALIZER;
static int detached_running;
static unsigned long detached_errors;

static void stamp(unsigned char* p, size_t n, uint32_t c)
{
    memcpy(p, &n, sizeof n);
    memcpy(p + 8, &c, 4);
    memcpy(p + n - 4, &c, 4);
}

static int good(const unsigned char* p, uint32_t c)
{
    size_t n;
    uint32_t a, b;
    memcpy(&n, p, sizeof n);
    memcpy(&a, p + 8, 4);
    memcpy(&b, p + n - 4, 4);
    return a == c && b == c;
}

static size_t pick_size(uint64_t* s)
{
    uint64_t r = t_rand(s);
    if (r % 16 == 0)
        return 16 + (size_t)(r >> 8) % 30000;
    return 16 + (size_t)(r >> 8) % 400;
}

static void* run(void* arg)
{
    Job_t* job = arg;
    uint64_t s = 0x9e3779b97f4a7c15ull * (job->id + 1);
    unsigned long errors = 0;
    for (int i = 0; i < GIFTS; ++i) {
        if (job->gift[i] && !good(job->gift[i], 0xfeed0000u + (uint32_t)i))
            errors += 1;
        A_FREE(job->gift[i]);
    }
    unsigned char* live[LIVE] = {0};
    uint32_t cookie[LIVE];
    for (int op = 0; op < OPS; ++op) {
        int i = (int)(t_rand(&s) % LIVE);
        if (live[i]) {
            if (!good(live[i], cookie[i]))
                errors += 1;
            if (t_rand(&s) % 4 == 0) {
                size_t n = pick_size(&s);
                unsigned char* q = A_RESIZE(live[i], n);
                if (!q) {
                    errors += 1;
                    continue;
                }
                live[i] = q;
                stamp(q, n, cookie[i]);
            } else {
                A_FREE(live[i]);
                live[i] = NULL;
            }
        } else {
            size_t n = pick_size(&s);
            live[i] = A_ALLOC(n);
            if (!live[i]) {
                errors += 1;
                continue;
            }
            cookie[i] = (uint32_t)t_rand(&s);
            stamp(live[i], n, cookie[i]);
        }
    }
    /* the first HANDOFF live blocks outlive the thread; the rest are freed */
    int h = 0;
    for (int i = 0; i < LIVE; ++i) {
        if (!live[i])
            continue;
        if (h < HANDOFF && !job->detached) {
            size_t n;
            memcpy(&n, live[i], sizeof n); /* stamp() keeps the size in front */
            stamp(live[i], n, job->id);
            job->handoff[h++] = live[i];
        } else {
            A_FREE(live[i]);
        }
    }
    job->errors = errors;
    if (job->detached) {
        pthread_mutex_lock(&done_lock);
        detached_errors += errors;
        detached_running -= 1;
        pthread_cond_signal(&done_cond);
        pthread_mutex_unlock(&done_lock);
        A_FREE(job);
    }
    return NULL;
}

static unsigned long total_errors;

static void round_of_threads(unsigned round)
{
    Job_t* jobs[BATCH];
    pthread_t th[BATCH];
    for (unsigned t = 0; t < BATCH; ++t) {
        jobs[t] = A_ALLOC(sizeof(Job_t));
        CHECK(jobs[t], "allocating a job failed");
        memset(jobs[t], 0, sizeof(Job_t));
        jobs[t]->id = round * BATCH + t;
        jobs[t]->detached = t % 4 == 3;
        for (int i = 0; i < GIFTS; ++i) {
            size_t n = 32 + (size_t)i * 100;
            jobs[t]->gift[i] = A_ALLOC(n);
            CHECK(jobs[t]->gift[i], "allocating a gift failed");
            stamp(jobs[t]->gift[i], n, 0xfeed0000u + (uint32_t)i);
        }
    }
    for (unsigned t = 0; t < BATCH; ++t) {
        int detached = jobs[t]->detached; /* a detached thread frees its job */
        if (detached) {
            pthread_mutex_lock(&done_lock);
            detached_running += 1;
            pthread_mutex_unlock(&done_lock);
        }
        CHECK(pthread_create(&th[t], NULL, run, jobs[t]) == 0, "pthread_create failed");
        if (detached)
            CHECK(pthread_detach(th[t]) == 0, "pthread_detach failed");
    }
    for (unsigned t = 0; t < BATCH; ++t) {
        /* jobs[t] of a detached thread belongs to that thread now */
        if (t % 4 == 3)
            continue;
        CHECK(pthread_join(th[t], NULL) == 0, "pthread_join failed");
        total_errors += jobs[t]->errors;
        for (int i = 0; i < HANDOFF; ++i) {
            if (!jobs[t]->handoff[i])
                continue;
            if (!good(jobs[t]->handoff[i], jobs[t]->id))
                total_errors += 1;
            A_FREE(jobs[t]->handoff[i]);
        }
        A_FREE(jobs[t]);
    }
    pthread_mutex_lock(&done_lock);
    while (detached_running > 0)
        pthread_cond_wait(&done_cond, &done_lock);
    pthread_mutex_unlock(&done_lock);
}

static Vmstat_t stat_now(void)
{
    Vmstat_t st;
    CHECK(vmstat(Vmheap, &st) == 0, "vmstat failed");
    return st;
}

int main(void)
{
    Vmstat_t start = stat_now();
    unsigned round = 0;
    for (; round < WARMUP; ++round)
        round_of_threads(round);
    Vmstat_t warm = stat_now();
    size_t peak = warm.extent;
    for (; round < WARMUP + ROUNDS; ++round) {
        round_of_threads(round);
        Vmstat_t st = stat_now();
        if (st.extent > peak)
            peak = st.extent;
    }
    Vmstat_t end = stat_now();

    EXPECT(total_errors + detached_errors == 0, "%lu broken cookies or failed calls",
           total_errors + detached_errors);
    EXPECT(vmdbcheck(Vmheap) == 0, "Vmheap is damaged after %u rounds of %d threads", round,
           BATCH);
    /* The C library keeps a little per thread (stacks are cached, with their
     * TLS vectors); anything beyond a few blocks per thread is ours. */
    EXPECT(end.n_busy <= warm.n_busy + 4 * BATCH,
           "busy blocks: %zu at start, %zu after warm-up, %zu at the end: threads leak blocks",
           start.n_busy, warm.n_busy, end.n_busy);
    /* Live data at any moment is at most BATCH threads' worth (under 1 MiB
     * each): the extent may grow with fragmentation, but not with the
     * number of threads that have come and gone. */
    size_t bound = 2 * warm.extent + ((size_t)16 << 20);
    EXPECT(end.extent <= bound && peak <= bound,
           "extent %zu after warm-up, %zu at the end, peak %zu: more than the bound %zu after "
           "%u threads",
           warm.extent, end.extent, peak, bound, round * BATCH);
    fprintf(stderr, "test_churn: %u threads; extent %zu -> %zu (peak %zu); busy %zu -> %zu\n",
            round * BATCH, warm.extent, end.extent, peak, warm.n_busy, end.n_busy);
    return T_DONE();
}
