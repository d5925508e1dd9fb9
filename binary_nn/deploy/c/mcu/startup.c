/* Reset for a Cortex-M4F with no C library: copy .data, zero .bss, enable the FPU, run main,
 * leave through semihosting. The vector table holds the stack top and the reset handler. */
#include <stddef.h>
#include <stdint.h>

extern uint32_t __etext, __data_start__, __data_end__, __bss_start__, __bss_end__, __stack_top;
extern int main(void);
void semihost_exit(int code);

void *memset(void *dst, int value, size_t n) {
    unsigned char *d = (unsigned char *)dst;
    while (n-- > 0) *d++ = (unsigned char)value;
    return dst;
}

void *memcpy(void *dst, const void *src, size_t n) {
    unsigned char *d = (unsigned char *)dst;
    const unsigned char *s = (const unsigned char *)src;
    while (n-- > 0) *d++ = *s++;
    return dst;
}

void Reset_Handler(void) {
    uint32_t *src = &__etext, *dst = &__data_start__;
    while (dst < &__data_end__) *dst++ = *src++;
    for (dst = &__bss_start__; dst < &__bss_end__;) *dst++ = 0;
    *(volatile uint32_t *)0xE000ED88 |= 0xFu << 20; /* CP10, CP11: the FPU */
    __asm volatile("dsb\n isb");
    semihost_exit(main());
}

static void Default_Handler(void) {
    semihost_exit(70);
}

#define HANDLER(f) ((uintptr_t)(f))
__attribute__((section(".vectors"), used)) const uintptr_t vectors[16] = {
    (uintptr_t)&__stack_top, HANDLER(Reset_Handler), HANDLER(Default_Handler),
    HANDLER(Default_Handler), HANDLER(Default_Handler), HANDLER(Default_Handler),
    HANDLER(Default_Handler), 0, 0, 0, 0, HANDLER(Default_Handler), HANDLER(Default_Handler),
    0, HANDLER(Default_Handler), HANDLER(Default_Handler),
};
