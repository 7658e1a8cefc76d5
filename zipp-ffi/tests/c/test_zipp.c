/* The C ABI from C: errors, JSON round trips, the real models end to end, many threads
 * sharing one personalizer, fork(), the VPTT scorer, an evaluation and the statistics,
 * persona mining, building a graph on disk.
 * Run by scripts/test-c.sh (also under valgrind).
 *
 *   test_zipp PERSONAS.jsonl [--quick]
 *
 * --quick (for valgrind, where MiniLM runs ~100x slower): personalizes and scores a
 * three-post persona instead of the example personas, with fewer thread iterations, and runs
 * one short evaluation (two methods, one query, that persona), and skips the benches.
 *
 * Prints one line per failed check and ends with "c tests: N passed, M failed". */
#define _POSIX_C_SOURCE 200809L
#include "zipp.h"

#include "check.h"

#include <ctype.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

/* Runs body(arg) in a child forked now and checks that the child exits (no deadlock: a child
 * still running after alarm_s seconds is killed and fails) and that body returned nonzero.
 * The child reports through a pipe, not its exit status: under valgrind the child's exit
 * status reflects the parent's thread pool it inherited but cannot free (leaked on purpose).
 * `what` names the checks. */
static void check_in_forked_child(int (*body)(void *), void *arg, unsigned alarm_s, const char *what) {
  int fds[2];
  CHECK(pipe(fds) == 0, "pipe");
  fflush(NULL);
  pid_t child = fork();
  if (child == 0) {
    alarm(alarm_s);
    close(fds[0]);
    char verdict = body(arg) ? 'y' : 'n';
    ssize_t written = write(fds[1], &verdict, 1);
    _exit(written == 1 ? 0 : 1);
  }
  close(fds[1]);
  char verdict = 0;
  ssize_t got = read(fds[0], &verdict, 1);
  close(fds[0]);
  int status = 0;
  char label[160];
  snprintf(label, sizeof label, "fork and wait (%s)", what);
  CHECK(child > 0 && waitpid(child, &status, 0) == child, label);
  snprintf(label, sizeof label, "the forked child exits, no deadlock, no crash (%s)", what);
  CHECK(WIFEXITED(status), label);
  snprintf(label, sizeof label, "the forked child's result (%s)", what);
  CHECK(got == 1 && verdict == 'y', label);
}

/* The forked children's work (see check_in_forked_child). */
struct fork_personalize {
  const zipp_personalizer *p;
  const zipp_persona *persona;
  const char *prompt, *expected;
};
static int personalize_matches(void *arg) {
  const struct fork_personalize *j = arg;
  char *out = NULL;
  return zipp_personalize_prompt(j->p, j->persona, j->prompt, &out) == ZIPP_OK && j->expected != NULL &&
         strcmp(out, j->expected) == 0;
}
struct fork_embed {
  const zipp_models *m;
  const char *const *texts;
  size_t n;
  float *got;
  const float *want;
  size_t bytes;
};
static int embed_matches(void *arg) {
  const struct fork_embed *j = arg;
  return zipp_embed(j->m, j->texts, j->n, j->got, j->bytes / sizeof(float)) == ZIPP_OK &&
         memcmp(j->got, j->want, j->bytes) == 0;
}

static void test_library(void) {
  CHECK(zipp_abi_version() == ZIPP_ABI_VERSION, "ABI version matches the header");
  CHECK(strlen(zipp_version()) > 0, "version string");
  CHECK(strcmp(zipp_status_name(ZIPP_ERR_SCHEMA), "ZIPP_ERR_SCHEMA") == 0, "status name");
  CHECK(strcmp(zipp_status_name(1000), "ZIPP_UNKNOWN_STATUS") == 0, "unknown status name");
}

static void test_bad_input(void) {
  zipp_persona *p = (zipp_persona *)&p; /* garbage the call must clear */
  CHECK(zipp_persona_from_json(NULL, &p) == ZIPP_ERR_NULL_POINTER, "NULL json");
  CHECK(p == NULL, "out cleared on failure");
  CHECK(contains(zipp_last_error_message(), "NULL"), "message names the NULL argument");
  CHECK(zipp_persona_from_json("{}", NULL) == ZIPP_ERR_NULL_POINTER, "NULL out");

  CHECK(zipp_persona_from_json("{\"id\":\"\xff\"}", &p) == ZIPP_ERR_INVALID_UTF8, "invalid UTF-8");
  CHECK(zipp_persona_from_json("{\"id\":\"a\",", &p) == ZIPP_ERR_PARSE, "truncated JSON");
  CHECK(contains(zipp_last_error_message(), "line 1"), "parse error has a line");
  CHECK(zipp_persona_from_json("{\"id\":\"a\",\"memory\":[{\"caption\":\"\"}]}", &p) == ZIPP_ERR_SCHEMA,
        "empty caption");
  CHECK(contains(zipp_last_error_message(), "memory[0].caption"), "schema error names the field");
  CHECK(zipp_persona_from_json("{\"id\":\"a\",\"colour\":1}", &p) == ZIPP_ERR_SCHEMA, "unknown field");
  CHECK(zipp_persona_load("/nonexistent/persona.json", &p) == ZIPP_ERR_IO, "missing file");
  CHECK(p == NULL, "no persona");

  zipp_persona *ok = NULL;
  CHECK(zipp_persona_from_json("{\"id\":\"ana\",\"summary\":\"Ana paints.\"}", &ok) == ZIPP_OK, "valid persona");
  CHECK(zipp_last_error_message() == NULL, "success clears the last error");
  char *json = NULL;
  CHECK(zipp_persona_to_json(ok, 1, &json) == ZIPP_OK && contains(json, "\"summary\": \"Ana paints.\""),
        "pretty JSON");
  zipp_string_free(json);
  char *id = NULL;
  CHECK(zipp_persona_id(ok, &id) == ZIPP_OK && strcmp(id, "ana") == 0, "id");
  zipp_string_free(id);
  zipp_persona_free(ok);

  zipp_models *missing = NULL;
  CHECK(zipp_models_new("/nonexistent/zipp-models", &missing) == ZIPP_OK, "models handle is lazy");
  zipp_personalizer *pz = NULL;
  CHECK(zipp_personalizer_new(missing, "vprag", &pz) == ZIPP_ERR_MODEL_NOT_FOUND, "missing models");
  CHECK(contains(zipp_last_error_message(), "provision-models.sh"), "message says how to provision");
  CHECK(zipp_personalizer_new(missing, "{\"method\":\"vprag\",\"temprature\":1}", &pz) == ZIPP_ERR_SCHEMA,
        "misspelt option");
  CHECK(contains(zipp_last_error_message(), "temprature"), "message names the option");
  CHECK(zipp_personalizer_new(missing, "{\"method\":\"brag\",\"k\":0}", &pz) == ZIPP_ERR_INVALID_INPUT, "k = 0");
  CHECK(pz == NULL, "no personalizer");
  zipp_models_free(missing);

  /* NULL handles are statuses too; frees of NULL are no-ops. */
  char *out = NULL;
  size_t n = 99;
  CHECK(zipp_personalize_prompt(NULL, NULL, "x", &out) == ZIPP_ERR_NULL_POINTER, "NULL personalizer");
  CHECK(zipp_count_tokens(NULL, "x", &n) == ZIPP_ERR_NULL_POINTER && n == 0, "NULL models, out zeroed");
  CHECK(zipp_explain("{not json", &out) == ZIPP_ERR_PARSE && out == NULL, "explain of bad JSON");
  zipp_models_free(NULL);
  zipp_persona_free(NULL);
  zipp_personalizer_free(NULL);
  zipp_jsonl_free(NULL);
  zipp_string_free(NULL);
}

/* The number after `"key":` in a flat JSON object (NaN when absent or null). */
static double json_number(const char *json, const char *key) {
  char pattern[64];
  snprintf(pattern, sizeof pattern, "\"%s\":", key);
  const char *at = json != NULL ? strstr(json, pattern) : NULL;
  if (at == NULL) return NAN;
  at += strlen(pattern);
  char *end = NULL;
  double v = strtod(at, &end);
  return end == at ? NAN : v;
}

