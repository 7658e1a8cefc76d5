/* Every status of the C ABI from C, the model and compute ones from real bad input: broken
 * copies of the real models folder, built in a temporary directory, each fail the way a user
 * would meet it. Run by scripts/test-c.sh (also under valgrind).
 *
 *   test_error_kinds [MODELS_DIR]
 *
 * MODELS_DIR is laid out as scripts/provision-models.sh leaves it (all-MiniLM-L6-v2/ with
 * config.json, tokenizer.json, model.safetensors); default $ZIPP_MODELS_DIR, else
 * $HOME/.cache/zipp/models. The broken copies (the same as zipp-py/tests/test_errors.py's):
 * - no files at all                             -> ZIPP_ERR_MODEL_NOT_FOUND
 * - model.safetensors cut to a third            -> ZIPP_ERR_MODEL_INVALID (first embed)
 * - a CLIP vocabulary of one merge              -> ZIPP_ERR_MODEL_INVALID (count tokens)
 * - tokenizer.json with "post_processor": null  -> ZIPP_ERR_TOKENIZER for an empty text
 * - embeddings.LayerNorm.weight all NaN         -> ZIPP_ERR_COMPUTE (non-finite output)
 *
 * Prints one line per failed check (stderr) and ends with "c tests: N passed, M failed". */
#define _POSIX_C_SOURCE 200809L
#include "zipp.h"

#include "check.h"

#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define DIM 384 /* MiniLM's embedding dimension */

/* A failed call's status, its name, and its message, which must contain `needle` and, when
 * not NULL, `needle2`. The message is copied first: the next zipp call on this thread may
 * replace it. */
static void check_failure(int32_t status, int32_t expected, const char *needle, const char *needle2,
                          const char *what) {
  const char *m = zipp_last_error_message();
  char *message = NULL;
  if (m != NULL) {
    message = malloc(strlen(m) + 1);
    if (message != NULL) memcpy(message, m, strlen(m) + 1);
  }
  char line[256];
  snprintf(line, sizeof line, "%s: %s", what, zipp_status_name(expected));
  CHECK(status == expected, line);
  snprintf(line, sizeof line, "%s: zipp_status_name gives %s", what, zipp_status_name(expected));
  CHECK(strcmp(zipp_status_name(status), zipp_status_name(expected)) == 0, line);
  snprintf(line, sizeof line, "%s: message contains \"%s\"", what, needle);
  if (!contains(message, needle)) fprintf(stderr, "message: %s\n", message ? message : "(none)");
  CHECK(contains(message, needle), line);
  if (needle2 != NULL) {
    snprintf(line, sizeof line, "%s: message contains \"%s\"", what, needle2);
    CHECK(contains(message, needle2), line);
  }
  free(message);
}

/* ---- files ---------------------------------------------------------------------------- */

/* "a/b" in a new string (free it). */
static char *join(const char *a, const char *b) {
  size_t n = strlen(a) + 1 + strlen(b) + 1;
  char *s = malloc(n);
  if (s != NULL) snprintf(s, n, "%s/%s", a, b);
  return s;
}

