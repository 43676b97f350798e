/* synth_smallobj THREADS ROUNDS — many small objects (issue 4).
 *
 * Each of THREADS threads does ROUNDS rounds of: build a binary search tree
 * of NODES nodes (24..64 bytes, random keys) and a linked list of 16-byte
 * cells, free every other list cell, walk what is left, then destroy both.
 * Each thread has its own generator; the checksum sums the threads' sums, so
 * the output depends only on the arguments. Prints one line:
 * "smallobj THREADS ROUNDS CHECKSUM". */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

enum { NODES = 5000 };

struct node { struct node *l, *r; uint64_t key; };  /* 24 bytes + payload */
struct cell { struct cell *next; uint64_t v; };      /* 16 bytes */

struct job { uint64_t rng; long rounds; uint64_t sum; };

static uint64_t next(uint64_t *s)
{
    uint64_t x = *s;
    x ^= x << 13; x ^= x >> 7; x ^= x << 17;
    return *s = x;
}

static uint64_t walk(struct node *n, uint64_t depth)
{
    uint64_t s = 0;
    while (n) {   /* recursion on the left, loop on the right */
        s += walk(n->l, depth + 1) + (n->key ^ depth);
        struct node *r = n->r;
        n = r;
        depth++;
    }
    return s;
}

static void destroy(struct node *n)
{
    while (n) {
        destroy(n->l);
        struct node *r = n->r;
        free(n);
        n = r;
    }
}

static void *run(void *arg)
{
    struct job *j = arg;
    for (long k = 0; k < j->rounds; ++k) {
        struct node *root = NULL;
        struct cell *list = NULL;
        for (int i = 0; i < NODES; ++i) {
            uint64_t key = next(&j->rng);
            struct node *n = malloc(sizeof *n + (key >> 60) * 40 / 16); /* 24..61 */
            struct cell *c = malloc(sizeof *c);
            if (!n || !c) abort();
            n->l = n->r = NULL;
            n->key = key;
            struct node **at = &root;
            while (*at) at = key < (*at)->key ? &(*at)->l : &(*at)->r;
            *at = n;
            c->v = key & 0xffff;
            c->next = list;
            list = c;
        }
        for (struct cell *c = list; c && c->next; c = c->next) {   /* every other */
            struct cell *d = c->next;
            c->next = d->next;
            free(d);
        }
        j->sum += walk(root, 0);
        while (list) {
            struct cell *c = list;
            j->sum += c->v;
            list = c->next;
            free(c);
        }
        destroy(root);
    }
    return NULL;
}

int main(int argc, char **argv)
{
    int threads = argc > 1 ? atoi(argv[1]) : 2;
    long rounds = argc > 2 ? atol(argv[2]) : 100;
    if (threads < 1 || threads > 256 || rounds < 1) {
        fprintf(stderr, "usage: synth_smallobj THREADS(1..256) ROUNDS(>0 per thread)\n");
        return 2;
    }
    struct job *j = calloc((size_t)threads, sizeof *j);
    pthread_t *tid = malloc((size_t)threads * sizeof *tid);
    if (!j || !tid) return 1;
    for (int t = 0; t < threads; ++t) {
        j[t].rng = 0x9e3779b97f4a7c15ull ^ (uint64_t)(t + 1) * 0xbf58476d1ce4e5b9ull;
        j[t].rounds = rounds;
        if (pthread_create(&tid[t], NULL, run, &j[t])) return 1;
    }
    uint64_t sum = 0;
    for (int t = 0; t < threads; ++t) {
        pthread_join(tid[t], NULL);
        sum += j[t].sum;
    }
    free(tid);
    free(j);
    printf("smallobj %d %ld %llu\n", threads, rounds, (unsigned long long)sum);
    return 0;
}