static void test_stats(void) {
  double v = 7;
  CHECK(zipp_stats_binomial_test(3, 10, 0.5, &v) == ZIPP_OK && fabs(v - 0.34375) < 1e-15, "binomial test");
  CHECK(zipp_stats_binomial_test(11, 10, 0.5, &v) == ZIPP_ERR_INVALID_INPUT && v == 0.0, "k > n refused, out zeroed");
  CHECK(contains(zipp_last_error_message(), "k = 11"), "message names k");
  CHECK(zipp_stats_binomial_test(1, 2, 0.5, NULL) == ZIPP_ERR_NULL_POINTER, "NULL out");
  double lo = 9, hi = 9;
  const double z = 1.959963984540054;
  CHECK(zipp_stats_wilson_interval(0, 10, 0.95, &lo, &hi) == ZIPP_OK && lo == 0.0 &&
            fabs(hi - z * z / (10 + z * z)) < 1e-12,
        "Wilson interval at k = 0");
  CHECK(zipp_stats_wilson_interval(1, 2, 1.0, &lo, &hi) == ZIPP_ERR_INVALID_INPUT && lo == 0.0 && hi == 0.0,
        "confidence 1 refused");
  const double xs[4] = {1, 2, 3, 4}, ys[4] = {10, 30, 20, 40};
  CHECK(zipp_stats_mean(xs, 4, &v) == ZIPP_OK && v == 2.5, "mean");
  CHECK(zipp_stats_mean(NULL, 0, &v) == ZIPP_ERR_INVALID_INPUT, "mean of nothing");
  CHECK(zipp_stats_mean(NULL, 3, &v) == ZIPP_ERR_NULL_POINTER, "NULL values with n > 0");
  CHECK(zipp_stats_spearman(xs, ys, 4, &v) == ZIPP_OK && fabs(v - 0.8) < 1e-12, "Spearman");
  const double a[5] = {0.61, 0.72, 0.58, 0.69, 0.66}, b[4] = {0.52, 0.55, 0.49, 0.6};
  CHECK(zipp_stats_cohens_d(a, 5, b, 4, &v) == ZIPP_OK && fabs(v - 2.1122946333043076) < 1e-12, "Cohen's d");
  CHECK(zipp_stats_cohens_d(a, 1, b, 4, &v) == ZIPP_OK && isnan(v), "undefined d is NaN");
  double ranks[4] = {0};
  const double tied[4] = {1, 2, 2, 3};
  CHECK(zipp_stats_average_ranks(tied, 4, ranks) == ZIPP_OK && ranks[1] == 2.5 && ranks[2] == 2.5 && ranks[3] == 4,
        "average ranks");
}

/* The VPTT scorer and a streaming evaluation: `persona` is scored against `own_caption`, one
 * of its captions; the evaluation runs over `personas`. */
static void test_evaluation(zipp_models *models, const zipp_persona *persona, const char *own_caption,
                            const zipp_persona *const *personas, size_t count, int quick) {
  zipp_scorer *scorer = (zipp_scorer *)&scorer; /* garbage the call must clear */
  CHECK(zipp_scorer_new(models, persona, "{\"novelty\":\"fuzzy\"}", &scorer) == ZIPP_ERR_SCHEMA && scorer == NULL,
        "bad VPTT option refused");
  CHECK(contains(zipp_last_error_message(), "novelty"), "message names the option");
  CHECK(zipp_scorer_new(models, persona, NULL, &scorer) == ZIPP_OK, "scorer");
  size_t rank = 0, clusters = 0;
  CHECK(zipp_scorer_rank(scorer, &rank) == ZIPP_OK && rank >= 1, "caption span");
  CHECK(zipp_scorer_clusters(scorer, &clusters) == ZIPP_OK && clusters >= 1 && clusters <= rank, "clusters");
  char *score = NULL;
  CHECK(zipp_scorer_score(scorer, own_caption, &score) == ZIPP_OK, "score a caption");
  CHECK(fabs(json_number(score, "gs") - 1.0) < 1e-5, "a caption lies in its own span (GS = 1)");
  CHECK(json_number(score, "nv") == 0.0, "a caption is not novel (NV = 0)");
  CHECK(contains(score, "\"nv_soft\":null"), "no soft novelty by default");
  zipp_string_free(score);
  char *batch = NULL;
  CHECK(zipp_scorer_score_batch(scorer, "[\"a spaceship over the sea\",\"a red bicycle\"]", &batch) == ZIPP_OK &&
            batch[0] == '[' && json_number(batch, "nv") == 1.0,
        "batch of scores");
  zipp_string_free(batch);
  CHECK(zipp_scorer_score_batch(scorer, "[\"a\", 3]", &batch) == ZIPP_ERR_SCHEMA && batch == NULL,
        "a prompt that is not a string");
  CHECK(zipp_scorer_score(scorer, NULL, &batch) == ZIPP_ERR_NULL_POINTER, "NULL prompt");
  zipp_scorer_free(scorer);

  zipp_evaluation *ev = (zipp_evaluation *)&ev;
  CHECK(zipp_evaluation_new(models, "{\"methods\":[\"identity\",\"nope\"]}", &ev) == ZIPP_ERR_SCHEMA && ev == NULL,
        "unknown method refused");
  CHECK(contains(zipp_last_error_message(), "methods[1]"), "message names the method's place");
  const char *config = quick ? "{\"methods\":[\"identity\",\"vprag\"],"
                               "\"queries\":[{\"name\":\"door\",\"task\":\"generate\",\"prompt\":\"a front door\"}]}"
                             : NULL; /* the five methods on the four VPTT queries */
  CHECK(zipp_evaluation_new(models, config, &ev) == ZIPP_OK, "evaluation");
  uint64_t n = 99;
  CHECK(zipp_evaluation_personas(ev, &n) == ZIPP_OK && n == 0, "no personas yet");
  char *config_json = NULL;
  CHECK(zipp_evaluation_config(ev, &config_json) == ZIPP_OK && contains(config_json, "\"tie_epsilon\":"),
        "configuration with defaults filled in");
  zipp_string_free(config_json);
  char *samples = NULL;
  CHECK(zipp_evaluation_add_persona(ev, personas[0], &samples) == ZIPP_OK && samples != NULL && samples[0] == '[',
        "samples of the first persona");
  CHECK(contains(samples, quick ? "\"query\":\"door\"" : "\"query\":\"social_post\""), "samples name their query");
  zipp_string_free(samples);
  for (size_t i = 1; i < count; i++) {
    CHECK(zipp_evaluation_add_persona(ev, personas[i], NULL) == ZIPP_OK, "add a persona, samples dropped");
  }
  CHECK(zipp_evaluation_personas(ev, &n) == ZIPP_OK && n == count, "personas counted");
  char *report = NULL, *table = NULL, *again = NULL;
  CHECK(zipp_evaluation_report(ev, &report) == ZIPP_OK && json_number(report, "personas") == (double)count,
        "report JSON");
  CHECK(contains(report, quick ? "\"methods\":[\"identity\",\"vprag\"]"
                               : "\"methods\":[\"identity\",\"persona_only\",\"brag\",\"vprag\",\"combined\"]"),
        "report methods");
  CHECK(zipp_evaluation_table(ev, &table) == ZIPP_OK && contains(table, " personas") &&
            contains(table, quick ? "door (generation)" : "all edit queries"),
        "text tables");
  CHECK(zipp_report_table(report, &again) == ZIPP_OK && again != NULL && table != NULL && strcmp(again, table) == 0,
        "tables from the report JSON");

  /* Two shards evaluated apart, merged as JSON with no model: the same report, bit for bit
   * (the JSON up to "timings", which measure wall time and come last). */
  zipp_evaluation *shard_a = NULL, *shard_b = NULL;
  CHECK(zipp_evaluation_new(models, config, &shard_a) == ZIPP_OK &&
            zipp_evaluation_new(models, config, &shard_b) == ZIPP_OK,
        "shard evaluations");
  for (size_t i = 0; i < count; i++) {
    CHECK(zipp_evaluation_add_persona(i % 2 ? shard_a : shard_b, personas[i], NULL) == ZIPP_OK, "shard a persona");
  }
  char *parts[2] = {NULL, NULL}, *merged = NULL, *merged_report = NULL;
  CHECK(zipp_evaluation_aggregate(shard_a, &parts[0]) == ZIPP_OK && contains(parts[0], "\"format\":1"),
        "aggregate JSON");
  CHECK(zipp_evaluation_aggregate(shard_b, &parts[1]) == ZIPP_OK, "second aggregate");
  const char *const texts[2] = {parts[1], parts[0]};
  CHECK(zipp_aggregate_merge(texts, 2, &merged) == ZIPP_OK, "merge aggregates");
  CHECK(zipp_aggregate_report(merged, &merged_report) == ZIPP_OK, "report of the merged aggregate");
  const char *t1 = strstr(report, "\"timings\""), *t2 = strstr(merged_report, "\"timings\"");
  CHECK(t1 != NULL && t2 != NULL && t1 - report == t2 - merged_report &&
            strncmp(report, merged_report, (size_t)(t1 - report)) == 0,
        "merged shards report exactly what one pass reports");
  /* Merging into a live evaluation is the same. */
  CHECK(zipp_evaluation_merge(shard_a, parts[1]) == ZIPP_OK && zipp_evaluation_personas(shard_a, &n) == ZIPP_OK &&
            n == count,
        "merge into an evaluation");
  char *err = (char *)&err;
  CHECK(zipp_aggregate_merge(NULL, 0, &err) == ZIPP_ERR_INVALID_INPUT && err == NULL, "nothing to merge");
  const char *bad[2] = {parts[0], "{\"format\":1}"};
  CHECK(zipp_aggregate_merge(bad, 2, &err) == ZIPP_ERR_SCHEMA && err == NULL, "a malformed aggregate");
  bad[1] = NULL;
  CHECK(zipp_aggregate_merge(bad, 2, &err) == ZIPP_ERR_NULL_POINTER, "a NULL aggregate");
  CHECK(zipp_evaluation_merge(shard_b, "not json") == ZIPP_ERR_PARSE, "merge refuses malformed JSON");
  zipp_evaluation *other = NULL;
  CHECK(zipp_evaluation_new(models, "{\"methods\":[\"identity\"],\"queries\":[{\"name\":\"door\",\"task\":"
                                    "\"generate\",\"prompt\":\"a front door\"}]}",
                            &other) == ZIPP_OK,
        "an evaluation of another config");
  CHECK(zipp_evaluation_merge(other, parts[0]) == ZIPP_ERR_INVALID_INPUT &&
            contains(zipp_last_error_message(), "different methods"),
        "aggregates of another config refused");
  zipp_evaluation_free(other);
  zipp_string_free(parts[0]);
  zipp_string_free(parts[1]);
  zipp_string_free(merged);
  zipp_string_free(merged_report);
  zipp_evaluation_free(shard_a);
  zipp_evaluation_free(shard_b);
  zipp_string_free(report);
  zipp_string_free(table);
  zipp_string_free(again);
  zipp_evaluation_free(ev);
  zipp_evaluation_free(NULL);
  zipp_scorer_free(NULL);
}

