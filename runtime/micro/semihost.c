/* Semihosting calls (see semihost.h). Output is buffered per call to keep the number of traps small. */
#include "semihost.h"

static inline int sh_call(int op, void *arg) {
    register int r0 __asm__("r0") = op;
    register void *r1 __asm__("r1") = arg;
    __asm__ volatile("bkpt 0xab" : "+r"(r0) : "r"(r1) : "memory");
    return r0;
}

void sh_puts(const char *s) { sh_call(0x04, (void *)s); }

void sh_put_i64(int64_t v) {
    char buf[24];
    int i = 23;
    uint64_t u = v < 0 ? (uint64_t)(-(v + 1)) + 1u : (uint64_t)v;
    buf[i] = 0;
    do { buf[--i] = (char)('0' + (int)(u % 10u)); u /= 10u; } while (u);
    if (v < 0) buf[--i] = '-';
    sh_puts(&buf[i]);
}

void sh_put_hex(uint32_t v) {
    char buf[11] = "0x";
    for (int i = 0; i < 8; i++) buf[2 + i] = "0123456789abcdef"[(v >> (28 - 4 * i)) & 15u];
    buf[10] = 0;
    sh_puts(buf);
}

int sh_cmdline(char *buf, uint32_t size) {
    uint32_t block[2] = {(uint32_t)buf, size};
    return sh_call(0x15, block);
}

void sh_exit(int status) {
    uint32_t block[2] = {0x20026u /* ADP_Stopped_ApplicationExit */, (uint32_t)status};
    sh_call(0x20, block);
    for (;;) {}
}
