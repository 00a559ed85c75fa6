/* Board startup for Cortex-M (QEMU mps2-an386 / mps2-an500 / mps3-an547 and real boards alike).
 *
 * Steps of Reset_Handler: copy .data from flash -> zero .bss -> enable the FPU (CPACR) -> paint the
 * stack with a pattern (high-water mark at the end) -> start SysTick (instruction counter) -> main().
 * Faults print the faulting PC over semihosting and exit with status 3 instead of hanging.
 *
 * Instruction counting: under `qemu-system-arm -icount shift=N,sleep=off` SysTick (CPU clock source)
 * advances deterministically with retired instructions; instructions = ticks * (1e9 / f_systick) / 2^N.
 * On real silicon DWT->CYCCNT counts cycles (QEMU does not emulate it: it reads 0 there); startup enables it
 * and edgeslm_cycles() reads it, so the same firmware reports cycles on a board. */
#include <stdint.h>
#include "semihost.h"

extern uint32_t _sidata, _sdata, _edata, _sbss, _ebss, _sstack, _estack;
int main(void);
void Reset_Handler(void);
void Fault_Handler(void);
void SysTick_Handler(void);
static void Default_Handler(void) { sh_puts("FAULT unexpected interrupt\n"); sh_exit(3); }

#define STACK_PAINT 0x5AC4DEADu
#define SYST_CSR (*(volatile uint32_t *)0xE000E010u)
#define SYST_RVR (*(volatile uint32_t *)0xE000E014u)
#define SYST_CVR (*(volatile uint32_t *)0xE000E018u)
#define CPACR (*(volatile uint32_t *)0xE000ED88u)
#define DEMCR (*(volatile uint32_t *)0xE000EDFCu)
#define DWT_CTRL (*(volatile uint32_t *)0xE0001000u)
#define DWT_CYCCNT (*(volatile uint32_t *)0xE0001004u)
#define SYSTICK_RELOAD 0xFFFFFFu   /* 24-bit counter: one wrap interrupt every 2^24 ticks */

__attribute__((section(".vectors"), used)) void (*const edgeslm_vectors[16])(void) = {
    (void (*)(void))&_estack, Reset_Handler,
    Default_Handler,                      /* NMI */
    Fault_Handler, Fault_Handler, Fault_Handler, Fault_Handler,   /* HardFault, MemManage, BusFault, UsageFault */
    0, 0, 0, 0,
    Default_Handler,                      /* SVCall */
    Default_Handler, 0,
    Default_Handler,                      /* PendSV */
    SysTick_Handler,
};

static volatile uint32_t systick_wraps;
void SysTick_Handler(void) { systick_wraps++; }

/* 64-bit SysTick tick count (counts down from RVR; a wrap between reads is retried). */
uint64_t edgeslm_ticks(void) {
    uint32_t w1, v;
    do {
        w1 = systick_wraps;
        v = SYST_CVR;
    } while (w1 != systick_wraps);     /* the wrap interrupt fired between the two reads: read again */
    return (uint64_t)w1 * (SYSTICK_RELOAD + 1u) + (SYSTICK_RELOAD - v);
}

/* Core cycles (32-bit, wraps) from the DWT cycle counter; 0 under QEMU. */
uint32_t edgeslm_cycles(void) { return DWT_CYCCNT; }

uint32_t edgeslm_stack_used(void) {
    const uint32_t *p = &_sstack;
    while (p < &_estack && *p == STACK_PAINT) p++;
    return (uint32_t)((const uint8_t *)&_estack - (const uint8_t *)p);
}

__attribute__((naked)) void Fault_Handler(void) {
    /* r0 = the stacked exception frame (MSP or PSP); its word 6 is the faulting PC. */
    __asm__ volatile(
        "tst lr, #4\n"
        "ite eq\n"
        "mrseq r0, msp\n"
        "mrsne r0, psp\n"
        "b edgeslm_fault_report\n");
}

__attribute__((used, noreturn)) void edgeslm_fault_report(const uint32_t *frame) {
    uint32_t cfsr = *(volatile uint32_t *)0xE000ED28u;
    sh_puts("FAULT HardFault pc=");
    sh_put_hex(frame[6]);
    sh_puts(" lr=");
    sh_put_hex(frame[5]);
    sh_puts(" cfsr=");
    sh_put_hex(cfsr);
    sh_puts("\n");
    sh_exit(3);
}

void Reset_Handler(void) {
    uint32_t *src = &_sidata, *dst = &_sdata;
    while (dst < &_edata) *dst++ = *src++;
    for (dst = &_sbss; dst < &_ebss; ) *dst++ = 0;
#if defined(__ARM_FP)
    CPACR |= 0xFu << 20;                  /* CP10/CP11 full access */
    __asm__ volatile("dsb\nisb");
#endif
    /* paint the stack below the current frame (leave 64 bytes for this function) */
    uint32_t *sp;
    __asm__ volatile("mov %0, sp" : "=r"(sp));
    for (uint32_t *p = &_sstack; p < sp - 16; p++) *p = STACK_PAINT;
    DEMCR |= 1u << 24;                    /* TRCENA: enable DWT */
    DWT_CYCCNT = 0;
    DWT_CTRL |= 1u;                       /* CYCCNTENA */
    SYST_RVR = SYSTICK_RELOAD;
    SYST_CVR = 0;
    SYST_CSR = 0x7u;                      /* enable, interrupt on wrap, processor clock */
    sh_exit(main());
}