/* The persona benches (not under --quick: classifying the phrase lists and decoding the
 * parquet files take valgrind minutes). */
static void test_benches(zipp_models *models) {
  zipp_synthetic_bench *bench = (zipp_synthetic_bench *)&bench;
  CHECK(zipp_synthetic_bench_new(NULL, "{\"posts_per_persona\":0}", &bench) == ZIPP_ERR_INVALID_INPUT &&
            bench == NULL,
        "zero posts refused");
  CHECK(zipp_synthetic_bench_new(NULL, "{\"persons\":2}", &bench) == ZIPP_ERR_SCHEMA, "misspelt option");
  CHECK(zipp_synthetic_bench_new("/nonexistent/phrases", NULL, &bench) == ZIPP_ERR_MODEL_NOT_FOUND, "no lists");
  CHECK(zipp_synthetic_bench_new(NULL, "{\"seed\":5,\"personas\":2,\"posts_per_persona\":6}", &bench) == ZIPP_OK,
        "synthetic bench");
  size_t n = 0;
  CHECK(zipp_synthetic_bench_len(bench, &n) == ZIPP_OK && n == 2, "bench size");
  zipp_persona *p = NULL;
  char *id = NULL;
  CHECK(zipp_synthetic_bench_persona(bench, 1, &p) == ZIPP_OK, "synthetic persona");
  CHECK(zipp_persona_id(p, &id) == ZIPP_OK && id != NULL && strcmp(id, "syn-5-1") == 0, "synthetic persona id");
  zipp_string_free(id);
  zipp_scorer *scorer = NULL;
  CHECK(zipp_scorer_new(models, p, NULL, &scorer) == ZIPP_OK, "a synthetic persona can be scored");
  zipp_scorer_free(scorer);
  zipp_persona_free(p);
  p = (zipp_persona *)&p;
  CHECK(zipp_synthetic_bench_persona(bench, 2, &p) == ZIPP_ERR_INVALID_INPUT && p == NULL, "index past the end");
  zipp_synthetic_bench_free(bench);

  zipp_movielens *ml = NULL;
  CHECK(zipp_movielens_load("/nonexistent/movielens", &ml) == ZIPP_ERR_MODEL_NOT_FOUND && ml == NULL,
        "missing MovieLens");
  CHECK(zipp_movielens_load(NULL, &ml) == ZIPP_OK, "MovieLens 100K (run scripts/provision-models.sh)");
  size_t users = 0, movies = 0, ratings = 0;
  CHECK(zipp_movielens_users(ml, &users) == ZIPP_OK && users == 943, "943 users");
  CHECK(zipp_movielens_movies(ml, &movies) == ZIPP_OK && movies == 1682, "1682 movies");
  CHECK(zipp_movielens_ratings(ml, &ratings) == ZIPP_OK && ratings == 100000, "100,000 ratings");
  CHECK(zipp_movielens_persona(ml, 0, "{\"max_posts\":5}", &p) == ZIPP_OK, "MovieLens persona");
  CHECK(zipp_persona_id(p, &id) == ZIPP_OK && id != NULL && strcmp(id, "ml100k-1") == 0, "MovieLens persona id");
  zipp_string_free(id);
  char *json = NULL;
  CHECK(zipp_persona_to_json(p, 0, &json) == ZIPP_OK && contains(json, "{\"id\":\"m") && contains(json, "rated"),
        "posts are rated movies");
  zipp_string_free(json);
  zipp_persona_free(p);
  CHECK(zipp_movielens_persona(ml, 0, "{\"min_rating\":9}", &p) == ZIPP_ERR_INVALID_INPUT, "min_rating 9 refused");
  CHECK(zipp_movielens_persona(ml, 943, NULL, &p) == ZIPP_ERR_INVALID_INPUT && p == NULL, "user past the end");
  zipp_movielens_free(ml);
  zipp_movielens_free(NULL);
  zipp_synthetic_bench_free(NULL);
}

/* ---- threads ---------------------------------------------------------------------------- */

struct job {
  const zipp_personalizer *pz;
  const zipp_persona *persona;
  const char *prompt;
  const char *expected;
  int iterations;
  int mismatches;
};

static void *personalize_many(void *arg) {
  struct job *j = (struct job *)arg;
  for (int i = 0; i < j->iterations; i++) {
    char *out = NULL;
    if (zipp_personalize_prompt(j->pz, j->persona, j->prompt, &out) != ZIPP_OK || j->expected == NULL ||
        strcmp(out, j->expected) != 0) {
      j->mismatches++;
    }
    zipp_string_free(out);
  }
  return NULL;
}

/* Whether `haystack` contains `needle`, ignoring ASCII case (the rewriter may capitalise). */
static int contains_nocase(const char *haystack, const char *needle) {
  if (haystack == NULL) return 0;
  size_t n = strlen(needle);
  for (const char *h = haystack; *h; h++) {
    size_t i = 0;
    while (i < n && h[i] && tolower((unsigned char)h[i]) == tolower((unsigned char)needle[i])) i++;
    if (i == n) return 1;
  }
  return 0;
}

/* Language models: the scripted fake (cheap enough for valgrind) streams through the callback
 * on this thread; bad specs and messages are typed errors. */
struct pieces {
  char text[4096];
  size_t calls;
  int stop_after; /* return non-zero after this many pieces; 0 = never */
  pthread_t thread;
  int other_thread;
};

static int collect(const char *piece, size_t len, void *user_data) {
  struct pieces *p = (struct pieces *)user_data;
  if (!pthread_equal(p->thread, pthread_self())) p->other_thread = 1;
  if (strlen(piece) != len) p->other_thread = 2; /* NUL-terminated and `len` agree */
  size_t used = strlen(p->text);
  if (used + len < sizeof p->text) memcpy(p->text + used, piece, len + 1);
  p->calls++;
  return p->stop_after != 0 && (int)p->calls >= p->stop_after;
}

static void test_lm_scripted(void) {
  zipp_lm *lm = NULL;
  CHECK(zipp_lm_new(NULL, "{\"scripted\":{\"replies\":[\"a bright red kite over the dunes\"]}}", &lm) == ZIPP_OK,
        "scripted language model");
  struct pieces p = {.thread = pthread_self()};
  char *out = NULL;
  CHECK(zipp_lm_generate(lm, "[{\"role\":\"user\",\"content\":\"a kite\"}]", NULL, collect, &p, NULL, &out) ==
            ZIPP_OK,
        "scripted generation");
  CHECK(contains(out, "\"text\":\"a bright red kite over the dunes\"") && contains(out, "\"finish\":\"end_of_turn\""),
        "the generation's JSON");
  CHECK(strcmp(p.text, "a bright red kite over the dunes") == 0 && p.calls > 1, "pieces concatenate to the text");
  CHECK(p.other_thread == 0, "the callback runs on the calling thread with NUL-terminated pieces");
  zipp_string_free(out);
  char *id = NULL;
  CHECK(zipp_lm_id(lm, &id) == ZIPP_OK && contains(id, "scripted"), "model id");
  zipp_string_free(id);
  out = NULL;
  CHECK(zipp_lm_generate(lm, "[]", NULL, NULL, NULL, NULL, &out) == ZIPP_ERR_INVALID_INPUT && out == NULL,
        "no messages is invalid input");
  CHECK(zipp_lm_generate(lm, "[{\"role\":\"robot\",\"content\":\"x\"}]", NULL, NULL, NULL, NULL, &out) ==
            ZIPP_ERR_SCHEMA,
        "an unknown role is a schema error");
  CHECK(zipp_lm_generate(lm, "[{\"role\":\"user\",\"content\":\"x\"}]", "{\"top_k\":0}", NULL, NULL, NULL, &out) ==
            ZIPP_ERR_INVALID_INPUT,
        "a bad sampling value is invalid input");
  CHECK(zipp_lm_generate(lm, NULL, NULL, NULL, NULL, NULL, &out) == ZIPP_ERR_NULL_POINTER, "NULL messages");
  CHECK(zipp_lm_generate(lm, "[{\"role\":\"user\",\"content\":\"\xff\"}]", NULL, NULL, NULL, NULL, &out) ==
            ZIPP_ERR_INVALID_UTF8,
        "invalid UTF-8");
  zipp_lm_free(lm);
  zipp_lm *bad = NULL;
  CHECK(zipp_lm_new(NULL, "\"gpt9\"", &bad) == ZIPP_ERR_SCHEMA && bad == NULL, "an unknown backend is a schema error");
  CHECK(zipp_lm_new(NULL, "{\"gguf\":{\"path\":\"/nonexistent/m.gguf\"}}", &bad) == ZIPP_ERR_MODEL_NOT_FOUND,
        "a missing GGUF file");
  CHECK(zipp_lm_new(NULL, "\"smollm2\"", &bad) == ZIPP_ERR_NULL_POINTER, "the default model needs a models handle");
  zipp_lm *down = NULL;
  CHECK(zipp_lm_new(NULL,
                    "{\"openai\":{\"base_url\":\"http://127.0.0.1:9/v1\",\"model\":\"m\",\"max_retries\":0,"
                    "\"connect_timeout_ms\":500}}",
                    &down) == ZIPP_OK,
        "an OpenAI-compatible model");
  char *none = NULL;
  CHECK(zipp_lm_generate(down, "[{\"role\":\"user\",\"content\":\"hi\"}]", NULL, NULL, NULL, NULL, &none) ==
                ZIPP_ERR_REMOTE &&
            none == NULL,
        "an unreachable server is ZIPP_ERR_REMOTE");
  zipp_lm_free(down);
  zipp_lm_free(NULL);
}

