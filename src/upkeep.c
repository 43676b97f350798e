/*
 * upkeep.c — the upkeep thread: a region's timed upkeep (purging memory
 * left unused for a while) done when it comes due, even when the program
 * makes no calls.
 *
 * A method's timed upkeep (its tickf, Vmbest's vm_best_tick) runs from the
 * method's own slow paths, so a program that frees a peak and then stops
 * calling the allocator (sleeps, waits on input, computes) would keep the
 * freed memory resident for good. One thread, serving the malloc
 * interface's heap (vm_upkeep_enable), calls the tickf under the region
 * lock when it is due, and waits without a timeout when the tickf says
 * nothing is left to do, until the method notes new work (vm_upkeep_note).
 *
 * When it starts. Lazily, and only in an allocation (vm_upkeep_poll, called
 * by the allocation slow paths after they unlock): once the region's
 * extent has reached VM_UPKEEP_MIN (vm_upkeep_grew, from segment.c), so
 * that short and small programs never get a thread. Never from a free:
 * glibc frees memory while it holds the lock of its thread-stack cache,
 * which pthread_create takes. It starts with every signal blocked (a
 * program's handlers never run on it) and is detached; if it cannot be
 * made (a sandbox that forbids clone, no memory) the method's own slow
 * paths still do the upkeep, as they always do. A child of fork has no
 * thread: it gets one if its heap grows again. VMALLOC_OPTIONS=purge_thread=0
 * turns it off (malloc.c).
 *
 * Locking. The thread holds the region lock while it runs the tickf. Its
 * own mutex (up_lock) guards up_idle's changes and the condition; the
 * order is region lock, then up_lock, in the thread and in the notes (which
 * run with the region locked). The thread decides that it is idle under
 * the region lock, so a note that follows sees up_idle set and wakes it.
 *
 * Bounds: one thread per process; a tickf call per due step (Vmbest: every
 * BEST_TICK_MS at most while something ages); no wake-up while idle.
 */
#define _GNU_SOURCE
#include "vmhdr.h"

#include <pthread.h>
#include <signal.h>
#include <time.h>

Vmalloc_t* vm_upkeep_vm;  /* the region served; NULL: none */
int vm_upkeep_state;      /* VM_UPKEEP_*: RUNNING from the moment one thread tries to start it */
int vm_upkeep_wanted;     /* the region grew enough: start at the next poll */
int vm_upkeep_idle;       /* the thread waits for a note (changed under up_lock) */

static pthread_mutex_t up_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t up_cond = PTHREAD_COND_INITIALIZER;

void vm_upkeep_enable(Vmalloc_t* vm)
{
    if (vm && vm->meth->tickf)
        vm_upkeep_vm = vm;
}

/* Wait on up_cond (up_lock held) until a note, or ms milliseconds. */
static void up_wait(long ms)
{
    if (ms < 0) {
        while (__atomic_load_n(&vm_upkeep_idle, __ATOMIC_RELAXED))
            pthread_cond_wait(&up_cond, &up_lock);
        return;
    }
    uint64_t due = vm_os_now_ms() + (uint64_t)ms; /* the same clock, coarser: never late */
    struct timespec at = {(time_t)(due / 1000), (long)(due % 1000) * 1000000L};
    (void)pthread_cond_clockwait(&up_cond, &up_lock, CLOCK_MONOTONIC, &at);
}

static void* up_main(void* arg)
{
    Vmalloc_t* vm = arg;
    for (;;) {
        pthread_mutex_lock(&vm->lock);
        long ms = vm->meth->tickf(vm);
        pthread_mutex_lock(&up_lock);
        if (ms < 0)
            __atomic_store_n(&vm_upkeep_idle, 1, __ATOMIC_RELAXED);
        pthread_mutex_unlock(&vm->lock);
        up_wait(ms);
        pthread_mutex_unlock(&up_lock);
    }
    return NULL;
}

void vm_upkeep_start(void)
{
    __atomic_store_n(&vm_upkeep_wanted, 0, __ATOMIC_RELAXED);
    int expect = VM_UPKEEP_NONE;
    if (!vm_upkeep_vm || !__atomic_compare_exchange_n(&vm_upkeep_state, &expect, VM_UPKEEP_RUNNING, 0,
                                                      __ATOMIC_ACQ_REL, __ATOMIC_RELAXED))
        return;
    pthread_attr_t attr;
    sigset_t all, old;
    pthread_t t;
    int r = pthread_attr_init(&attr);
    if (r == 0) {
        (void)pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        (void)pthread_attr_setstacksize(&attr, (size_t)64 << 10);
        sigfillset(&all);
        pthread_sigmask(SIG_SETMASK, &all, &old);
        r = pthread_create(&t, &attr, up_main, vm_upkeep_vm);
        pthread_sigmask(SIG_SETMASK, &old, NULL);
        /* Named here, not by the thread itself: whoever lists the process's
         * threads once this allocation returns sees it by its name. */
        if (r == 0)
            (void)pthread_setname_np(t, "vmalloc-upkeep");
        pthread_attr_destroy(&attr);
    }
    if (r != 0)
        __atomic_store_n(&vm_upkeep_state, VM_UPKEEP_FAILED, __ATOMIC_RELEASE);
}

void vm_upkeep_wake(void)
{
    pthread_mutex_lock(&up_lock);
    __atomic_store_n(&vm_upkeep_idle, 0, __ATOMIC_RELAXED);
    pthread_cond_signal(&up_cond);
    pthread_mutex_unlock(&up_lock);
}

void vm_upkeep_fork_child(void)
{
    pthread_mutex_t m = PTHREAD_MUTEX_INITIALIZER;
    pthread_cond_t c = PTHREAD_COND_INITIALIZER;
    up_lock = m;
    up_cond = c;
    __atomic_store_n(&vm_upkeep_idle, 0, __ATOMIC_RELAXED);
    __atomic_store_n(&vm_upkeep_wanted, 0, __ATOMIC_RELAXED);
    if (__atomic_load_n(&vm_upkeep_state, __ATOMIC_RELAXED) == VM_UPKEEP_RUNNING)
        __atomic_store_n(&vm_upkeep_state, VM_UPKEEP_NONE, __ATOMIC_RELAXED);
}
