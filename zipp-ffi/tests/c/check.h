/* The check helpers both C test programs use (a header of the tests, not of libzipp).
 * CHECK counts a passed check or prints a failed one (file, line, what, the condition and
 * zipp's last error message) to stderr; each program ends with
 * printf("c tests: %d passed, %d failed\n", passed, failed). Include after "zipp.h". */
#ifndef ZIPP_TESTS_CHECK_H
#define ZIPP_TESTS_CHECK_H

#include <stdio.h>
#include <string.h>

static int passed, failed;

#define CHECK(cond, what)                                                                      \
  do {                                                                                         \
    if (cond) {                                                                                \
      passed++;                                                                                \
    } else {                                                                                   \
      failed++;                                                                                \
      const char *m_ = zipp_last_error_message();                                              \
      fprintf(stderr, "FAIL %s:%d: %s (%s) last error: %s\n", __FILE__, __LINE__, what, #cond, \
              m_ ? m_ : "(none)");                                                             \
    }                                                                                          \
  } while (0)

/* Whether `haystack` (NULL: no) contains `needle`. */
static int contains(const char *haystack, const char *needle) {
  return haystack != NULL && strstr(haystack, needle) != NULL;
}

#endif