/* The real SmolLM2: the same seed gives the same text, and both the callback and the cancel
 * flag stop a generation (not under valgrind: a generation there would take minutes). */
static void test_lm_smollm2(const zipp_models *models) {
  zipp_lm *lm = NULL;
  CHECK(zipp_lm_new(models, "\"smollm2\"", &lm) == ZIPP_OK, "SmolLM2 through the models handle");
  const char *msgs = "[{\"role\":\"user\",\"content\":\"Describe a lighthouse in one sentence.\"}]";
  const char *sampling = "{\"temperature\":0.8,\"top_p\":0.9,\"seed\":7,\"max_tokens\":12}";
  char *a = NULL, *b = NULL;
  CHECK(zipp_lm_generate(lm, msgs, sampling, NULL, NULL, NULL, &a) == ZIPP_OK &&
            zipp_lm_generate(lm, msgs, sampling, NULL, NULL, NULL, &b) == ZIPP_OK && strcmp(a, b) == 0,
        "the same seed gives the same generation");
  zipp_string_free(a);
  zipp_string_free(b);
  struct pieces p = {.thread = pthread_self(), .stop_after = 2};
  char *out = NULL;
  CHECK(zipp_lm_generate(lm, msgs, "{\"max_tokens\":64}", collect, &p, NULL, &out) == ZIPP_OK &&
            contains(out, "\"finish\":\"cancelled\"") && p.calls == 2,
        "a non-zero callback return cancels");
  zipp_string_free(out);
  atomic_int cancel = 1;
  out = NULL;
  CHECK(zipp_lm_generate(lm, msgs, "{\"max_tokens\":400}", NULL, NULL, (const int *)&cancel, &out) == ZIPP_OK &&
            contains(out, "\"finish\":\"cancelled\""),
        "the cancel flag cancels");
  zipp_string_free(out);
  zipp_lm_free(lm);
}

/* ViPer extraction and the persona verbalizer, without a model (valgrind-cheap). */
static void test_extract_and_verbalize(void) {
  zipp_extractor *x = NULL;
  CHECK(zipp_extractor_new(NULL, "\"vocabulary\"", &x) == ZIPP_OK, "vocabulary extractor");
  char *out = NULL;
  CHECK(zipp_extract(x, "[\"I love the neon colours\",\"I can't stand the lens flare\"]", &out) == ZIPP_OK &&
            contains(out, "\"liked\":[\"neon colours\"]") && contains(out, "\"disliked\":[\"lens flare\"]"),
        "liked and disliked attributes, with negation");
  zipp_string_free(out);
  out = NULL;
  CHECK(zipp_extract(x, "[]", &out) == ZIPP_ERR_INVALID_INPUT && out == NULL, "no comments is invalid input");
  CHECK(zipp_extract(x, "[1]", &out) == ZIPP_ERR_SCHEMA, "comments are strings");
  CHECK(zipp_extract(x, NULL, &out) == ZIPP_ERR_NULL_POINTER, "NULL comments");
  zipp_extractor_free(x);
  zipp_extractor *bad = NULL;
  CHECK(zipp_extractor_new(NULL, "\"vocab\"", &bad) == ZIPP_ERR_SCHEMA && bad == NULL, "an unknown extractor");

  zipp_verbalizer *v = NULL;
  CHECK(zipp_verbalizer_new(NULL, "\"template\"", &v) == ZIPP_OK, "template verbalizer");
  out = NULL;
  CHECK(zipp_verbalize(v,
                       "{\"user\":\"u1\",\"items\":[{\"kind\":\"community\",\"name\":\"r/analog\",\"weight\":3.0,"
                       "\"snippets\":[\"grainy film portraits at dusk\"]}]}",
                       &out) == ZIPP_OK &&
            contains(out, "\"persona\":{") && contains(out, "r/analog"),
        "a persona from activity evidence");
  zipp_string_free(out);
  out = NULL;
  CHECK(zipp_verbalize(v, "{\"user\":\"u1\",\"items\":[{\"kind\":\"community\",\"name\":\"x\",\"weight\":-1}]}",
                       &out) == ZIPP_ERR_INVALID_INPUT && out == NULL,
        "a negative weight is invalid input");
  zipp_verbalizer_free(v);
}

/* Persona mining progress: counts the epochs and cancels at epoch `stop_at` (0: never). */
struct mining_seen {
  int events, epochs, stop_at, evidence_done;
  double last_loss;
};

static int on_mining(const char *stage, uint64_t done, uint64_t total, double loss, double auc, void *user) {
  (void)total, (void)auc;
  struct mining_seen *seen = (struct mining_seen *)user;
  seen->events++;
  if (strcmp(stage, "evidence") == 0) seen->evidence_done = (int)done;
  if (strcmp(stage, "train") != 0) return 0;
  seen->epochs++;
  seen->last_loss = loss;
  return seen->stop_at != 0 && (int)done >= seen->stop_at;
}

/* Persona mining end to end on a tiny edge file (MiniLM features, a 3-epoch GATv2, the
 * template verbalizer; cheap enough for valgrind), progress, cancellation, typed errors. */
static void test_mine_personas(const zipp_models *models) {
  char dir[] = "/tmp/zipp-c-mine-XXXXXX";
  if (mkdtemp(dir) == NULL) {
    CHECK(0, "mkdtemp for the edge file");
    return;
  }
  char edges[64], spec[512];
  snprintf(edges, sizeof edges, "%s/edges.jsonl", dir);
  FILE *f = fopen(edges, "w");
  if (f == NULL) {
    CHECK(0, "write the edge file");
    return;
  }
  fputs("{\"user\":\"ana\",\"community\":\"analog photography\",\"text\":\"grainy film portraits\"}\n"
        "{\"user\":\"ana\",\"community\":\"film noir\",\"text\":\"hard shadows at night\"}\n"
        "{\"user\":\"bo\",\"community\":\"sourdough baking\",\"text\":\"a crusty loaf\"}\n"
        "{\"user\":\"bo\",\"community\":\"ramen\",\"count\":3}\n"
        "{\"user\":\"cy\",\"community\":\"ramen\"}\n"
        "{\"user\":\"cy\",\"community\":\"film noir\"}\n",
        f);
  fclose(f);
  snprintf(spec, sizeof spec,
           "{\"edges\":[\"%s\"],\"split\":{\"validation\":0,\"test\":0},"
           "\"encoder\":{\"hidden\":8,\"heads\":2,\"out\":8},\"train\":{\"epochs\":3}}",
           edges);

  struct mining_seen seen = {0, 0, 0, 0, 0.0};
  char *out = NULL;
  CHECK(zipp_mine_personas(models, spec, on_mining, &seen, NULL, &out) == ZIPP_OK, "mine personas");
  CHECK(contains(out, "\"user\":\"ana\"") && contains(out, "\"user\":\"bo\"") && contains(out, "\"user\":\"cy\""),
        "a row per user");
  CHECK(contains(out, "\"persona\":{\"id\":\"ana\"") || contains(out, "\"id\":\"ana\""), "ana's persona");
  CHECK(contains(out, "\"name\":\"sourdough baking\""), "evidence names the user's communities");
  CHECK(contains(out, "\"epochs\":3") && contains(out, "\"history\":["), "metrics and history");
  CHECK(seen.epochs == 3 && isfinite(seen.last_loss) && seen.evidence_done == 3, "progress: epochs with a loss, users");
  zipp_string_free(out);

  struct mining_seen stop = {0, 0, 2, 0, 0.0};
  out = NULL;
  CHECK(zipp_mine_personas(models, spec, on_mining, &stop, NULL, &out) == ZIPP_ERR_CANCELLED && out == NULL &&
            stop.epochs == 2,
        "a callback returning non-zero cancels within one epoch");
  atomic_int cancel = 1;
  CHECK(zipp_mine_personas(models, spec, NULL, NULL, (const int *)&cancel, &out) == ZIPP_ERR_CANCELLED,
        "a set cancel flag cancels");

  CHECK(zipp_mine_personas(models, NULL, NULL, NULL, NULL, &out) == ZIPP_ERR_NULL_POINTER, "NULL spec");
  CHECK(zipp_mine_personas(models, spec, NULL, NULL, NULL, NULL) == ZIPP_ERR_NULL_POINTER, "NULL out");
  CHECK(zipp_mine_personas(models, "{\"edges\":[\"\xff\"]}", NULL, NULL, NULL, &out) == ZIPP_ERR_INVALID_UTF8,
        "invalid UTF-8");
  CHECK(zipp_mine_personas(models, "{\"edges\":[\"e.jsonl\"],\"train\":{\"epohcs\":1}}", NULL, NULL, NULL, &out) ==
                ZIPP_ERR_SCHEMA &&
            contains(zipp_last_error_message(), "epohcs"),
        "a misspelt field is a located schema error");
  CHECK(zipp_mine_personas(models, "{\"edges\":[\"/nonexistent/zipp/e.jsonl\"]}", NULL, NULL, NULL, &out) ==
            ZIPP_ERR_IO,
        "a missing edge file is an IO error");
  remove(edges);
  rmdir(dir);
}

