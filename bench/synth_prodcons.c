/* synth_prodcons THREADS MESSAGES — producer/consumer (issue 4).
 *
 * THREADS producers and THREADS consumers share a bounded queue. Each
 * producer mallocs MESSAGES messages of 16..2048 bytes, fills them, and
 * pushes them; consumers check and free them, so every free is made by
 * another thread than the allocation. The checksum is a sum over messages,
 * so it does not depend on which consumer got which message. Prints one
 * line: "prodcons THREADS MESSAGES CHECKSUM". */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { QCAP = 256 };

struct msg {
    uint32_t len;      /* bytes of data[] */
    uint32_t seq;
    unsigned char data[];
};

static struct msg *queue[QCAP];
static int qhead, qcount;
static pthread_mutex_t qlock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t notfull = PTHREAD_COND_INITIALIZER;
static pthread_cond_t notempty = PTHREAD_COND_INITIALIZER;
static long per_producer;

struct consumer { uint64_t sum; int bad; };

static void push(struct msg *m)
{
    pthread_mutex_lock(&qlock);
    while (qcount == QCAP) pthread_cond_wait(&notfull, &qlock);
    queue[(qhead + qcount++) % QCAP] = m;
    pthread_cond_signal(&notempty);
    pthread_mutex_unlock(&qlock);
}

static struct msg *pop(void)
{
    pthread_mutex_lock(&qlock);
    while (qcount == 0) pthread_cond_wait(&notempty, &qlock);
    struct msg *m = queue[qhead];
    qhead = (qhead + 1) % QCAP;
    qcount--;
    pthread_cond_signal(&notfull);
    pthread_mutex_unlock(&qlock);
    return m;
}

static void *producer(void *arg)
{
    uint64_t s = 0x2545f4914f6cdd1dull * ((uint64_t)(uintptr_t)arg + 1);
    for (long k = 0; k < per_producer; ++k) {
        s ^= s << 13; s ^= s >> 7; s ^= s << 17;
        uint32_t len = (uint32_t)(16 + s % 2033);
        struct msg *m = malloc(sizeof *m + len);
        if (!m) abort();
        m->len = len;
        m->seq = (uint32_t)k;
        memset(m->data, (int)(len & 0xff), len);
        push(m);
    }
    return NULL;
}

static void *consumer(void *arg)
{
    struct consumer *c = arg;
    struct msg *m;
    while ((m = pop()) != NULL) {
        unsigned char v = (unsigned char)(m->len & 0xff);
        if (m->data[0] != v || m->data[m->len - 1] != v) c->bad = 1;
        c->sum += (uint64_t)m->len * 7919u + m->seq;
        free(m);
    }
    return NULL;
}

int main(int argc, char **argv)
{
    int threads = argc > 1 ? atoi(argv[1]) : 2;
    long messages = argc > 2 ? atol(argv[2]) : 1000000;
    if (threads < 1 || threads > 256 || messages < 1) {
        fprintf(stderr, "usage: synth_prodcons THREADS(1..256) MESSAGES(>0 per producer)\n");
        return 2;
    }
    per_producer = messages;
    pthread_t *tp = malloc(2 * (size_t)threads * sizeof *tp);
    struct consumer *cs = calloc((size_t)threads, sizeof *cs);
    if (!tp || !cs) return 1;
    for (int t = 0; t < threads; ++t) {
        if (pthread_create(&tp[t], NULL, producer, (void *)(uintptr_t)t)) return 1;
        if (pthread_create(&tp[threads + t], NULL, consumer, &cs[t])) return 1;
    }
    for (int t = 0; t < threads; ++t) pthread_join(tp[t], NULL);
    for (int t = 0; t < threads; ++t) push(NULL);   /* one stop per consumer */
    uint64_t sum = 0;
    int bad = 0;
    for (int t = 0; t < threads; ++t) {
        pthread_join(tp[threads + t], NULL);
        sum += cs[t].sum;
        bad |= cs[t].bad;
    }
    free(tp);
    free(cs);
    if (bad) { fprintf(stderr, "synth_prodcons: corrupted message\n"); return 1; }
    printf("prodcons %d %ld %llu\n", threads, messages, (unsigned long long)sum);
    return 0;
}
