/*
 * test_threads.c — regions shared by several threads.
 *
 *   - a Vmbest region and Vmheap, each used by 4 threads at once: seeded
 *     random allocations, frees and copying resizes; every block carries a
 *     cookie (its first and last words, a fill byte in between) checked when
 *     it is freed, resized or passed on; blocks travel between threads
 *     through a small mutex-protected exchange, so frees come from threads
 *     other than the allocating one;
 *   - a shared Vmpool and a shared Vmlast region (only the newest block can
 *     be freed, so most frees are refused and that must be consistent);
 *   - regions opened and closed by several threads while others ask
 *     vmregion() and walk every region;
 *   - walks of a region while other threads write their busy blocks, in
 *     pages no thread owns: a walk must not read a busy block;
 *   - an idle owner: a thread allocates many blocks and waits while
 *     another frees them all; the pages it no longer uses must go back to
 *     the region without its help (vmstat), and its queues stay sound
 *     (vmdbcheck from it) when it allocates again.
 * Afterwards the region's own check (vmdbcheck) must pass and vmstat must
 * count exactly the blocks the threads still hold.
 *
 * Run under ThreadSanitizer too (label "threads"): the test's own shared
 * state is touched only under its mutex or after pthread_join.
 */
#include "t.h"
#include "vmalloc.h"

#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <string.h>

enum { NTHREADS = 4, LIVE = 256, XCAP = 32 };

typedef struct {
    char* p;
    size_t size;
    uint64_t cookie;
} Blk_t;

/* Cookie: the first and last 8 bytes; every other byte is the cookie's low
 * byte. Checking samples the middle so that large blocks stay cheap under
 * ThreadSanitizer's instrumented loads. */
static void stamp(Blk_t* b)
{
    memset(b->p, (int)(b->cookie & 0xff), b->size);
    memcpy(b->p, &b->cookie, 8);
    memcpy(b->p + b->size - 8, &b->cookie, 8);
}

/* Are the first n bytes of b as stamp() left them (n == b->size: all)? */
static int good_prefix(const Blk_t* b, size_t n)
{
    uint64_t c;
    unsigned char fillc = (unsigned char)(b->cookie & 0xff);
    memcpy(&c, b->p, 8);
    if (c != b->cookie)
        return 0;
    size_t body = b->size - 8;
    for (size_t i = 8; i < n && i < body; i += (i < 128 ? 1 : 251))
        if ((unsigned char)b->p[i] != fillc)
            return 0;
    if (n >= b->size) {
        memcpy(&c, b->p + b->size - 8, 8);
        if (c != b->cookie)
            return 0;
    }
    return 1;
}

static int good(const Blk_t* b) { return good_prefix(b, b->size); }

static uint64_t rnd(uint64_t* s)
{
    uint64_t x = *s;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *s = x;
    return x * 0x2545F4914F6CDD1Dull;
}

/* Blocks in transit between threads. */
typedef struct {
    pthread_mutex_t lock;
    Blk_t slot[XCAP];
    int n;
} Xchg_t;

enum { BEST, POOL, LAST };

typedef struct {
    Vmalloc_t* vm;
    int kind;
    int id;
    long ops;
    uint64_t rng;
    Xchg_t* x;
    Blk_t* live; /* LIVE slots, or many more for Vmlast */
    int nlive, cap;
    long checks_failed;
} Worker_t;

static size_t pick_size(Worker_t* w)
{
    uint64_t r = rnd(&w->rng);
    if (w->kind == POOL)
        return 64;
    if (w->kind == LAST)
        return 16 + r % 500;
    if (r % 997 == 0)
        return (size_t)(1 << 20) + r % 500000; /* a segment of its own */
    if (r % 61 == 0)
        return 20000 + r % 180000;
    return 16 + r % 2000;
}

static void drop(Worker_t* w, int i) { w->live[i] = w->live[--w->nlive]; }

static void op_alloc(Worker_t* w)
{
    Blk_t b;
    b.size = pick_size(w);
    b.p = vmalloc(w->vm, b.size);
    CHECK(b.p, "thread %d: vmalloc(%zu) failed", w->id, b.size);
    CHECK(vmsize(w->vm, b.p) >= (long)b.size || w->kind == LAST, "thread %d: vmsize too small",
          w->id);
    b.cookie = rnd(&w->rng) | 1;
    stamp(&b);
    w->live[w->nlive++] = b;
}