/* Graph build progress: counts the reports of each pass (1..3). */
static int on_graph_build(uint32_t pass, uint64_t rows, void *user) {
  (void)rows;
  int *passes = (int *)user;
  if (pass >= 1 && pass <= 3) passes[pass]++;
  return 0;
}

/* A graph built on disk into the PyTorch Geometric layout under a 1 MiB budget: the report,
 * the folder's files, progress per pass, a set cancel flag, typed errors. */
static void test_build_graph(void) {
  char dir[] = "/tmp/zipp-c-build-XXXXXX";
  if (mkdtemp(dir) == NULL) {
    CHECK(0, "mkdtemp for the edge file");
    return;
  }
  char edges[64], out_dir[64], meta[96], snippets[96], spec[512];
  snprintf(edges, sizeof edges, "%s/edges.csv", dir);
  snprintf(out_dir, sizeof out_dir, "%s/export", dir);
  FILE *f = fopen(edges, "w");
  if (f == NULL) {
    CHECK(0, "write the edge file");
    return;
  }
  fputs("user,community,count,text\n"
        "ana,film,,grainy portraits\n"
        "bo,bread,2,\n"
        "ana,film,3,\"at dusk, in the rain\"\n"
        "ana,bread,,\n",
        f);
  fclose(f);
  snprintf(spec, sizeof spec,
           "{\"edges\":[\"%s\"],\"out\":\"%s\",\"memory_budget_mb\":1,"
           "\"split\":{\"validation\":0,\"test\":0.5,\"seed\":1}}",
           edges, out_dir);

  int passes[4] = {0, 0, 0, 0};
  char *out = NULL;
  CHECK(zipp_build_graph(spec, on_graph_build, passes, NULL, &out) == ZIPP_OK, "build a graph on disk");
  CHECK(contains(out, "\"users\":2") && contains(out, "\"edges\":3") && contains(out, "\"rows_read\":4") &&
            contains(out, "\"ranges\":1"),
        "the report counts users, merged edges and rows");
  CHECK(passes[1] == 1 && passes[2] == 1 && passes[3] == 1, "one progress report at the end of each pass");
  zipp_string_free(out);
  snprintf(meta, sizeof meta, "%s/meta.json", out_dir);
  snprintf(snippets, sizeof snippets, "%s/edge_snippets.jsonl", out_dir);
  CHECK(access(meta, F_OK) == 0 && access(snippets, F_OK) == 0, "meta.json and the snippets are written");

  atomic_int cancel = 1;
  out = NULL;
  CHECK(zipp_build_graph(spec, NULL, NULL, (const int *)&cancel, &out) == ZIPP_ERR_CANCELLED && out == NULL,
        "a set cancel flag cancels");
  CHECK(zipp_build_graph(NULL, NULL, NULL, NULL, &out) == ZIPP_ERR_NULL_POINTER, "NULL spec");
  CHECK(zipp_build_graph(spec, NULL, NULL, NULL, NULL) == ZIPP_ERR_NULL_POINTER, "NULL out");
  CHECK(zipp_build_graph("{\"edges\":[\"e.jsonl\"],\"out\":\"x\",\"budget\":1}", NULL, NULL, NULL, &out) ==
                ZIPP_ERR_SCHEMA &&
            contains(zipp_last_error_message(), "budget"),
        "a misspelt field is a located schema error");
  CHECK(zipp_build_graph("{\"edges\":[\"/nonexistent/zipp/e.jsonl\"],\"out\":\"/tmp/zipp-c-never\"}", NULL, NULL,
                         NULL, &out) == ZIPP_ERR_IO,
        "a missing edge file is an IO error");

  const char *names[] = {"meta.json",      "user_rowptr.npy",  "user_col.npy",       "edge_weight.npy",
                         "edge_split.npy", "users.txt",        "communities.jsonl", "edge_snippets.jsonl"};
  char path[128];
  for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
    snprintf(path, sizeof path, "%s/%s", out_dir, names[i]);
    remove(path);
  }
  rmdir(out_dir);
  remove(edges);
  rmdir(dir);
}

/* Image metrics over embeddings (their numpy cross-check is zipp-eval's test). */
static void test_image_metrics(void) {
  const float a[2] = {1.0f, 0.0f}, b[2] = {2.0f, 0.0f}, c[2] = {-1.0f, 0.0f}, zero[2] = {0.0f, 0.0f};
  double s = -1.0;
  CHECK(zipp_clip_score(a, b, 2, 0, &s) == ZIPP_OK && fabs(s - 2.5) < 1e-9, "CLIPScore 2.5 for aligned embeddings");
  CHECK(zipp_clip_score(a, b, 2, 1, &s) == ZIPP_OK && fabs(s - 100.0) < 1e-9, "CLIPScore x100 convention");
  CHECK(zipp_clip_score(a, c, 2, 0, &s) == ZIPP_OK && s == 0.0, "a negative cosine clips to 0");
  CHECK(zipp_clip_score(a, zero, 2, 0, &s) == ZIPP_ERR_INVALID_INPUT, "a zero embedding is invalid input");
  CHECK(zipp_clip_score(NULL, b, 2, 0, &s) == ZIPP_ERR_NULL_POINTER, "NULL embedding");
  const float refs[4] = {1.0f, 0.0f, 0.0f, 1.0f};
  CHECK(zipp_personalization_clip_score(a, refs, 2, 2, &s) == ZIPP_OK && fabs(s - 0.5) < 1e-9,
        "personalization CLIPScore is the mean cosine");
  const float x[6] = {1.0f, 0.0f, 0.2f, 0.9f, 0.1f, 0.0f}, y[6] = {0.0f, 1.0f, 0.0f, 0.1f, 0.0f, 1.0f};
  double same = -1.0, shifted = -1.0;
  CHECK(zipp_cmmd(x, 2, x, 2, 3, &same) == ZIPP_OK && same == 0.0, "CMMD(X, X) = 0");
  CHECK(zipp_cmmd(x, 2, y, 2, 3, &shifted) == ZIPP_OK && shifted > 0.0, "CMMD grows with shift");
  const double counts[4] = {10, 30, 20, 40}, targets[4] = {0.5, 0.5, 0.3, 0.7}, values[4] = {1, 2, 3, 4};
  const size_t dims[2] = {2, 2};
  double w[4] = {0}, agg[3] = {0};
  size_t sweeps = 0;
  CHECK(zipp_rake(counts, dims, 2, targets, values, w, agg, &sweeps) == ZIPP_OK && fabs(w[0] + w[1] - 50.0) < 1e-3 &&
            fabs(w[0] + w[2] - 30.0) < 1e-3 && sweeps > 0 && fabs(agg[0] - 2.9) < 1e-9,
        "raking meets the target marginals; raw aggregate");
  const double bad_targets[4] = {0.5, 0.6, 0.3, 0.7};
  CHECK(zipp_rake(counts, dims, 2, bad_targets, NULL, w, NULL, &sweeps) == ZIPP_ERR_INVALID_INPUT,
        "target shares that do not sum to 1");
}

static int count_steps(uint32_t step, uint32_t total, double timestep, double elapsed_s, void *user) {
  (void)timestep;
  (void)elapsed_s;
  int *n = (int *)user;
  if (step == (uint32_t)(*n + 1) && total >= step) *n += 1;
  return 0;
}

static int cancel_at_first(uint32_t step, uint32_t total, double timestep, double elapsed_s, void *user) {
  (void)step, (void)total, (void)timestep, (void)elapsed_s;
  *(int *)user += 1;
  return 1;
}

/* The image runner on the tiny random SD fixture (zipp-diffusion/tests/fixtures): RGB
 * buffers with stride, progress and cancellation from the callback, image-to-image from a
 * padded buffer, embeddings out and back in, and typed errors. */
