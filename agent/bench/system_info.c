/* Prints llama_print_system_info() of the llama.cpp libraries it is linked against (run.sh
 * links it against the agent's own static llama.cpp build, which logs no such line itself). */
#include <stdio.h>
#include "llama.h"

int main(void) {
    llama_backend_init();
    puts(llama_print_system_info());
    llama_backend_free();
    return 0;
}