static void op_free(Worker_t* w, int i)
{
    Blk_t* b = &w->live[i];
    CHECK(good(b), "thread %d: block %p of %zu bytes overwritten before its free", w->id,
          (void*)b->p, b->size);
    CHECK(vmfree(w->vm, b->p) == 0, "thread %d: vmfree failed", w->id);
    drop(w, i);
}

static void op_resize(Worker_t* w, int i)
{
    Blk_t* b = &w->live[i];
    size_t nsz = pick_size(w);
    CHECK(good(b), "thread %d: block overwritten before its resize", w->id);
    char* p = vmresize(w->vm, b->p, nsz, VM_RSCOPY);
    CHECK(p, "thread %d: vmresize(%zu) failed", w->id, nsz);
    b->p = p;
    size_t keep = b->size < nsz ? b->size : nsz;
    CHECK(good_prefix(b, keep - 8), "thread %d: vmresize lost content", w->id);
    b->size = nsz;
    stamp(b);
}

static void op_give(Worker_t* w, int i)
{
    CHECK(good(&w->live[i]), "thread %d: block overwritten before its hand-off", w->id);
    pthread_mutex_lock(&w->x->lock);
    if (w->x->n < XCAP) {
        w->x->slot[w->x->n++] = w->live[i];
        drop(w, i);
    }
    pthread_mutex_unlock(&w->x->lock);
}

static void op_take(Worker_t* w)
{
    pthread_mutex_lock(&w->x->lock);
    if (w->x->n > 0 && w->nlive < w->cap)
        w->live[w->nlive++] = w->x->slot[--w->x->n];
    pthread_mutex_unlock(&w->x->lock);
    if (w->nlive)
        CHECK(good(&w->live[w->nlive - 1]), "thread %d: a block arrived overwritten", w->id);
}

/* Vmbest, Vmheap and Vmpool: any block can be freed by any thread. */
static void* work_general(void* arg)
{
    Worker_t* w = arg;
    for (long op = 0; op < w->ops; ++op) {
        unsigned r = (unsigned)(rnd(&w->rng) % 100);
        if (w->nlive == 0 || (r < 45 && w->nlive < w->cap))
            op_alloc(w);
        else if (r < 70 || (r < 85 && w->kind == POOL))
            op_free(w, (int)(rnd(&w->rng) % (unsigned)w->nlive));
        else if (r < 85)
            op_resize(w, (int)(rnd(&w->rng) % (unsigned)w->nlive));
        else if (r < 93)
            op_give(w, (int)(rnd(&w->rng) % (unsigned)w->nlive));
        else
            op_take(w);
        if (op % 4096 == 0)
            CHECK(vmdbcheck(w->vm) == 0, "thread %d: region damaged mid-run", w->id);
    }
    return NULL;
}

/* Vmlast: a thread's newest block can be freed or resized only while no
 * other thread has allocated since; a refusal must leave the block alone. */
static void* work_last(void* arg)
{
    Worker_t* w = arg;
    for (long op = 0; op < w->ops; ++op) {
        unsigned r = (unsigned)(rnd(&w->rng) % 100);
        if (w->nlive == 0 || (r < 60 && w->nlive < w->cap)) {
            op_alloc(w);
            continue;
        }
        Blk_t* b = &w->live[w->nlive - 1];
        CHECK(good(b), "thread %d: Vmlast block overwritten", w->id);
        if (r < 85) {
            if (vmfree(w->vm, b->p) == 0)
                w->nlive -= 1;
        } else {
            size_t nsz = pick_size(w);
            char* p = vmresize(w->vm, b->p, nsz, VM_RSCOPY);
            if (p) {
                b->p = p;
                size_t keep = b->size < nsz ? b->size : nsz;
                CHECK(good_prefix(b, keep - 8), "thread %d: Vmlast resize lost content", w->id);
                b->size = nsz;
                stamp(b);
            } else
                CHECK(good(b), "thread %d: a refused Vmlast resize changed the block", w->id);
        }
    }
    return NULL;
}