static void test_image_generation(void) {
  zipp_image_model *m = NULL;
  CHECK(zipp_image_model_new("\"/nonexistent/sd\"", &m) == ZIPP_ERR_MODEL_NOT_FOUND && m == NULL,
        "a missing model is MODEL_NOT_FOUND");
  if (zipp_image_model_new("{\"path\":\"zipp-diffusion/tests/fixtures/tiny-sd\"}", &m) != ZIPP_OK) {
    CHECK(0, "load the tiny SD fixture");
    return;
  }
  int steps = 0;
  zipp_images *a = NULL, *b = NULL;
  const char *req = "{\"prompt\":\"a photo of a red cat\",\"steps\":3,\"seed\":5}";
  CHECK(zipp_image_generate(m, req, NULL, 0, 0, 0, count_steps, &steps, NULL, &a) == ZIPP_OK && steps == 3,
        "generate with a progress callback per step");
  CHECK(zipp_image_generate(m, req, NULL, 0, 0, 0, NULL, NULL, NULL, &b) == ZIPP_OK, "generate again");
  size_t n = 0, stride = 0;
  uint32_t w = 0, h = 0;
  const uint8_t *pa = NULL, *pb = NULL;
  CHECK(zipp_images_count(a, &n) == ZIPP_OK && n == 1, "one image");
  CHECK(zipp_images_get(a, 0, &pa, &w, &h, &stride) == ZIPP_OK && w == 64 && h == 64 && stride == 192,
        "a 64x64 RGB image");
  CHECK(zipp_images_get(b, 0, &pb, &w, &h, &stride) == ZIPP_OK && memcmp(pa, pb, 64 * 192) == 0,
        "the same seed gives the same bytes");
  CHECK(zipp_images_get(a, 1, &pb, &w, &h, &stride) == ZIPP_ERR_INVALID_INPUT, "index out of range");
  char *info = NULL;
  CHECK(zipp_images_info(a, &info) == ZIPP_OK && contains(info, "\"steps\":3") && contains(info, "\"chunks\":1"),
        "the info JSON says what ran");
  zipp_string_free(info);

  /* Image-to-image from a buffer whose rows carry 4 bytes of padding. */
  uint8_t *padded = (uint8_t *)calloc(64 * 196, 1);
  for (int y = 0; y < 64; y++) memcpy(padded + y * 196, pa + y * 192, 192);
  zipp_images *c = NULL;
  CHECK(zipp_image_generate(m, "{\"prompt\":\"a cat\",\"steps\":4,\"strength\":0.5}", padded, 64, 64, 196, NULL, NULL,
                            NULL, &c) == ZIPP_OK,
        "image-to-image from a strided buffer");
  zipp_images_free(c);
  c = NULL;
  CHECK(zipp_image_generate(m, "{\"prompt\":\"a cat\",\"steps\":4}", padded, 64, 64, 100, NULL, NULL, NULL, &c) ==
                ZIPP_ERR_INVALID_INPUT &&
            c == NULL,
        "a stride shorter than a row");
  free(padded);

  int calls = 0;
  zipp_images *d = NULL;
  CHECK(zipp_image_generate(m, req, NULL, 0, 0, 0, cancel_at_first, &calls, NULL, &d) == ZIPP_ERR_CANCELLED && calls == 1 &&
            d == NULL,
        "a callback returning non-zero cancels within one step");
  int flag = 1;
  CHECK(zipp_image_generate(m, req, NULL, 0, 0, 0, NULL, NULL, &flag, &d) == ZIPP_ERR_CANCELLED,
        "a set cancel flag cancels");
  CHECK(zipp_image_generate(m, "{\"prompt\":\"a cat\",\"width\":100}", NULL, 0, 0, 0, NULL, NULL, NULL, &d) ==
            ZIPP_ERR_INVALID_INPUT,
        "a width that is not a multiple of 8");
  CHECK(zipp_image_generate(m, "{\"prompt\":\"a cat\",\"colour\":1}", NULL, 0, 0, 0, NULL, NULL, NULL, &d) ==
            ZIPP_ERR_SCHEMA,
        "an unknown request field");
  CHECK(zipp_image_generate(m, NULL, NULL, 0, 0, 0, NULL, NULL, NULL, &d) == ZIPP_ERR_NULL_POINTER, "NULL request");

  /* Embeddings out, and back in as the conditioning: the same image. */
  char *cond = NULL;
  if (zipp_image_encode(m, req, &cond) == ZIPP_OK) {
    size_t len = strlen(cond) + 64;
    char *again = (char *)malloc(len);
    snprintf(again, len, "{\"conditioning\":%s,\"steps\":3,\"seed\":5}", cond);
    zipp_images *e = NULL;
    const uint8_t *pe = NULL;
    CHECK(zipp_image_generate(m, again, NULL, 0, 0, 0, NULL, NULL, NULL, &e) == ZIPP_OK &&
              zipp_images_get(e, 0, &pe, &w, &h, &stride) == ZIPP_OK && memcmp(pa, pe, 64 * 192) == 0,
          "conditioning from zipp_image_encode gives the same image");
    zipp_images_free(e);
    free(again);
  } else {
    CHECK(0, "zipp_image_encode");
  }
  zipp_string_free(cond);
  zipp_images_free(a);
  zipp_images_free(b);
  zipp_image_model_free(m);

  /* SDXL from a single original-layout .safetensors file (configs from its folder) makes the
   * folder's image, byte for byte. */
  zipp_image_model *xf = NULL, *xs = NULL;
  zipp_images *ia = NULL, *ib = NULL;
  const char *xreq = "{\"prompt\":\"a photo of a red cat\",\"steps\":2,\"seed\":3}";
  if (zipp_image_model_new("{\"path\":\"zipp-diffusion/tests/fixtures/tiny-sdxl\"}", &xf) == ZIPP_OK &&
      zipp_image_model_new("{\"path\":\"zipp-diffusion/tests/fixtures/tiny-sdxl.safetensors\","
                           "\"config_dir\":\"zipp-diffusion/tests/fixtures/tiny-sdxl\"}",
                           &xs) == ZIPP_OK &&
      zipp_image_generate(xf, xreq, NULL, 0, 0, 0, NULL, NULL, NULL, &ia) == ZIPP_OK &&
      zipp_image_generate(xs, xreq, NULL, 0, 0, 0, NULL, NULL, NULL, &ib) == ZIPP_OK) {
    CHECK(zipp_images_get(ia, 0, &pa, &w, &h, &stride) == ZIPP_OK &&
              zipp_images_get(ib, 0, &pb, &w, &h, &stride) == ZIPP_OK && memcmp(pa, pb, (size_t)h * stride) == 0,
          "single-file SDXL gives the folder's image");
  } else {
    CHECK(0, "load and run single-file SDXL");
  }
  zipp_images_free(ia);
  zipp_images_free(ib);
  zipp_image_model_free(xf);
  zipp_image_model_free(xs);
}

/* A gradient picture (phase k) into `px`, w × h packed RGB. */
static void gradient(uint8_t *px, int w, int h, int k) {
  for (int y = 0; y < h; y++)
    for (int x = 0; x < w; x++) {
      uint8_t *p = px + (y * w + x) * 3;
      p[0] = (uint8_t)((x * 7 + k * 40) % 256);
      p[1] = (uint8_t)((y * 5 + k * 90) % 256);
      p[2] = (uint8_t)(((x + y) * 3 + k * 17) % 256);
    }
}

static double cosine_f(const float *a, const float *b, size_t n) {
  double dot = 0, na = 0, nb = 0;
  for (size_t i = 0; i < n; i++) dot += (double)a[i] * b[i], na += (double)a[i] * a[i], nb += (double)b[i] * b[i];
  return dot / sqrt(na * nb);
}

/* CLIP on the tiny random fixture (zipp-diffusion/tests/fixtures/tiny-clip): RGB buffers
 * with stride, text embeddings, the image scores against their formulas, and the image
 * columns of an evaluation beside a VPTT report. */
