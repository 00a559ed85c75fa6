/* Semihosting (ARM "bkpt 0xab"): console output, the command line, and exit with a status.
 * QEMU's -semihosting-config enable=on,target=native,arg=... passes argv; on a real board a debugger
 * (OpenOCD `arm semihosting enable`, pyOCD) serves the same calls. */
#ifndef EDGESLM_SEMIHOST_H
#define EDGESLM_SEMIHOST_H
#include <stdint.h>

void sh_puts(const char *s);                 /* SYS_WRITE0: a NUL-terminated string */
void sh_put_i64(int64_t v);                  /* decimal */
void sh_put_hex(uint32_t v);                 /* 0x%08x */
int sh_cmdline(char *buf, uint32_t size);    /* SYS_GET_CMDLINE: 0 on success */
void sh_exit(int status) __attribute__((noreturn));   /* SYS_EXIT_EXTENDED: QEMU exits with status */

#endif
