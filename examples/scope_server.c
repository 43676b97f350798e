/*
 * scope_server.c — librcd's web-server pattern with scoped heaps: one sub-heap
 * per request, so whatever a request allocates is gone when it is answered,
 * and memory stays flat however many requests come.
 *
 * A "server" answers 100,000 synthetic requests ("GET /name?k=v" and
 * "PUT /name?k=v"). Each request runs in VM_SUBHEAP: it is split into parts
 * (vmnew), a helper builds the answer in a sub-heap of its own and escapes
 * only the result to the request's heap, and the answer is "sent". The
 * server's state — a small key/value table — is a structure that carries its
 * own heap (vmheap_open in VM_GLOBAL); a PUT updates it inside a transaction
 * (VM_TXN in VM_SWITCH(table heap)), which commits when the value is valid
 * and aborts, leaving the table as it was, when it is not. At the end the
 * program prints the table and the heap figures: the request heaps hold
 * nothing, the table's heap only the table.
 */
#include <vmalloc.h>

#include <stdio.h>
#include <string.h>

#define REQUESTS 100000
#define KEYS 17 /* the six names hash apart */

typedef struct {
    Vmalloc_t* heap; /* the owner carries its heap */
    char* key[KEYS];
    char* value[KEYS];
} Table;

/* Copy n bytes of s into a new string of the current heap. */
static char* str_n(const char* s, size_t n)
{
    char* r = vmnew(n + 1);
    memcpy(r, s, n);
    r[n] = 0;
    return r;
}

/* The answer to one request, in the caller's heap: it is built in a sub-heap
 * and only the result escapes (librcd's "return through escape"). */
static char* answer(const char* verb, const char* key, const char* value)
{
    char* out = NULL;
    VM_SUBHEAP {
        char* upper = str_n(key, strlen(key)); /* temporary: freed on leaving */
        for (char* p = upper; *p; ++p)
            *p = (char)(*p >= 'a' && *p <= 'z' ? *p - 32 : *p);
        char* line = vmnew(128);
        snprintf(line, 128, "200 %s %s=%s", verb, upper, value ? value : "-");
        out = vmescape(line);
    }
    return out;
}

static Table* table_new(void)
{
    Table* t = NULL;
    VM_GLOBAL { /* lives for the whole process */
        Vmalloc_t* heap = vmheap_open();
        VM_SWITCH(heap) {
            t = vmnew(sizeof *t);
            memset(t, 0, sizeof *t);
            t->heap = heap;
        }
    }
    return t;
}

static int table_slot(const char* key)
{
    unsigned sum = 0;
    while (*key)
        sum += (unsigned char)*key++;
    return (int)(sum % KEYS);
}

/* Set key to value in the table, all or nothing: a value with a digit is
 * refused after the new strings were already made in the table's heap. */
static int table_put(Table* t, const char* key, const char* value)
{
    int ok = 0;
    VM_SWITCH(t->heap) {
        VM_TXN(txn) {
            int slot = table_slot(key);
            char* k = str_n(key, strlen(key));
            char* v = str_n(value, strlen(value));
            if (strpbrk(v, "0123456789")) {
                vmtxn_abort(txn); /* k and v go; the table is untouched */
                break;
            }
            if (t->key[slot]) {
                vmfree(t->heap, t->key[slot]);
                vmfree(t->heap, t->value[slot]);
            }
            t->key[slot] = k; /* commit merges k and v into the table's heap */
            t->value[slot] = v;
            ok = 1;
        }
    }
    return ok;
}

static const char* table_get(const Table* t, const char* key)
{
    int slot = table_slot(key);
    return t->key[slot] && strcmp(t->key[slot], key) == 0 ? t->value[slot] : NULL;
}

int main(void)
{
    static const char* names[] = {"alpha", "beta", "gamma", "delta", "epsilon", "zeta"};
    static const char* colours[] = {"red", "green", "blue", "cyan", "amber"};
    Table* table = table_new();
    Vmalloc_t* idle = vmcurrent();
    unsigned long sent = 0, refused = 0, bytes = 0;
    for (int i = 0; i < REQUESTS; ++i) {
        char request[64];
        snprintf(request, sizeof request, "%s /%s?v=%s%s", i % 2 ? "GET" : "PUT", names[(i / 2) % 6],
                 colours[i % 5], i % 7 ? "" : "7");
        VM_SUBHEAP { /* one sub-heap per request */
            char* sp = strchr(request, ' ');
            char* q = strchr(request, '?');
            char* verb = str_n(request, (size_t)(sp - request));
            char* key = str_n(sp + 2, (size_t)(q - sp - 2));
            char* value = str_n(q + 3, strlen(q + 3));
            if (strcmp(verb, "PUT") == 0) {
                if (!table_put(table, key, value)) {
                    refused++;
                    continue; /* leaves the request's heap too */
                }
            }
            char* reply = answer(verb, key, table_get(table, key));
            bytes += strlen(reply);
            sent++;
        }
    }
    Vmstat_t cur, tab;
    vmstat(idle, &cur);
    vmstat(table->heap, &tab);
    printf("%lu answers (%lu bytes), %lu refused PUTs\n", sent, bytes, refused);
    for (int k = 0; k < KEYS; ++k)
        if (table->key[k])
            printf("  %s = %s\n", table->key[k], table->value[k]);
    printf("after %d requests: the server's heap holds %zu blocks; the table's heap %zu blocks "
           "(%zu bytes), arena %zu bytes\n",
           REQUESTS, cur.n_busy, tab.n_busy, tab.s_busy, tab.extent);
    int ok = sent + refused == REQUESTS && vmcurrent() == idle && vmdbcheck(table->heap) == 0 &&
             tab.n_busy <= 1 + 2 * KEYS;
    return ok ? 0 : 1;
}
