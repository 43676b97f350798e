/*
 * test_dbthreads.c — Vmdebug and Vmprofile are thread-safe: threads share
 * one region of each, allocate, fill, check, resize and free blocks of mixed
 * sizes (some handed to another thread to free), and in the end every block
 * is intact, the region's check finds nothing, its accounting is back to
 * zero, Vmdebug reported nothing, and Vmprofile's summary counts every call.
 */
#define _POSIX_C_SOURCE 200809L
#include "t.h"

#include <pthread.h>
#include <string.h>

#include "vmalloc.h"

#define NTHREADS 4
#define ROUNDS 4000
#define LIVE 64

typedef struct {
    Vmalloc_t* vm;
    unsigned id;
    unsigned long allocs, frees;
    int bad;
} Job_t;

/* One block handed from thread to thread, to be freed by the next taker. */
static pthread_mutex_t hand_lock = PTHREAD_MUTEX_INITIALIZER;
static void* hand_block[2];
static size_t hand_size[2];

static void* work(void* arg)
{
    Job_t* job = arg;
    int which = vmstat(job->vm, &(Vmstat_t){0}) == 0 && job->vm && (job->id & 0x100) ? 1 : 0;
    uint64_t rng = 0x9e3779b97f4a7c15ull * (job->id + 1);
    char* blk[LIVE] = {0};
    size_t sz[LIVE] = {0};
    for (int r = 0; r < ROUNDS; ++r) {
        int i = (int)(t_rand(&rng) % LIVE);
        if (blk[i]) {
            if (!intact(blk[i], sz[i], (unsigned)sz[i]))
                job->bad++;
            if (t_rand(&rng) % 4 == 0) {
                size_t n = 1 + t_rand(&rng) % 3000;
                char* q = vmresize(job->vm, blk[i], n, VM_RSCOPY);
                if (!q) {
                    job->bad++;
                    continue;
                }
                blk[i] = q;
                sz[i] = n;
                fill(q, n, (unsigned)n);
                job->allocs++, job->frees++;
                continue;
            }
            if (t_rand(&rng) % 8 == 0) { /* give it to another thread to free */
                pthread_mutex_lock(&hand_lock);
                void* other = hand_block[which];
                size_t osz = hand_size[which];
                hand_block[which] = blk[i];
                hand_size[which] = sz[i];
                pthread_mutex_unlock(&hand_lock);
                blk[i] = NULL;
                if (other) {
                    if (!intact(other, osz, (unsigned)osz))
                        job->bad++;
                    job->bad += vmfree(job->vm, other) != 0;
                    job->frees++;
                }
                continue;
            }
            job->bad += vmfree(job->vm, blk[i]) != 0;
            job->frees++;
            blk[i] = NULL;
        } else {
            size_t n = t_rand(&rng) % 8 == 0 ? 1 + t_rand(&rng) % 20000 : 1 + t_rand(&rng) % 200;
            blk[i] = vmalloc(job->vm, n);
            if (!blk[i]) {
                job->bad++;
                continue;
            }
            sz[i] = n;
            fill(blk[i], n, (unsigned)n);
            job->allocs++;
        }
    }
    for (int i = 0; i < LIVE; ++i) {
        if (blk[i]) {
            job->bad += !intact(blk[i], sz[i], (unsigned)sz[i]) || vmfree(job->vm, blk[i]) != 0;
            job->frees++;
        }
    }
    return NULL;
}

/* Run the threads on vm; the counts of calls that allocated and freed. */
static void run(Vmalloc_t* vm, unsigned tag, unsigned long* allocs, unsigned long* frees)
{
    pthread_t th[NTHREADS];
    Job_t job[NTHREADS];
    for (unsigned k = 0; k < NTHREADS; ++k) {
        job[k] = (Job_t){vm, k | tag, 0, 0, 0};
        CHECK(pthread_create(&th[k], NULL, work, &job[k]) == 0, "pthread_create failed");
    }
    *allocs = *frees = 0;
    for (unsigned k = 0; k < NTHREADS; ++k) {
        pthread_join(th[k], NULL);
        EXPECT(job[k].bad == 0, "thread %u saw %d bad answers or damaged blocks", k, job[k].bad);
        *allocs += job[k].allocs;
        *frees += job[k].frees;
    }
    int which = (tag & 0x100) ? 1 : 0;
    if (hand_block[which]) {
        EXPECT(vmfree(vm, hand_block[which]) == 0, "the handed block cannot be freed");
        *frees += 1;
        hand_block[which] = NULL;
    }
    Vmstat_t st;
    vmstat(vm, &st);
    EXPECT(vmdbcheck(vm) == 0, "vmdbcheck found errors");
    EXPECT(st.n_busy == 0 && st.s_busy == 0, "n_busy %zu s_busy %zu after every free", st.n_busy,
           st.s_busy);
}

int main(void)
{
    unsigned long allocs, frees;
    char path[] = "/tmp/test_dbthreads.XXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0, "mkstemp failed");
    fflush(stderr);
    int saved = dup(2);
    dup2(fd, 2);
    Vmalloc_t* dvm = vmopen(Vmdcsystem, Vmdebug, 0);
    CHECK(dvm, "vmopen(Vmdebug) failed");
    run(dvm, 0, &allocs, &frees);
    vmclose(dvm);
    dup2(saved, 2);
    close(saved);
    size_t n;
    char* reports = t_read_file(path, &n);
    EXPECT(reports && n == 0, "Vmdebug reported: %.300s", reports ? reports : "(nothing read)");
    free(reports);

    Vmalloc_t* pvm = vmopen(Vmdcsystem, Vmprofile, 0);
    CHECK(pvm, "vmopen(Vmprofile) failed");
    run(pvm, 0x100, &allocs, &frees);
    CHECK(ftruncate(fd, 0) == 0 && lseek(fd, 0, SEEK_SET) == 0, "cannot reuse %s", path);
    CHECK(vmprofile(pvm, fd) == 0, "vmprofile failed");
    char* prof = t_read_file(path, NULL);
    char want[128];
    snprintf(want, sizeof want, "ALLOCATION USAGE SUMMARY:n_alloc=%lu:n_free=%lu:", allocs, frees);
    EXPECT(prof && strncmp(prof, want, strlen(want)) == 0, "profile '%.100s', want '%s'",
           prof ? prof : "", want);
    free(prof);
    vmclose(pvm);
    close(fd);
    unlink(path);
    printf("test_dbthreads: %d threads on Vmdebug and Vmprofile: %s\n", NTHREADS,
           T_DONE() ? "FAILED" : "ok");
    return T_DONE();
}