/* Run NTHREADS workers on vm; then check the counts and free everything. */
static void run_shared(Vmalloc_t* vm, int kind, long ops, const char* name)
{
    Vmstat_t st0, st;
    CHECK(vmstat(vm, &st0) == 0, "%s: vmstat", name);
    Xchg_t x;
    memset(&x, 0, sizeof x);
    pthread_mutex_init(&x.lock, NULL);
    Worker_t w[NTHREADS];
    pthread_t tid[NTHREADS];
    for (int i = 0; i < NTHREADS; ++i) {
        memset(&w[i], 0, sizeof w[i]);
        w[i].vm = vm;
        w[i].kind = kind;
        w[i].id = i;
        w[i].ops = ops;
        w[i].rng = 0x9E3779B97F4A7C15ull * (uint64_t)(i + 1) + (uint64_t)kind;
        w[i].x = &x;
        w[i].cap = kind == LAST ? (int)ops : LIVE;
        w[i].live = vmalloc(Vmheap, sizeof(Blk_t) * (size_t)w[i].cap);
        CHECK(w[i].live, "%s: no memory for the test's tables", name);
    }
    /* The tables themselves are Vmheap blocks: count them in the baseline. */
    if (vm == Vmheap)
        CHECK(vmstat(vm, &st0) == 0, "%s: vmstat", name);
    for (int i = 0; i < NTHREADS; ++i)
        CHECK(pthread_create(&tid[i], NULL, kind == LAST ? work_last : work_general, &w[i]) == 0,
              "%s: pthread_create", name);
    for (int i = 0; i < NTHREADS; ++i)
        pthread_join(tid[i], NULL);

    size_t held = (size_t)x.n, bytes = 0;
    for (int i = 0; i < NTHREADS; ++i) {
        held += (size_t)w[i].nlive;
        for (int j = 0; j < w[i].nlive; ++j)
            bytes += kind == LAST ? 0 : (size_t)vmsize(vm, w[i].live[j].p);
    }
    for (int j = 0; j < x.n; ++j)
        bytes += kind == LAST ? 0 : (size_t)vmsize(vm, x.slot[j].p);
    CHECK(vmdbcheck(vm) == 0, "%s: region damaged after the threads", name);
    CHECK(vmstat(vm, &st) == 0, "%s: vmstat", name);
    CHECK(st.n_busy == st0.n_busy + held, "%s: n_busy %zu, but the threads hold %zu (+%zu before)",
          name, st.n_busy, held, st0.n_busy);
    if (kind != LAST)
        CHECK(st.s_busy == st0.s_busy + bytes, "%s: s_busy %zu, but the blocks held sum to %zu",
              name, st.s_busy - st0.s_busy, bytes);

    /* Every surviving block is intact; free them (Vmlast: all at once). */
    for (int i = 0; i < NTHREADS; ++i)
        for (int j = 0; j < w[i].nlive; ++j) {
            CHECK(good(&w[i].live[j]), "%s: a surviving block is overwritten", name);
            if (kind != LAST)
                CHECK(vmfree(vm, w[i].live[j].p) == 0, "%s: vmfree of a survivor", name);
        }
    for (int j = 0; j < x.n; ++j) {
        CHECK(good(&x.slot[j]), "%s: a block in transit is overwritten", name);
        if (kind != LAST)
            CHECK(vmfree(vm, x.slot[j].p) == 0, "%s: vmfree of a block in transit", name);
    }
    if (kind == LAST)
        CHECK(vmclear(vm) == 0, "%s: vmclear", name);
    CHECK(vmstat(vm, &st) == 0 && st.n_busy == (kind == LAST ? 0 : st0.n_busy),
          "%s: %zu blocks busy after freeing everything", name, st.n_busy);
    CHECK(vmdbcheck(vm) == 0, "%s: region damaged after the frees", name);
    for (int i = 0; i < NTHREADS; ++i)
        vmfree(Vmheap, w[i].live);
    pthread_mutex_destroy(&x.lock);
}

/* ---- regions opened and closed while others look addresses up ------------- */

typedef struct {
    int id;
    int rounds;
    Vmalloc_t* keep;  /* a region that stays open through the run */
    char* keepblk;
    int walker;
} Churn_t;

