/* The device learner on an emulated Cortex-M4F (QEMU, -semihosting): reads the records of
 * learn_example.c from the host's stdin through semihosting and prints what learn_example
 * prints, then measurement lines starting with '#': the peak stack (painted at start) and
 * the SysTick ticks of every learning step (run QEMU with -icount shift=0: one instruction
 * is one nanosecond of virtual time, the ticks count the board's 25 MHz clock). */
#include <stdint.h>
#include "bnn_learn.h"

#define SYS_OPEN 0x01
#define SYS_WRITE0 0x04
#define SYS_READ 0x06
#define SYS_EXIT_EXTENDED 0x20
#define PAINT 0xC0FFEE11u

extern uint32_t __bss_end__, __stack_top;

static int semihost(int op, void *arg) {
    register int r0 __asm__("r0") = op;
    register void *r1 __asm__("r1") = arg;
    __asm volatile("bkpt 0xAB" : "+r"(r0) : "r"(r1) : "memory");
    return r0;
}

void semihost_exit(int code) {
    uint32_t block[2] = {0x20026u, (uint32_t)code}; /* ADP_Stopped_ApplicationExit */
    semihost(SYS_EXIT_EXTENDED, block);
    for (;;) {
    }
}

static void put(const char *text) { semihost(SYS_WRITE0, (void *)text); }

static char *decimal(char *end, uint64_t value, int negative) {
    *--end = 0;
    do {
        *--end = (char)('0' + value % 10);
        value /= 10;
    } while (value > 0);
    if (negative) *--end = '-';
    return end;
}

static void put_int(int64_t value) {
    static char buffer[24];
    put(decimal(buffer + sizeof buffer, value < 0 ? (uint64_t)-value : (uint64_t)value,
                value < 0));
}

static void put_hex(uint64_t value) {
    static char buffer[17];
    int i;
    for (i = 15; i >= 0; --i, value >>= 4) buffer[i] = "0123456789abcdef"[value & 15];
    buffer[16] = 0;
    put(buffer);
}

static void put_value(const char *name, int32_t value, int first, int last) {
    if (first) put(name);
    put(" ");
    put_int(value);
    if (last) put("\n");
}

static int read_all(int handle, uint8_t *buffer, int size) {
    uint32_t block[3];
    block[0] = (uint32_t)handle;
    block[1] = (uint32_t)(uintptr_t)buffer;
    block[2] = (uint32_t)size;
    return semihost(SYS_READ, block) == 0; /* returns the bytes not read */
}

#define SYST_CSR (*(volatile uint32_t *)0xE000E010)
#define SYST_RVR (*(volatile uint32_t *)0xE000E014)
#define SYST_CVR (*(volatile uint32_t *)0xE000E018)

static uint32_t ticks_since(uint32_t start) { return (start - SYST_CVR) & 0xFFFFFFu; }

/* 2 * n instructions (subs, bne), to tie ticks to instructions */
static void spin(uint32_t n) {
    __asm volatile("1: subs %0, %0, #1\n bne 1b" : "+r"(n) : : "cc");
}

int main(void) {
    static uint8_t record[2 + BNN_INPUTS];
    uint32_t block[3], *word, sp;
    uint64_t learn_ticks = 0, learn_steps = 0, max_ticks = 0, t0;
    int handle;
    /* paint the free stack below this frame */
    __asm volatile("mov %0, sp" : "=r"(sp));
    for (word = &__bss_end__; word < (uint32_t *)(sp - 64); ++word) *word = PAINT;
    SYST_RVR = 0xFFFFFFu;
    SYST_CVR = 0;
    SYST_CSR = 5u; /* the processor clock, no interrupt */
    block[0] = (uint32_t)(uintptr_t)":tt";
    block[1] = 0; /* "r" */
    block[2] = 3;
    handle = semihost(SYS_OPEN, block);
    while (read_all(handle, record, (int)sizeof record)) {
        int kind = record[0], label = record[1];
        if (kind == 1 && label < BNN_CLASSES) {
            uint32_t start = SYST_CVR, spent;
            bnn_learn(record + 2, label);
            spent = ticks_since(start);
            learn_ticks += spent;
            learn_steps += 1;
            if (spent > max_ticks) max_ticks = spent;
        } else if (kind == 0) {
            put_int(bnn_learn_predict(record + 2));
            put("\n");
        } else if (kind == 2) {
            put("state ");
            put_hex(bnn_learn_state_hash());
            put("\n");
        } else if (kind == 3) {
            bnn_learn_state_each(put_value);
        } else {
            put("# a record's kind or label is out of range\n");
            return 1;
        }
    }
    for (word = &__bss_end__; word < &__stack_top && *word == PAINT; ++word) {
    }
    put("# stack_peak_bytes ");
    put_int((int64_t)((uintptr_t)&__stack_top - (uintptr_t)word));
    put("\n# learn_steps ");
    put_int((int64_t)learn_steps);
    put("\n# learn_ticks ");
    put_int((int64_t)learn_ticks);
    put("\n# learn_ticks_max ");
    put_int((int64_t)max_ticks);
    t0 = SYST_CVR;
    spin(1000000u);
    put("\n# calibration_ticks_per_2000000_instructions ");
    put_int((int64_t)ticks_since((uint32_t)t0));
    put("\n");
    return 0;
}