static int is_file(const char *path) {
  struct stat st;
  return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

static long long file_size(const char *path) {
  struct stat st;
  return stat(path, &st) == 0 ? (long long)st.st_size : -1;
}

/* Copies the first `limit` bytes of `src` (all of it when limit < 0) to `dst`. 0 on success. */
static int copy_file(const char *src, const char *dst, long long limit) {
  FILE *in = fopen(src, "rb");
  if (in == NULL) return -1;
  FILE *out = fopen(dst, "wb");
  if (out == NULL) {
    fclose(in);
    return -1;
  }
  static unsigned char buf[1 << 16];
  int rc = 0;
  long long left = limit;
  while (limit < 0 || left > 0) {
    size_t want = sizeof buf;
    if (limit >= 0 && (long long)want > left) want = (size_t)left;
    size_t got = fread(buf, 1, want, in);
    if (got == 0) {
      if (ferror(in) || limit >= 0) rc = -1; /* a limit past the end is a bug here */
      break;
    }
    if (fwrite(buf, 1, got, out) != got) {
      rc = -1;
      break;
    }
    left -= (long long)got;
  }
  fclose(in);
  if (fclose(out) != 0) rc = -1;
  return rc;
}

static int write_file(const char *path, const void *data, size_t len) {
  FILE *f = fopen(path, "wb");
  if (f == NULL) return -1;
  int rc = fwrite(data, 1, len, f) == len ? 0 : -1;
  if (fclose(f) != 0) rc = -1;
  return rc;
}

/* The whole file in a new NUL-terminated buffer (free it), its length in *len. */
static char *read_file(const char *path, size_t *len) {
  *len = 0;
  long long size = file_size(path);
  FILE *f = size >= 0 ? fopen(path, "rb") : NULL;
  if (f == NULL) return NULL;
  char *data = malloc((size_t)size + 1);
  if (data != NULL && fread(data, 1, (size_t)size, f) != (size_t)size) {
    free(data);
    data = NULL;
  }
  fclose(f);
  if (data == NULL) return NULL;
  data[size] = '\0';
  *len = (size_t)size;
  return data;
}

/* Removes `path` and, for a directory, everything in it. 0 on success. */
static int remove_tree(const char *path) {
  struct stat st;
  if (lstat(path, &st) != 0) return errno == ENOENT ? 0 : -1;
  if (!S_ISDIR(st.st_mode)) return unlink(path);
  DIR *dir = opendir(path);
  if (dir == NULL) return -1;
  int rc = 0;
  struct dirent *e;
  while ((e = readdir(dir)) != NULL) {
    if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
    char *child = join(path, e->d_name);
    if (child == NULL || remove_tree(child) != 0) rc = -1;
    free(child);
  }
  closedir(dir);
  return rmdir(path) == 0 ? rc : -1;
}

/* root/all-MiniLM-L6-v2 with the real config.json and tokenizer.json, and model.safetensors
 * cut to `weights_limit` bytes (< 0: whole). Returns root (free it) or NULL. */
static char *minilm_copy(const char *real, const char *tmp, const char *name, long long weights_limit) {
  static const char *const files[] = {"config.json", "tokenizer.json", "model.safetensors"};
  char *root = join(tmp, name);
  char *dir = root != NULL ? join(root, "all-MiniLM-L6-v2") : NULL;
  char *real_dir = join(real, "all-MiniLM-L6-v2");
  int ok = dir != NULL && real_dir != NULL && mkdir(root, 0700) == 0 && mkdir(dir, 0700) == 0;
  for (size_t i = 0; ok && i < sizeof files / sizeof files[0]; i++) {
    char *src = join(real_dir, files[i]);
    char *dst = join(dir, files[i]);
    long long limit = strcmp(files[i], "model.safetensors") == 0 ? weights_limit : -1;
    ok = src != NULL && dst != NULL && copy_file(src, dst, limit) == 0;
    free(src);
    free(dst);
  }
  free(dir);
  free(real_dir);
  if (!ok) {
    fprintf(stderr, "test_error_kinds: could not copy MiniLM into %s/%s\n", tmp, name);
    free(root);
    return NULL;
  }
  return root;
}

/* `root/all-MiniLM-L6-v2/<file>` in a new string. */
static char *minilm_file(const char *root, const char *file) {
  char *dir = join(root, "all-MiniLM-L6-v2");
  char *path = dir != NULL ? join(dir, file) : NULL;
  free(dir);
  return path;
}

/* ---- gzip (one stored deflate block: no zlib needed) ---------------------------------- */

static uint32_t crc32(const unsigned char *p, size_t n) {
  uint32_t c = 0xFFFFFFFFu;
  for (size_t i = 0; i < n; i++) {
    c ^= p[i];
    for (int k = 0; k < 8; k++) c = (c >> 1) ^ (0xEDB88320u & (0u - (c & 1u)));
  }
  return c ^ 0xFFFFFFFFu;
}

static void put_le32(unsigned char *p, uint32_t v) {
  for (int i = 0; i < 4; i++) p[i] = (unsigned char)(v >> (8 * i));
}

/* `text` (under 64 KiB) as a gzip file (RFC 1952) at `path`. 0 on success. */
static int write_gzip(const char *path, const char *text) {
  size_t n = strlen(text);
  if (n > 0xFFFF) return -1;
  unsigned char *gz = malloc(n + 10 + 5 + 8);
  if (gz == NULL) return -1;
  static const unsigned char header[10] = {0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff}; /* deflate, no name */
  memcpy(gz, header, 10);
  gz[10] = 1; /* BFINAL = 1, BTYPE = 00 (stored) */
  gz[11] = (unsigned char)(n & 0xFF);
  gz[12] = (unsigned char)(n >> 8);
  gz[13] = (unsigned char)(~n & 0xFF);
  gz[14] = (unsigned char)((~n >> 8) & 0xFF);
  memcpy(gz + 15, text, n);
  put_le32(gz + 15 + n, crc32((const unsigned char *)text, n));
  put_le32(gz + 19 + n, (uint32_t)n);
  int rc = write_file(path, gz, n + 23);
  free(gz);
  return rc;
}

/* ---- JSON surgery ----------------------------------------------------------------------- */

/* Index just past the JSON string starting at s[i] == '"', or len if unterminated. */
static size_t skip_string(const char *s, size_t len, size_t i) {
  for (i++; i < len; i++) {
    if (s[i] == '\\') i++;
    else if (s[i] == '"') return i + 1;
  }
  return len;
}

/* Index just past the JSON value starting at s[i] (object/array brace-matched, strings
 * respected; a scalar runs to the next ',', '}' or ']'), or len if malformed. */
static size_t skip_value(const char *s, size_t len, size_t i) {
  if (i < len && s[i] == '"') return skip_string(s, len, i);
  if (i < len && (s[i] == '{' || s[i] == '[')) {
    int depth = 0;
    while (i < len) {
      char c = s[i];
      if (c == '"') {
        i = skip_string(s, len, i);
        continue;
      }
      if (c == '{' || c == '[') depth++;
      if (c == '}' || c == ']') {
        if (--depth == 0) return i + 1;
      }
      i++;
    }
    return len;
  }
  while (i < len && s[i] != ',' && s[i] != '}' && s[i] != ']') i++;
  return i;
}

static size_t skip_space(const char *s, size_t len, size_t i) {
  while (i < len && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r')) i++;
  return i;
}

/* `json` with the value of the top-level key `key` replaced by `value`, a new string (free
 * it), or NULL when the top-level object has no such key. */
static char *replace_top_level_value(const char *json, size_t len, const char *key, const char *value) {
  size_t klen = strlen(key);
  size_t i = skip_space(json, len, 0);
  if (i >= len || json[i] != '{') return NULL;
  i = skip_space(json, len, i + 1);
  while (i < len && json[i] == '"') {
    size_t key_end = skip_string(json, len, i);
    int match = key_end - i == klen + 2 && memcmp(json + i + 1, key, klen) == 0;
    size_t colon = skip_space(json, len, key_end);
    if (colon >= len || json[colon] != ':') return NULL;
    size_t start = skip_space(json, len, colon + 1);
    size_t end = skip_value(json, len, start);
    if (end >= len || end == start) return NULL;
    if (match) {
      size_t vlen = strlen(value);
      char *out = malloc(len - (end - start) + vlen + 1);
      if (out == NULL) return NULL;
      memcpy(out, json, start);
      memcpy(out + start, value, vlen);
      memcpy(out + start + vlen, json + end, len - end + 1); /* with the NUL */
      return out;
    }
    i = skip_space(json, len, end);
    if (i < len && json[i] == ',') i = skip_space(json, len, i + 1);
  }
  return NULL;
}

/* ---- safetensors -------------------------------------------------------------------------- */

/* Overwrites the bytes of F32 tensor `name` in the safetensors file `path` with NaN. Returns
 * the number of floats written, or -1. */
static long nan_tensor(const char *path, const char *name) {
  FILE *f = fopen(path, "r+b");
  if (f == NULL) return -1;
  long written = -1;
  unsigned char le[8];
  char *header = NULL;
  if (fread(le, 1, 8, f) != 8) goto done;
  uint64_t n = 0;
  for (int i = 7; i >= 0; i--) n = (n << 8) | le[i];
  if (n == 0 || n > (64u << 20)) goto done;
  header = malloc((size_t)n + 1);
  if (header == NULL || fread(header, 1, (size_t)n, f) != (size_t)n) goto done;
  header[n] = '\0';

  /* "name":{"dtype":"F32","shape":[...],"data_offsets":[start,end]} */
  char quoted[128];
  snprintf(quoted, sizeof quoted, "\"%s\"", name);
  const char *entry = strstr(header, quoted);
  if (entry == NULL) goto done;
  size_t entry_start = (size_t)(entry - header) + strlen(quoted);
  entry_start = skip_space(header, (size_t)n, entry_start);
  if (entry_start >= n || header[entry_start] != ':') goto done;
  entry_start = skip_space(header, (size_t)n, entry_start + 1);
  size_t entry_end = skip_value(header, (size_t)n, entry_start);
  if (entry_end >= n || header[entry_start] != '{') goto done;
  header[entry_end] = '\0'; /* search this tensor's object only */
  if (!contains(header + entry_start, "\"F32\"")) goto done;
  const char *offsets = strstr(header + entry_start, "\"data_offsets\"");
  if (offsets == NULL) goto done;
  offsets = strchr(offsets, '[');
  if (offsets == NULL) goto done;
  char *endp = NULL;
  unsigned long long start = strtoull(offsets + 1, &endp, 10);
  if (endp == offsets + 1) goto done;
  while (*endp == ' ' || *endp == ',') endp++;
  char *endp2 = NULL;
  unsigned long long end = strtoull(endp, &endp2, 10);
  if (endp2 == endp || end <= start || (end - start) % 4 != 0) goto done;

  if (fseek(f, (long)(8 + n + start), SEEK_SET) != 0) goto done;
  float nan_f = NAN;
  unsigned char nan_bytes[4];
  uint32_t bits;
  memcpy(&bits, &nan_f, 4);
  put_le32(nan_bytes, bits); /* safetensors is little-endian whatever the host */
  long count = (long)((end - start) / 4);
  for (long k = 0; k < count; k++) {
    if (fwrite(nan_bytes, 1, 4, f) != 4) goto done;
  }
  written = count;
done:
  free(header);
  if (fclose(f) != 0) written = -1;
  return written;
}

/* ---- the checks ---------------------------------------------------------------------------- */

static void test_status_names(void) {
  /* The header's constants, their documented values and names. */
  static const struct {
    int32_t code;
    const char *name;
  } statuses[] = {
      {ZIPP_OK, "ZIPP_OK"},
      {ZIPP_ERR_IO, "ZIPP_ERR_IO"},
      {ZIPP_ERR_PARSE, "ZIPP_ERR_PARSE"},
      {ZIPP_ERR_SCHEMA, "ZIPP_ERR_SCHEMA"},
      {ZIPP_ERR_INVALID_INPUT, "ZIPP_ERR_INVALID_INPUT"},
      {ZIPP_ERR_MODEL_NOT_FOUND, "ZIPP_ERR_MODEL_NOT_FOUND"},
      {ZIPP_ERR_MODEL_INVALID, "ZIPP_ERR_MODEL_INVALID"},
      {ZIPP_ERR_TOKENIZER, "ZIPP_ERR_TOKENIZER"},
      {ZIPP_ERR_COMPUTE, "ZIPP_ERR_COMPUTE"},
      {ZIPP_ERR_NULL_POINTER, "ZIPP_ERR_NULL_POINTER"},
      {ZIPP_ERR_INVALID_UTF8, "ZIPP_ERR_INVALID_UTF8"},
      {ZIPP_ERR_INTERNAL, "ZIPP_ERR_INTERNAL"},
      {ZIPP_ERR_REMOTE, "ZIPP_ERR_REMOTE"},
      {ZIPP_ERR_CANCELLED, "ZIPP_ERR_CANCELLED"},
  };
  char what[96];
  for (int32_t s = 0; s < 14; s++) {
    snprintf(what, sizeof what, "%s is %d", statuses[s].name, (int)s);
    CHECK(statuses[s].code == s, what);
    const char *name = zipp_status_name(s);
    snprintf(what, sizeof what, "zipp_status_name(%d) is %s", (int)s, statuses[s].name);
    CHECK(name != NULL && strcmp(name, statuses[s].name) == 0, what);
  }
  static const int32_t unknown[] = {14, -1, INT32_MAX, INT32_MIN};
  for (size_t i = 0; i < sizeof unknown / sizeof unknown[0]; i++) {
    const char *name = zipp_status_name(unknown[i]);
    snprintf(what, sizeof what, "zipp_status_name(%ld) is ZIPP_UNKNOWN_STATUS", (long)unknown[i]);
    CHECK(name != NULL && strcmp(name, "ZIPP_UNKNOWN_STATUS") == 0, what);
  }
}

/* Sanity of a success: `n` rows of DIM finite unit vectors. */
static int unit_rows(const float *v, size_t n) {
  for (size_t r = 0; r < n; r++) {
    double norm = 0;
    for (size_t j = 0; j < DIM; j++) {
      if (!isfinite(v[r * DIM + j])) return 0;
      norm += (double)v[r * DIM + j] * v[r * DIM + j];
    }
    if (fabs(norm - 1.0) > 1e-4) return 0;
  }
  return 1;
}

static void test_model_not_found(const char *tmp) {
  char *root = join(tmp, "empty");
  CHECK(root != NULL && mkdir(root, 0700) == 0, "not found: an empty models folder");
  zipp_models *m = NULL;
  CHECK(zipp_models_new(root, &m) == ZIPP_OK && m != NULL, "not found: the handle is lazy");
  char needle[4200];
  snprintf(needle, sizeof needle, "ZIPP_MODELS_DIR=%s", root != NULL ? root : "?");
  check_failure(zipp_models_load(m), ZIPP_ERR_MODEL_NOT_FOUND, needle, "provision-models.sh",
                "not found: zipp_models_load");
  const char *texts[] = {"a cat"};
  float out[DIM];
  check_failure(zipp_embed(m, texts, 1, out, DIM), ZIPP_ERR_MODEL_NOT_FOUND, "all-MiniLM-L6-v2", NULL,
                "not found: zipp_embed");
  size_t n = 99;
  check_failure(zipp_count_tokens(m, "a cat", &n), ZIPP_ERR_MODEL_NOT_FOUND, "clip-bpe", NULL,
                "not found: zipp_count_tokens");
  CHECK(n == 0, "not found: count out zeroed");
  zipp_models_free(m);
  free(root);
}

static void test_model_invalid(const char *real, const char *tmp) {
  char *real_weights = minilm_file(real, "model.safetensors");
  long long size = real_weights != NULL ? file_size(real_weights) : -1;
  free(real_weights);
  char *root = size > 0 ? minilm_copy(real, tmp, "truncated", size / 3) : NULL;
  CHECK(root != NULL, "model invalid: a copy with model.safetensors cut to a third");
  if (root == NULL) return;

  zipp_models *m = NULL;
  CHECK(zipp_models_new(root, &m) == ZIPP_OK, "model invalid: models handle");
  const char *texts[] = {"a cat"};
  float out[DIM];
  check_failure(zipp_embed(m, texts, 1, out, DIM), ZIPP_ERR_MODEL_INVALID, "all-MiniLM-L6-v2/model.safetensors",
                "re-provision", "model invalid: embed with truncated weights");
  size_t dim = 99;
  check_failure(zipp_models_dim(m, &dim), ZIPP_ERR_MODEL_INVALID, "model.safetensors", NULL,
                "model invalid: zipp_models_dim (a second load fails the same way)");
  CHECK(dim == 0, "model invalid: dim out zeroed");
  zipp_models_free(m);

  /* A CLIP vocabulary with a version line and one merge: open_clip needs 48,894 merges. */
  char *clip_dir = join(root, "clip-bpe");
  char *vocab = clip_dir != NULL ? join(clip_dir, "bpe_simple_vocab_16e6.txt.gz") : NULL;
  CHECK(vocab != NULL && mkdir(clip_dir, 0700) == 0 && write_gzip(vocab, "#version: 0.2\na b\n") == 0,
        "model invalid: a one-merge CLIP vocabulary");
  m = NULL;
  CHECK(zipp_models_new(root, &m) == ZIPP_OK, "model invalid: models handle for CLIP");
  size_t n = 99;
  check_failure(zipp_count_tokens(m, "a cat", &n), ZIPP_ERR_MODEL_INVALID, "clip-bpe/bpe_simple_vocab_16e6.txt.gz",
                "re-provision", "model invalid: count tokens with a corrupt vocabulary");
  CHECK(n == 0, "model invalid: count out zeroed");
  zipp_models_free(m);
  free(vocab);
  free(clip_dir);
  free(root);
}

static void test_tokenizer(const char *real, const char *tmp) {
  char *root = minilm_copy(real, tmp, "no-post-processor", -1);
  char *path = root != NULL ? minilm_file(root, "tokenizer.json") : NULL;
  size_t len = 0;
  char *json = path != NULL ? read_file(path, &len) : NULL;
  char *edited = json != NULL ? replace_top_level_value(json, len, "post_processor", "null") : NULL;
  CHECK(edited != NULL && !contains(edited, "TemplateProcessing") && contains(edited, "\"post_processor\":null") &&
            contains(edited, "\"decoder\"") && write_file(path, edited, strlen(edited)) == 0,
        "tokenizer: tokenizer.json with \"post_processor\": null");
  free(edited);
  free(json);
  free(path);
  if (root == NULL) return;

  zipp_models *m = NULL;
  CHECK(zipp_models_new(root, &m) == ZIPP_OK, "tokenizer: models handle");
  static float out[2 * DIM];
  const char *one[] = {"a cat"};
  CHECK(zipp_embed(m, one, 1, out, 2 * DIM) == ZIPP_OK && unit_rows(out, 1),
        "tokenizer: a non-empty text still embeds (the copy is otherwise intact)");
  CHECK(zipp_last_error_message() == NULL, "tokenizer: success leaves no error message");
  const char *two[] = {"a cat", ""};
  check_failure(zipp_embed(m, two, 2, out, 2 * DIM), ZIPP_ERR_TOKENIZER, "text 1 produced no tokens", NULL,
                "tokenizer: embed with an empty text");
  zipp_models_free(m);
  free(root);
}

static void test_compute(const char *real, const char *tmp) {
  char *root = minilm_copy(real, tmp, "nan-weights", -1);
  char *path = root != NULL ? minilm_file(root, "model.safetensors") : NULL;
  long floats = path != NULL ? nan_tensor(path, "embeddings.LayerNorm.weight") : -1;
  CHECK(floats == DIM, "compute: embeddings.LayerNorm.weight overwritten with 384 NaNs");
  CHECK(path != NULL && file_size(path) > 0, "compute: the weights keep their size");
  free(path);
  if (root == NULL) return;

  zipp_models *m = NULL;
  CHECK(zipp_models_new(root, &m) == ZIPP_OK, "compute: models handle");
  size_t dim = 0;
  CHECK(zipp_models_dim(m, &dim) == ZIPP_OK && dim == DIM, "compute: the NaN weights load");
  const char *texts[] = {"a cat"};
  float out[DIM];
  check_failure(zipp_embed(m, texts, 1, out, DIM), ZIPP_ERR_COMPUTE, "non-finite", NULL,
                "compute: embed through NaN weights");
  zipp_models_free(m);
  free(root);
}

int main(int argc, char **argv) {
  const char *real = argc > 1 ? argv[1] : getenv("ZIPP_MODELS_DIR");
  char *fallback = NULL;
  if (real == NULL || *real == '\0') {
    const char *home = getenv("HOME");
    fallback = join(home != NULL ? home : ".", ".cache/zipp/models");
    real = fallback;
  }
  char *weights = real != NULL ? minilm_file(real, "model.safetensors") : NULL;
  int have_models = weights != NULL && is_file(weights);
  free(weights);
  if (!have_models) {
    fprintf(stderr, "test_error_kinds: no MiniLM in %s (run scripts/provision-models.sh)\n", real ? real : "?");
    free(fallback);
    printf("c tests: 0 passed, 1 failed\n");
    return 1;
  }

  const char *tmpdir = getenv("TMPDIR");
  char *template = join(tmpdir != NULL && *tmpdir != '\0' ? tmpdir : "/tmp", "zipp-error-kinds-XXXXXX");
  char *tmp = template != NULL ? mkdtemp(template) : NULL;
  if (tmp == NULL) {
    fprintf(stderr, "test_error_kinds: mkdtemp failed: %s\n", strerror(errno));
    free(template);
    free(fallback);
    printf("c tests: 0 passed, 1 failed\n");
    return 1;
  }

  test_status_names();
  test_model_not_found(tmp);
  test_model_invalid(real, tmp);
  test_tokenizer(real, tmp);
  test_compute(real, tmp);

  CHECK(remove_tree(tmp) == 0, "temporary folders removed");
  free(template);
  free(fallback);
  printf("c tests: %d passed, %d failed\n", passed, failed);
  return failed == 0 ? 0 : 1;
}