static void* churn(void* arg)
{
    Churn_t* c = arg;
    Vmethod_t* meths[3] = {Vmbest, Vmpool, Vmlast};
    Vmdisc_t* discs[2] = {Vmdcsystem, Vmdcheap};
    int local = 0;
    char* mine = vmalloc(Vmheap, 100);
    CHECK(mine, "churn %d: vmalloc(Vmheap)", c->id);
    for (int r = 0; r < c->rounds; ++r) {
        Vmalloc_t* vm = vmopen(discs[(r + c->id) % 2], meths[(r / 2 + c->id) % 3], 0);
        CHECK(vm, "churn %d: vmopen", c->id);
        char* b[20];
        for (int i = 0; i < 20; ++i) {
            b[i] = vmalloc(vm, 48);
            CHECK(b[i], "churn %d: vmalloc", c->id);
            memset(b[i], c->id, 48);
        }
        for (int i = 0; i < 20; ++i)
            CHECK(vmregion(b[i]) == vm && vmregion(b[i] + 47) == vm,
                  "churn %d: vmregion of a block of an open region is %p, not %p", c->id,
                  (void*)vmregion(b[i]), (void*)vm);
        CHECK(vmregion(&local) == NULL, "churn %d: vmregion of the stack", c->id);
        CHECK(vmregion(mine) == Vmheap, "churn %d: vmregion of a Vmheap block", c->id);
        CHECK(vmregion(c->keepblk) == c->keep, "churn %d: vmregion of the long-lived region",
              c->id);
        if (c->walker && r % 8 == 0) {
            size_t n = 0;
            CHECK(vmwalk(NULL, t_count_blocks, &n) == 0 && n >= 3, "churn %d: vmwalk(NULL) saw %zu",
                  c->id, n);
        }
        for (int i = 0; i < 20; ++i)
            CHECK(b[i][0] == (char)c->id && b[i][47] == (char)c->id,
                  "churn %d: a block changed under us", c->id);
        CHECK(vmdbcheck(vm) == 0, "churn %d: region damaged", c->id);
        CHECK(vmclose(vm) == 0, "churn %d: vmclose", c->id);
    }
    vmfree(Vmheap, mine);
    return NULL;
}

static void run_churn(int rounds)
{
    Vmalloc_t* keep = vmopen(Vmdcsystem, Vmbest, 0);
    CHECK(keep, "vmopen");
    char* keepblk = vmalloc(keep, 1000);
    CHECK(keepblk, "vmalloc");
    Churn_t c[NTHREADS];
    pthread_t tid[NTHREADS];
    for (int i = 0; i < NTHREADS; ++i) {
        c[i] = (Churn_t){i, rounds, keep, keepblk, i == 0};
        CHECK(pthread_create(&tid[i], NULL, churn, &c[i]) == 0, "pthread_create");
    }
    for (int i = 0; i < NTHREADS; ++i)
        pthread_join(tid[i], NULL);
    CHECK(vmregion(keepblk) == keep && vmdbcheck(keep) == 0, "the long-lived region");
    CHECK(vmclose(keep) == 0, "vmclose");
    CHECK(vmdbcheck(Vmheap) == 0, "Vmheap damaged by the churn");
}

/* ---- walks while the blocks' users write them --------------------------- */

/* A walk (and vmaddr) must tell a page's free blocks from its busy ones without reading a
 * busy block, whose user may be writing it from any thread. The walking
 * thread reads the blocks of the pages no thread owns, and busy blocks get
 * there in two ways: their allocating thread ended (its pages are then held
 * by the region), or the locked path handed them out (it serves from held
 * pages; a VMFL note sends a call there, as does a thread whose first call
 * finds the thread caches' lock busy, which is how the churn above once
 * raced). Under ThreadSanitizer a read of such a block is reported as a race
 * with its writer; in every build each busy block is visited once. */

typedef struct {
    Vmalloc_t* vm;
    char* held[4];  /* allocated by a thread that has ended */
    char* locked;   /* allocated by the scribbler on the locked path */
    int ready;      /* under lock */
    int stop;       /* atomic: the walks are over */
    pthread_mutex_t lock;
    pthread_cond_t cond;
} Scribe_t;

static void* alloc_and_end(void* arg)
{
    Scribe_t* s = arg;
    for (int i = 0; i < 4; ++i) {
        s->held[i] = vmalloc(s->vm, 48);
        CHECK(s->held[i], "alloc_and_end: vmalloc");
    }
    return NULL;
}

/* Word by word: a memset of a constant size is expanded inline, and
 * ThreadSanitizer's instrumentation does not see those stores. */
static void scrawl(char* p, unsigned n)
{
    uint64_t* w = (uint64_t*)(void*)p;
    for (int i = 0; i < 6; ++i)
        w[i] = n * 0x0101010101010101u;
}

/* Writes every busy block of the region after it has told the walker that
 * they exist: nothing orders these writes with the walks. */
