/* Compiled by the cc crate with the target's C compiler. */
int sample_answer(int x) {
    return x * 6 + (int)sizeof(void *);
}