static void test_clip(zipp_models *models, const zipp_persona *persona) {
  zipp_clip *clip = (zipp_clip *)&clip; /* garbage the call must clear */
  CHECK(zipp_clip_new("\"/nonexistent/clip\"", &clip) == ZIPP_ERR_MODEL_NOT_FOUND && clip == NULL,
        "a missing CLIP model is MODEL_NOT_FOUND");
  if (zipp_clip_new("{\"path\":\"zipp-diffusion/tests/fixtures/tiny-clip\"}", &clip) != ZIPP_OK) {
    CHECK(0, "load the tiny CLIP fixture");
    return;
  }
  enum { W = 40, H = 32, D = 16, PAD = 8 };
  size_t dim = 0;
  CHECK(zipp_clip_dim(clip, &dim) == ZIPP_OK && dim == D, "CLIP embeddings are 16 wide");
  static uint8_t a[H * W * 3], b[H * W * 3], padded[H * (W * 3 + PAD)];
  gradient(a, W, H, 0);
  gradient(b, W, H, 3);
  memset(padded, 0xAB, sizeof padded);
  for (int y = 0; y < H; y++) memcpy(padded + y * (W * 3 + PAD), a + y * W * 3, W * 3);
  const zipp_rgb_image imgs[2] = {{a, W, H, W * 3}, {padded, W, H, W * 3 + PAD}}, other = {b, W, H, W * 3};
  float e[2 * D], t[D], tt[2 * D];
  CHECK(zipp_clip_image_embeddings(clip, imgs, 2, e, 2 * D) == ZIPP_OK && memcmp(e, e + D, sizeof(float) * D) == 0,
        "a padded buffer embeds as the packed one");
  CHECK(zipp_clip_image_embeddings(clip, imgs, 2, e, 2 * D - 1) == ZIPP_ERR_INVALID_INPUT, "too small an out buffer");
  const zipp_rgb_image short_stride = {a, W, H, 10};
  CHECK(zipp_clip_image_embeddings(clip, &short_stride, 1, e, D) == ZIPP_ERR_INVALID_INPUT,
        "a stride shorter than a row");
  CHECK(zipp_clip_text_embedding(clip, "a photo of a red cat", t, D) == ZIPP_OK, "a text embedding");
  const char *texts[2] = {"a photo of a red cat", "a dog on a beach"};
  CHECK(zipp_clip_text_embeddings(clip, texts, 2, tt, 2 * D) == ZIPP_OK && memcmp(tt, t, sizeof t) == 0,
        "a batch of texts embeds each as alone");
  char long_text[256];
  for (int i = 0; i < 100; i++) memcpy(long_text + 2 * i, "a ", 2);
  long_text[200] = '\0';
  CHECK(zipp_clip_text_embedding(clip, long_text, t, D) == ZIPP_ERR_INVALID_INPUT, "over 77 tokens is refused");
  double s[2] = {-1, -1}, s100[2] = {-1, -1}, x = -1;
  CHECK(zipp_clip_scores(clip, imgs, 2, texts[0], 0, s) == ZIPP_OK &&
            zipp_clip_scores(clip, imgs, 2, texts[0], 1, s100) == ZIPP_OK,
        "CLIPScores of a batch against one prompt");
  double c = cosine_f(e, tt, D);
  CHECK(fabs(s[0] - 2.5 * (c > 0 ? c : 0)) < 1e-5 && fabs(s100[0] - 40.0 * s[0]) < 1e-9 && s[0] == s[1],
        "CLIPScore is 2.5·max(cos, 0); the x100 convention 100·max(cos, 0)");
  CHECK(zipp_clip_score(e, tt, D, 0, &x) == ZIPP_OK && x == s[0], "the same as the embedding-level CLIPScore");
  double p = -1, d = -1;
  CHECK(zipp_clip_personalization_scores(clip, imgs, 1, imgs + 1, 1, &p) == ZIPP_OK && fabs(p - 1.0) < 1e-6,
        "an image against itself as the reference: P-CLIP 1");
  CHECK(zipp_clip_cmmd(clip, imgs, 2, imgs, 1, &d) == ZIPP_OK && d < 1e-9, "CMMD of one image's copies is 0");
  CHECK(zipp_clip_cmmd(clip, imgs, 1, &other, 1, &d) == ZIPP_OK && d > 0.0, "CMMD of different images is > 0");

  /* The image columns of an evaluation: identity renders `other`, vprag the reference. */
  const char *config = "{\"methods\":[\"identity\",\"vprag\"],"
                       "\"queries\":[{\"name\":\"cat\",\"task\":\"generate\",\"prompt\":\"a photo of a red cat\"}]}";
  zipp_image_evaluation *ev = NULL;
  CHECK(zipp_image_evaluation_new(clip, "{\"methods\":[\"nope\"]}", NULL, &ev) == ZIPP_ERR_SCHEMA && ev == NULL,
        "an unknown method is refused");
  if (zipp_image_evaluation_new(clip, config, "{\"cmmd_sample\":64}", &ev) != ZIPP_OK) {
    CHECK(0, "image evaluation");
    zipp_clip_free(clip);
    return;
  }
  zipp_clip_free(clip); /* the evaluation keeps its model */
  char *layout = NULL;
  CHECK(zipp_image_evaluation_layout(ev, &layout) == ZIPP_OK && contains(layout, "\"methods\":[\"identity\",\"vprag\"]"),
        "the cell layout");
  zipp_string_free(layout);
  const zipp_rgb_image cells[3] = {other, imgs[0], imgs[1]};
  const size_t counts[2] = {1, 2};
  char *samples = NULL;
  CHECK(zipp_image_evaluation_add_persona(ev, "ana", imgs, 1, cells, counts, 2, &samples) == ZIPP_OK &&
            contains(samples, "\"method\":\"vprag\",\"images\":2"),
        "a persona's images and references");
  zipp_string_free(samples);
  CHECK(zipp_image_evaluation_add_persona(ev, "bo", NULL, 0, cells, counts, 3, NULL) == ZIPP_ERR_INVALID_INPUT,
        "one count per cell");
  uint64_t n = 0;
  CHECK(zipp_image_evaluation_personas(ev, &n) == ZIPP_OK && n == 1, "a failed persona adds nothing");
  char *report = NULL, *table = NULL;
  CHECK(zipp_image_evaluation_report(ev, &report) == ZIPP_OK && contains(report, "\"personas_with_references\":1"),
        "the image report");
  CHECK(zipp_image_evaluation_table(ev, &table) == ZIPP_OK && contains(table, "| vprag | 1 | 2 |"),
        "the markdown table");
  zipp_string_free(table);

  /* Beside the VPTT columns of a text evaluation of the same query. */
  zipp_evaluation *text = NULL;
  char *vptt = NULL, *both = NULL;
  const char *text_config = "{\"methods\":[\"identity\"],\"queries\":[{\"name\":\"cat\",\"task\":\"generate\","
                            "\"prompt\":\"a photo of a red cat\"}]}";
  if (zipp_evaluation_new(models, text_config, &text) == ZIPP_OK &&
      zipp_evaluation_add_persona(text, persona, NULL) == ZIPP_OK && zipp_evaluation_report(text, &vptt) == ZIPP_OK) {
    CHECK(zipp_image_report_table_beside(report, vptt, &both) == ZIPP_OK &&
              contains(both, "| method | VPTT | VPTT_c | CLIPScore |") && contains(both, "| vprag | — | — |"),
          "image columns beside the VPTT columns");
    zipp_string_free(both);
  } else {
    CHECK(0, "a VPTT report to sit beside");
  }
  CHECK(zipp_image_report_table_beside(vptt, vptt, &both) == ZIPP_ERR_SCHEMA && both == NULL,
        "a VPTT report is not an image report");
  zipp_string_free(vptt);
  zipp_string_free(report);
  zipp_evaluation_free(text);
  zipp_image_evaluation_free(ev);
}

/* The ZIPP rewriter (SPEC §5) with the embedded SmolLM2, through the same JSON spec as Rust
 * and Python (not under valgrind: a generation there would take minutes). */
static void test_zipp_rewrite(const zipp_models *models, const zipp_persona *persona) {
  zipp_personalizer *p = NULL;
  const char *spec = "{\"method\":\"pipeline\",\"name\":\"zipp\",\"retrievers\":[\"persona_facts\"],"
                     "\"composer\":{\"kind\":\"zipp_rewrite\",\"sampling\":{\"max_tokens\":24}}}";
  if (zipp_personalizer_new(models, spec, &p) != ZIPP_OK) {
    CHECK(0, "zipp_rewrite personalizer from its spec");
    return;
  }
  char *out = NULL;
  CHECK(zipp_personalize(p, persona, "{\"prompt\":\"a teal door in Lisbon\",\"seed\":3}", &out) == ZIPP_OK,
        "zipp_rewrite personalizes");
  CHECK(contains(out, "\"rewrite\":{") && contains(out, "\"model\":\"gguf:") && contains(out, "\"outcome\":"),
        "the evidence says what the rewriter did");
  CHECK(contains(out, "Prompt: a teal door in Lisbon"), "the evidence holds the messages sent");
  char *prompt = NULL;
  CHECK(zipp_personalize_prompt(p, persona, "a teal door in Lisbon", &prompt) == ZIPP_OK, "zipp_rewrite prompt");
  CHECK(contains_nocase(prompt, "teal") && contains_nocase(prompt, "door") && contains_nocase(prompt, "lisbon"),
        "the rewrite keeps the prompt's subjects");
  zipp_string_free(prompt);
  zipp_string_free(out);
  zipp_personalizer_free(p);
  zipp_personalizer *bad = NULL;
  CHECK(zipp_personalizer_new(models, "{\"method\":\"pipeline\",\"composer\":{\"kind\":\"zipp_rewrite\",\"strenght\":1}}",
                              &bad) == ZIPP_ERR_SCHEMA && bad == NULL,
        "an unknown rewriter option is a schema error");
}

