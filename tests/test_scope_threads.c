/*
 * test_scope_threads.c — every thread has its own heap stack: 4 threads nest
 * sub-heaps, escape, commit and abort transactions with cookies in every
 * block, each seeing only its own current heap; meanwhile they all allocate
 * in the global heap and in one shared owned heap (both locked), and free
 * each other's global blocks. A sub-heap handed to another thread is refused
 * there (leave, alloc, free, switch) and stays intact. A thread that exits
 * inside sub-heaps has them left for it (their destructors run). Runs under
 * TSan (label threads).
 */
#define _POSIX_C_SOURCE 200809L
#include "t.h"

#include <vmalloc.h>

#include <errno.h>
#include <pthread.h>
#include <string.h>

#define THREADS 4
#define ROUNDS 3000

static Vmalloc_t* shared; /* an owned heap of the global heap, used by all */
static void* handoff[THREADS][64]; /* global blocks each thread leaves for the next */
static pthread_mutex_t handoff_lock = PTHREAD_MUTEX_INITIALIZER;

static inline void cookie(void* p, size_t n, unsigned seed) { fill(p, n, seed); }

static void* worker(void* arg)
{
    unsigned id = (unsigned)(uintptr_t)arg;
    uint64_t rng = 0x9e3779b97f4a7c15ull * (id + 1);
    int bad = 0;
    Vmalloc_t* g = vmglobal();
    for (int r = 0; r < ROUNDS; ++r) {
        char* kept = NULL;
        VM_SUBHEAP_AS(a) {
            if (vmcurrent() != a)
                bad |= 1;
            size_t n = 1 + t_rand(&rng) % 3000;
            VM_SUBHEAP_AS(b) {
                char* x = vmnew(n);
                cookie(x, n, id + (unsigned)r);
                kept = vmescape(x);
                if (!kept || vmregion(kept) != a)
                    bad |= 2;
                (void)b;
            }
            VM_TXN(t) {
                char* y = vmnew(100);
                cookie(y, 100, id);
                if (r % 2)
                    vmtxn_abort(t);
                if (r % 2)
                    break;
            }
            if (!intact(kept, n, id + (unsigned)r))
                bad |= 4;
            VM_GLOBAL {
                void* gb = vmnew(48);
                cookie(gb, 48, id);
                pthread_mutex_lock(&handoff_lock);
                void** slot = &handoff[(id + 1) % THREADS][t_rand(&rng) % 64];
                void* old = *slot;
                *slot = gb;
                pthread_mutex_unlock(&handoff_lock);
                if (old && vmfree(g, old) != 0) /* another thread's global block */
                    bad |= 8;
            }
            VM_SWITCH(shared) {
                void* s = vmnew(32);
                cookie(s, 32, id);
                if (!intact(s, 32, id) || vmfree(shared, s) != 0)
                    bad |= 16;
            }
            if (vmcurrent() != a)
                bad |= 32;
        }
    }
    if (vmcurrent() != g)
        bad |= 64;
    return (void*)(uintptr_t)bad;
}

/* ---- a sub-heap handed to another thread ------------------------------------- */

static Vmalloc_t* foreign;
static void* foreign_block;

static void* intruder(void* arg)
{
    (void)arg;
    int bad = 0;
    int fd = dup(2), devnull = open("/dev/null", O_WRONLY);
    dup2(devnull, 2); /* the expected messages */
    if (vmleave(foreign) != -1 || errno != EINVAL)
        bad |= 1;
    if (vmalloc(foreign, 10) != NULL)
        bad |= 2;
    if (vmfree(foreign, foreign_block) != -1)
        bad |= 4;
    if (vmswitch(foreign) != NULL)
        bad |= 8;
    dup2(fd, 2);
    close(fd);
    close(devnull);
    return (void*)(uintptr_t)bad;
}

static int exit_dtor_ran;
static void exit_dtor(void* b)
{
    (void)b;
    __atomic_fetch_add(&exit_dtor_ran, 1, __ATOMIC_RELAXED);
}

static void* leaves_nothing(void* arg)
{
    (void)arg;
    vmenter();
    int* x = vmnew(sizeof *x);
    vmdestructor(x, exit_dtor);
    vmenter();
    vmnew(5000);
    pthread_exit(NULL); /* the thread's stack is left at its exit */
}

int main(void)
{
    VM_GLOBAL { shared = vmheap_open(); }
    CHECK(shared, "vmheap_open");
    pthread_t th[THREADS];
    for (unsigned i = 0; i < THREADS; ++i)
        CHECK(pthread_create(&th[i], NULL, worker, (void*)(uintptr_t)i) == 0, "pthread_create");
    for (unsigned i = 0; i < THREADS; ++i) {
        void* r;
        pthread_join(th[i], &r);
        EXPECT(r == NULL, "thread %u: failures 0x%lx", i, (unsigned long)(uintptr_t)r);
    }
    for (int i = 0; i < THREADS; ++i)
        for (int k = 0; k < 64; ++k)
            if (handoff[i][k])
                EXPECT(vmfree(vmglobal(), handoff[i][k]) == 0, "leftover global block");
    EXPECT(vmdbcheck(vmglobal()) == 0 && vmdbcheck(shared) == 0, "shared heaps intact");
    Vmstat_t st;
    vmstat(shared, &st);
    EXPECT(st.n_busy == 0, "the shared owned heap is empty: %zu", st.n_busy);

    foreign = vmenter();
    foreign_block = vmnew(24);
    fill(foreign_block, 24, 5);
    pthread_t t;
    void* r;
    pthread_create(&t, NULL, intruder, NULL);
    pthread_join(t, &r);
    EXPECT(r == NULL, "another thread's sub-heap is refused (0x%lx)", (unsigned long)(uintptr_t)r);
    EXPECT(intact(foreign_block, 24, 5) && vmdbcheck(foreign) == 0, "and left intact");
    EXPECT(vmleave(foreign) == 0, "its owner leaves it");

    pthread_create(&t, NULL, leaves_nothing, NULL);
    pthread_join(t, NULL);
    EXPECT(exit_dtor_ran == 1, "a thread's sub-heaps are left at its exit");
    EXPECT(vmheap_close(shared) == 0, "close the shared heap");
    printf("test_scope_threads: %s\n", t_failures ? "FAILED" : "ok");
    return T_DONE();
}
