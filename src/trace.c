/*
 * trace.c — trace lines in the paper's format (Figure 10):
 *     old:new:size:region:method:
 * an allocation is 0x0:NEW:size:..., a free OLD:0x0:size:... (the size of the
 * freed block), a resize OLD:NEW:newsize:... . One write() per line, so lines
 * from several threads never interleave, and no allocation while formatting:
 * the trace can follow the allocator that serves printf itself.
 *
 * Regions opened with VM_TRACE (or given it by vmset) write to the descriptor
 * set by vmtrace(); -1, the default, writes nothing.
 */
#include "vmhdr.h"

int vm_trace_fd = -1;

int vmtrace(int fd)
{
    return __atomic_exchange_n(&vm_trace_fd, fd, __ATOMIC_RELAXED);
}

static char* put_str(char* p, const char* s)
{
    while (*s)
        *p++ = *s++;
    return p;
}

static char* put_hex(char* p, uintptr_t v)
{
    char tmp[2 * sizeof v];
    int n = 0;
    do {
        tmp[n++] = "0123456789abcdef"[v & 0xf];
        v >>= 4;
    } while (v);
    *p++ = '0';
    *p++ = 'x';
    while (n)
        *p++ = tmp[--n];
    return p;
}

static char* put_dec(char* p, size_t v)
{
    char tmp[24];
    int n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    while (n)
        *p++ = tmp[--n];
    return p;
}

void vm_trace(Vmalloc_t* vm, const void* old, const void* new, size_t size)
{
    int fd = __atomic_load_n(&vm_trace_fd, __ATOMIC_RELAXED);
    if (fd < 0)
        return;
    char line[128], *p = line;
    p = put_hex(p, (uintptr_t)old);
    *p++ = ':';
    p = put_hex(p, (uintptr_t)new);
    *p++ = ':';
    p = put_dec(p, size);
    *p++ = ':';
    p = put_hex(p, (uintptr_t)vm);
    *p++ = ':';
    p = put_str(p, vm->meth->name);
    *p++ = ':';
    *p++ = '\n';
    (void)vm_os_write(fd, line, (size_t)(p - line));
}