static void test_end_to_end(const char *personas_path, int quick) {
  zipp_models *models = NULL;
  CHECK(zipp_models_new(NULL, &models) == ZIPP_OK, "default models");
  CHECK(zipp_models_load(models) == ZIPP_OK, "models load (run scripts/provision-models.sh)");
  char *root = NULL;
  CHECK(zipp_models_root(models, &root) == ZIPP_OK && strlen(root) > 0, "models root");
  zipp_string_free(root);

  /* Stream the example personas. */
  zipp_jsonl_reader *reader = NULL;
  CHECK(zipp_jsonl_open(personas_path, &reader) == ZIPP_OK, "open JSONL");
  zipp_persona *personas[16] = {0};
  size_t count = 0;
  for (;;) {
    zipp_persona *p = NULL;
    int32_t s = zipp_jsonl_next(reader, &p);
    CHECK(s == ZIPP_OK, "JSONL record");
    if (s != ZIPP_OK || p == NULL) break;
    if (count < 16) personas[count++] = p;
    else zipp_persona_free(p);
  }
  zipp_jsonl_free(reader);
  CHECK(count == 5, "five example personas");
  if (count < 3) {
    zipp_models_free(models);
    return;
  }
  zipp_persona *tiny = NULL;
  CHECK(zipp_persona_from_json(
            "{\"id\":\"tiny\",\"summary\":\"Ana paints doors.\",\"memory\":["
            "{\"caption\":\"a teal door in Lisbon\",\"elements\":{\"color\":[\"teal\"],\"object\":[\"door\"]}},"
            "{\"caption\":\"orange tiles at dusk\",\"elements\":{\"color\":[\"orange\"],\"lighting\":[\"dusk\"]}},"
            "{\"caption\":\"a tram on a hill\",\"elements\":{\"object\":[\"yellow tram\"]}}]}",
            &tiny) == ZIPP_OK,
        "tiny persona");
  const zipp_persona *subject[3];
  for (int i = 0; i < 3; i++) subject[i] = quick ? tiny : personas[i];

  /* Embeddings: unit vectors; too small a buffer is refused. */
  size_t dim = 0;
  CHECK(zipp_models_dim(models, &dim) == ZIPP_OK && dim == 384, "MiniLM dimension");
  const char *texts[2] = {"a teal door in Lisbon", "an orange tram at dusk"};
  float *vecs = calloc(2 * dim, sizeof(float));
  CHECK(zipp_embed(models, texts, 2, vecs, dim) == ZIPP_ERR_INVALID_INPUT, "short buffer refused");
  CHECK(zipp_embed(models, texts, 2, vecs, 2 * dim) == ZIPP_OK, "embed");
  double n0 = 0, dot = 0;
  for (size_t i = 0; i < dim; i++) {
    n0 += (double)vecs[i] * vecs[i];
    dot += (double)vecs[i] * vecs[dim + i];
  }
  CHECK(fabs(n0 - 1.0) < 1e-4, "unit norm");
  CHECK(dot > 0.0 && dot < 0.99, "different texts, different vectors");
  free(vecs);
  size_t tokens = 0;
  CHECK(zipp_count_tokens(models, "a red bicycle", &tokens) == ZIPP_OK && tokens == 3, "CLIP token count");

  /* Every method through one API. */
  const char *methods[5] = {"identity", "persona_only", "brag", "vprag", "{\"method\":\"combined\",\"brag_k\":2}"};
  const char *base = "a cozy reading corner";
  for (int m = 0; m < 5; m++) {
    zipp_personalizer *pz = NULL;
    CHECK(zipp_personalizer_new(models, methods[m], &pz) == ZIPP_OK, methods[m]);
    char *result = NULL, *prompt = NULL, *text = NULL;
    CHECK(zipp_personalize_prompt(pz, subject[0], base, &result) == ZIPP_OK, "personalize");
    CHECK(zipp_result_prompt(result, &prompt) == ZIPP_OK && strncmp(prompt, base, strlen(base)) == 0,
          "the prompt starts with the base prompt");
    if (m >= 2) CHECK(prompt != NULL && strlen(prompt) > strlen(base), "retrieval adds something");
    CHECK(zipp_explain(result, &text) == ZIPP_OK && text[0] == '[', "explain");
    zipp_string_free(result);
    zipp_string_free(prompt);
    zipp_string_free(text);
    zipp_personalizer_free(pz);
  }

  zipp_personalizer *vprag = NULL;
  CHECK(zipp_personalizer_new(models, "{\"method\":\"vprag\",\"token_budget\":40}", &vprag) == ZIPP_OK, "vprag");
  char *spec = NULL;
  CHECK(zipp_personalizer_spec(vprag, &spec) == ZIPP_OK && contains(spec, "\"token_budget\":40"), "spec");
  zipp_string_free(spec);
  char *batch = NULL;
  CHECK(zipp_personalize_batch(vprag, subject[1], "[\"a harbour at noon\",{\"prompt\":\"my kitchen\",\"task\":\"edit\"}]",
                               &batch) == ZIPP_OK,
        "batch");
  CHECK(contains(batch, "\"content_budget\":38"), "token budget applied");
  zipp_string_free(batch);
  char *bad = NULL;
  CHECK(zipp_personalize(vprag, subject[1], "{\"prompt\":\"\"}", &bad) == ZIPP_ERR_INVALID_INPUT, "empty prompt");
  CHECK(zipp_personalize(vprag, subject[1], "{\"promt\":\"x\"}", &bad) == ZIPP_ERR_SCHEMA, "misspelt field");

  /* Many threads, one personalizer, one persona: same answer as one thread. */
  char *expected = NULL;
  const char *prompt = "a portrait of a person in a park at dusk";
  CHECK(zipp_personalize_prompt(vprag, subject[2], prompt, &expected) == ZIPP_OK, "reference result");
  enum { THREADS = 8 };
  pthread_t threads[THREADS];
  struct job jobs[THREADS];
  for (int t = 0; t < THREADS; t++) {
    jobs[t] = (struct job){vprag, subject[2], prompt, expected, quick ? 1 : 25, 0};
    CHECK(pthread_create(&threads[t], NULL, personalize_many, &jobs[t]) == 0, "thread start");
  }
  int mismatches = 0;
  for (int t = 0; t < THREADS; t++) {
    pthread_join(threads[t], NULL);
    mismatches += jobs[t].mismatches;
  }
  CHECK(mismatches == 0, "concurrent results equal the single-thread result");

  /* fork() after the pool has been used: the child personalizes and gets the same answer. */
  struct fork_personalize job = {vprag, subject[2], prompt, expected};
  check_in_forked_child(personalize_matches, &job, 300, "personalizes as the parent did");
  zipp_string_free(expected);

  if (quick) {
    test_evaluation(models, tiny, "a teal door in Lisbon", (const zipp_persona *const[]){tiny}, 1, quick);
  } else {
    test_evaluation(models, tiny, "a teal door in Lisbon", (const zipp_persona *const *)personas, count, quick);
    test_benches(models);
    test_zipp_rewrite(models, personas[0]);
    test_lm_smollm2(models);
  }
  test_lm_scripted();
  test_extract_and_verbalize();
  test_mine_personas(models);
  test_build_graph();
  test_image_metrics();
  test_image_generation();
  test_clip(models, tiny);

  zipp_personalizer_free(vprag);
  zipp_persona_free(tiny);
  for (size_t i = 0; i < count; i++) zipp_persona_free(personas[i]);
  zipp_models_free(models);
}

/* The candle path (force_candle) in a forked child: every candle computation runs in zipp's
 * per-process pool (zipp_core::runtime::compute), so a child forked after the parent used it
 * embeds the same vectors instead of waiting on a pool whose threads it does not have. A
 * child that hangs is killed by alarm() and fails the check. */
static void test_fork_on_the_candle_path(void) {
  zipp_models *m = NULL;
  CHECK(zipp_models_new_with_options(NULL, "{\"force_candle\": true, \"nope\": 1}", &m) == ZIPP_ERR_SCHEMA && m == NULL,
        "unknown models option is a schema error, before loading");
  CHECK(zipp_models_new_with_options(NULL, "{\"batch_size\": 0}", &m) == ZIPP_ERR_INVALID_INPUT && m == NULL,
        "batch_size 0 is invalid input, before loading");
  if (zipp_models_new_with_options(NULL, "{\"force_candle\": true}", &m) != ZIPP_OK) {
    CHECK(0, "models with force_candle");
    return;
  }
  const char *texts[2] = {"a red bicycle leaning on a blue wall",
                          "morning light over the harbour, long exposure, fishing boats and gulls"};
  enum { N = 2, DIM = 384 };
  static float want[N * DIM], got[N * DIM];
  CHECK(zipp_embed(m, texts, N, want, N * DIM) == ZIPP_OK, "candle-path embedding in the parent");
  struct fork_embed job = {m, texts, N, got, want, sizeof want};
  check_in_forked_child(embed_matches, &job, 120, "the candle path embeds the parent's vectors");
  zipp_models_free(m);
}

int main(int argc, char **argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: %s PERSONAS.jsonl [--quick]\n", argv[0]);
    return 2;
  }
  int quick = argc > 2 && strcmp(argv[2], "--quick") == 0;
  test_library();
  test_bad_input();
  test_stats();
  test_end_to_end(argv[1], quick);
  if (!quick) test_fork_on_the_candle_path(); /* not under valgrind: candle's path is ~30x slower there */
  printf("c tests: %d passed, %d failed\n", passed, failed);
  return failed == 0 ? 0 : 1;
}