static void* scribble(void* arg)
{
    Scribe_t* s = arg;
    _vmflinfo(__FILE__, __LINE__); /* the note sends this call down the locked path */
    char* mine = vmalloc(s->vm, 48);
    CHECK(mine, "scribble: vmalloc");
    pthread_mutex_lock(&s->lock);
    s->locked = mine;
    s->ready = 1;
    pthread_cond_signal(&s->cond);
    pthread_mutex_unlock(&s->lock);
    unsigned n = 0;
    do {
        scrawl(mine, n);
        for (int i = 0; i < 4; ++i)
            scrawl(s->held[i], n);
        ++n;
        sched_yield();
    } while (!__atomic_load_n(&s->stop, __ATOMIC_ACQUIRE));
    return NULL;
}

static void run_walk_while_writing(void)
{
    Scribe_t s = {.vm = vmopen(Vmdcsystem, Vmbest, 0)};
    CHECK(s.vm, "vmopen");
    pthread_mutex_init(&s.lock, NULL);
    pthread_cond_init(&s.cond, NULL);
    pthread_t t;
    CHECK(pthread_create(&t, NULL, alloc_and_end, &s) == 0, "pthread_create");
    pthread_join(t, NULL);
    CHECK(pthread_create(&t, NULL, scribble, &s) == 0, "pthread_create");
    pthread_mutex_lock(&s.lock);
    while (!s.ready)
        pthread_cond_wait(&s.cond, &s.lock);
    pthread_mutex_unlock(&s.lock);
    for (int i = 0; i < 200; ++i) {
        size_t n = 0;
        CHECK(vmwalk(s.vm, t_count_blocks, &n) == 0 && n == 5,
              "a walk while the blocks are written saw %zu busy blocks, not 5", n);
        n = 0;
        CHECK(vmwalk(NULL, t_count_blocks, &n) == 0 && n >= 5, "vmwalk(NULL) saw %zu", n);
        /* vmaddr answers for the same blocks without reading them either. */
        for (int j = 0; j < 4; ++j)
            CHECK(vmaddr(s.vm, s.held[j] + 40) == 40, "vmaddr in a held page's written block");
        CHECK(vmaddr(s.vm, s.locked + 8) == 8, "vmaddr in the locked path's written block");
    }
    __atomic_store_n(&s.stop, 1, __ATOMIC_RELEASE);
    pthread_join(t, NULL);
    CHECK(vmdbcheck(s.vm) == 0, "region damaged");
    for (int i = 0; i < 4; ++i)
        CHECK(vmfree(s.vm, s.held[i]) == 0, "vmfree of a held page's block");
    CHECK(vmfree(s.vm, s.locked) == 0, "vmfree of the locked path's block");
    size_t n = 0;
    CHECK(vmwalk(s.vm, t_count_blocks, &n) == 0 && n == 0, "%zu blocks left", n);
    CHECK(vmclose(s.vm) == 0, "vmclose");
    pthread_cond_destroy(&s.cond);
    pthread_mutex_destroy(&s.lock);
}

/* ---- an idle owner's pages --------------------------------------------- */

enum { IDLE_N = 3000, IDLE_SMALL = 100, IDLE_LARGE = 3000 };

typedef struct {
    Vmalloc_t* vm;
    char* blk[IDLE_N];
    int phase; /* 1: built; 2: freed by the other thread; 3: rebuilt */
    pthread_mutex_t lock;
    pthread_cond_t cond;
} Idle_t;

static void idle_wait(Idle_t* s, int phase)
{
    pthread_mutex_lock(&s->lock);
    while (s->phase < phase)
        pthread_cond_wait(&s->cond, &s->lock);
    pthread_mutex_unlock(&s->lock);
}

static void idle_set(Idle_t* s, int phase)
{
    pthread_mutex_lock(&s->lock);
    s->phase = phase;
    pthread_cond_broadcast(&s->cond);
    pthread_mutex_unlock(&s->lock);
}

static size_t idle_size(int i) { return i % 8 ? IDLE_SMALL : IDLE_LARGE; }

/* Builds the blocks, waits (idle: no call into the region) while the main
 * thread frees them, then builds them again and frees half itself. */
static void* idle_owner(void* arg)
{
    Idle_t* s = arg;
    for (int i = 0; i < IDLE_N; ++i) {
        s->blk[i] = vmalloc(s->vm, idle_size(i));
        CHECK(s->blk[i], "idle owner: vmalloc");
        memset(s->blk[i], i & 0xff, idle_size(i));
    }
    idle_set(s, 1);
    idle_wait(s, 2);
    CHECK(vmdbcheck(s->vm) == 0, "the owner's check after its pages were taken");
    for (int i = 0; i < IDLE_N; ++i) {
        s->blk[i] = vmalloc(s->vm, idle_size(i));
        CHECK(s->blk[i], "idle owner: vmalloc again");
        memset(s->blk[i], i & 0xff, idle_size(i));
    }
    for (int i = 0; i < IDLE_N; i += 2) {
        CHECK(vmfree(s->vm, s->blk[i]) == 0, "idle owner: vmfree");
        s->blk[i] = NULL;
    }
    CHECK(vmdbcheck(s->vm) == 0, "the owner's check after it allocated again");
    return NULL;
}

