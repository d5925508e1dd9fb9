/* learn_example.c: a host program for the device learner. Records on stdin, each
 * 2 + BNN_INPUTS bytes: kind, label, then the image's raw uint8 pixels.
 *   kind 1: learn this example          kind 0: predict it (prints the class)
 *   kind 2: print the state's hash      kind 3: print the whole state, one array row a line
 * Build: cc -std=c99 -O2 learn_example.c bnn_learn.c bnn_learn_model.c -o learn */
#include <inttypes.h>
#include <stdio.h>
#include "bnn_learn.h"

static void print_value(const char *name, int32_t value, int first, int last) {
    if (first) fputs(name, stdout);
    printf(" %ld", (long)value);
    if (last) putchar('\n');
}

int main(void) {
    static uint8_t record[2 + BNN_INPUTS];
    while (fread(record, 1, sizeof record, stdin) == sizeof record) {
        int kind = record[0], label = record[1];
        if (label >= BNN_CLASSES) {
            fprintf(stderr, "a record's label is %d: the model has %d classes\n", label,
                    BNN_CLASSES);
            return 1;
        }
        if (kind == 1) {
            bnn_learn(record + 2, label);
        } else if (kind == 0) {
            printf("%d\n", bnn_learn_predict(record + 2));
        } else if (kind == 2) {
            printf("state %016" PRIx64 "\n", bnn_learn_state_hash());
        } else if (kind == 3) {
            bnn_learn_state_each(print_value);
        } else {
            fprintf(stderr, "a record's kind is %d: it must be 0, 1, 2 or 3\n", kind);
            return 1;
        }
    }
    return 0;
}