static void run_idle_owner(void)
{
    Idle_t* s = calloc(1, sizeof *s);
    CHECK(s, "calloc");
    s->vm = vmopen(Vmdcsystem, Vmbest, 0);
    CHECK(s->vm, "vmopen");
    pthread_mutex_init(&s->lock, NULL);
    pthread_cond_init(&s->cond, NULL);
    pthread_t t;
    CHECK(pthread_create(&t, NULL, idle_owner, s) == 0, "pthread_create");
    idle_wait(s, 1);
    Vmstat_t st;
    CHECK(vmstat(s->vm, &st) == 0, "vmstat");
    size_t built = st.s_busy;
    for (int i = 0; i < IDLE_N; ++i) {
        for (size_t j = 0; j < idle_size(i); j += 97)
            CHECK((unsigned char)s->blk[i][j] == (i & 0xff), "block %d changed", i);
        CHECK(vmfree(s->vm, s->blk[i]) == 0, "vmfree of the idle owner's block %d", i);
    }
    /* Every page of the owner but the first of each queue (one small, one
     * large) has no block out: it is the region's again, and vmstat counts
     * at most those two pages' blocks, whose frees wait for the owner. */
    CHECK(vmstat(s->vm, &st) == 0, "vmstat");
    CHECK(st.s_busy <= (32 << 10) + (64 << 10), "%zu busy bytes of %zu left with the idle owner",
          st.s_busy, built);
    CHECK(vmdbcheck(s->vm) == 0, "region damaged");
    idle_set(s, 2);
    pthread_join(t, NULL);
    CHECK(vmdbcheck(s->vm) == 0, "region damaged after the owner ended");
    size_t left = 0;
    for (int i = 1; i < IDLE_N; i += 2)
        left += vmsize(s->vm, s->blk[i]) > 0;
    CHECK(left == IDLE_N / 2, "%zu of the owner's last blocks are busy", left);
    CHECK(vmstat(s->vm, &st) == 0 && st.n_busy == IDLE_N / 2, "vmstat counts %zu busy", st.n_busy);
    for (int i = 1; i < IDLE_N; i += 2)
        CHECK(vmfree(s->vm, s->blk[i]) == 0, "vmfree after the owner ended");
    CHECK(vmstat(s->vm, &st) == 0 && st.n_busy == 0, "vmstat counts %zu busy", st.n_busy);
    CHECK(vmclose(s->vm) == 0, "vmclose");
    pthread_cond_destroy(&s->cond);
    pthread_mutex_destroy(&s->lock);
    free(s);
}

int main(void)
{
    Vmalloc_t* vm = vmopen(Vmdcsystem, Vmbest, 0);
    CHECK(vm, "vmopen best");
    run_shared(vm, BEST, 50000, "shared Vmbest");
    CHECK(vmclose(vm) == 0, "vmclose");

    run_shared(Vmheap, BEST, 30000, "Vmheap");

    vm = vmopen(Vmdcheap, Vmbest, 0); /* two regions' locks on every new segment */
    CHECK(vm, "vmopen best over Vmdcheap");
    run_shared(vm, BEST, 10000, "Vmbest over Vmdcheap");
    CHECK(vmclose(vm) == 0, "vmclose");

    vm = vmopen(Vmdcsystem, Vmpool, 0);
    CHECK(vm, "vmopen pool");
    CHECK(vmfree(vm, vmalloc(vm, 64)) == 0, "pool: fixing the size");
    run_shared(vm, POOL, 20000, "shared Vmpool");
    CHECK(vmclose(vm) == 0, "vmclose");

    vm = vmopen(Vmdcsystem, Vmlast, 0);
    CHECK(vm, "vmopen last");
    run_shared(vm, LAST, 10000, "shared Vmlast");
    CHECK(vmclose(vm) == 0, "vmclose");

    run_churn(200);
    run_walk_while_writing();
    run_idle_owner();
    return T_DONE();
}
