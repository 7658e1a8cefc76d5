// zipp.hpp — a header-only C++17 wrapper over the C ABI in zipp.h (RAII handles, exceptions).
//
//   zipp::Models models;                                   // default models dir
//   zipp::Personalizer vprag(models, "vprag");             // or a JSON spec
//   zipp::Persona ana = zipp::Persona::load("ana.json");
//   zipp::Result r = vprag.personalize(ana, "a portrait in the park");
//   std::cout << r.prompt() << "\n" << r.explain() << "\n";
//
//   zipp::Scorer scorer(models, ana);                      // VPTT score against a persona
//   std::string score_json = scorer.score(r.prompt());     // {"pa": …, "vptt": …}
//   zipp::Evaluation ev(models);                           // 5 methods × 4 VPTT queries
//   ev.add(ana);
//   std::cout << ev.table();
//   double p = zipp::stats::binomial_test(61, 100);
//   zipp::SyntheticBench bench(R"({"personas":100})");    // or zipp::MovieLens ml;
//   for (std::size_t i = 0; i < bench.size(); ++i) ev.add(bench.persona(i));
//
// Handles are reference-counted: copy them freely and share them across threads (the C
// library is thread-safe for them; an Evaluation serialises its calls). Every failure throws
// zipp::Error with the status and the library's message.
#ifndef ZIPP_HPP
#define ZIPP_HPP

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <functional>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "zipp.h"

namespace zipp {

// A failed zipp call: the status and zipp_last_error_message().
class Error : public std::runtime_error {
 public:
  Error(int32_t status, const std::string &message) : std::runtime_error(message), status_(status) {}
  // A zipp_status value (compare with ZIPP_ERR_...); a newer libzipp may return codes this
  // header does not name.
  int32_t status() const noexcept { return status_; }
  const char *status_name() const noexcept { return zipp_status_name(status_); }

 private:
  int32_t status_;
};

namespace detail {
inline void check(int32_t s) {
  if (s != ZIPP_OK) {
    const char *m = zipp_last_error_message();
    throw Error(s, m != nullptr ? m : zipp_status_name(s));
  }
}
struct StringFree {
  void operator()(char *s) const noexcept { zipp_string_free(s); }
};
// Takes ownership of a string returned by zipp.
inline std::string take(char *s) {
  std::unique_ptr<char, StringFree> owned(s);
  return s != nullptr ? std::string(s) : std::string();
}
}  // namespace detail

// The shared models (MiniLM, CLIP tokenizer), loaded lazily.
class Models {
 public:
  // `root` empty: the default directory ($ZIPP_MODELS_DIR or ~/.cache/zipp/models).
  // `options_json` empty: the defaults; else {"max_tokens", "batch_size", "force_candle",
  // "kernel"} (see zipp_models_new_with_options), checked before anything loads.
  explicit Models(const std::string &root = std::string(), const std::string &options_json = std::string()) {
    zipp_models *h = nullptr;
    detail::check(zipp_models_new_with_options(root.empty() ? nullptr : root.c_str(),
                                               options_json.empty() ? nullptr : options_json.c_str(), &h));
    handle_.reset(h, zipp_models_free);
  }
  // Loads every model now (reports a missing file up front).
  void load() const { detail::check(zipp_models_load(get())); }
  std::string root() const {
    char *s = nullptr;
    detail::check(zipp_models_root(get(), &s));
    return detail::take(s);
  }
  std::size_t dim() const {
    std::size_t d = 0;
    detail::check(zipp_models_dim(get(), &d));
    return d;
  }
  // Row-major texts.size() × dim() unit vectors.
  std::vector<float> embed(const std::vector<std::string> &texts) const {
    if (texts.empty()) return {};
    std::vector<const char *> ptrs;
    ptrs.reserve(texts.size());
    for (const auto &t : texts) ptrs.push_back(t.c_str());
    std::vector<float> out(texts.size() * dim());
    detail::check(zipp_embed(get(), ptrs.data(), ptrs.size(), out.data(), out.size()));
    return out;
  }
  std::size_t count_tokens(const std::string &text) const {
    std::size_t n = 0;
    detail::check(zipp_count_tokens(get(), text.c_str(), &n));
    return n;
  }
  const zipp_models *get() const noexcept { return handle_.get(); }

 private:
  std::shared_ptr<zipp_models> handle_;
};

// A chat language model: "\"smollm2\"" (the embedded default, through `models`),
// {"gguf":{"path":...}} or {"scripted":{"replies":[...]}} (see zipp_lm_new).
class LanguageModel {
 public:
  LanguageModel(const Models &models, const std::string &spec = "\"smollm2\"") : LanguageModel(models.get(), spec) {}
  // A spec that needs no models handle (gguf, scripted).
  explicit LanguageModel(const std::string &spec) : LanguageModel(nullptr, spec) {}
  std::string id() const {
    char *s = nullptr;
    detail::check(zipp_lm_id(get(), &s));
    return detail::take(s);
  }
  // The generation's JSON ({"text","finish","prompt_tokens","completion_tokens"}) for the
  // messages' JSON. `on_text` (optional) receives each piece on this thread; returning false
  // cancels. `cancel` (optional) cancels when set to non-zero from any thread. An exception
  // thrown by `on_text` cancels the generation and is rethrown here.
  std::string generate(const std::string &messages_json, const std::string &sampling_json = std::string(),
                       const std::function<bool(std::string_view)> &on_text = {},
                       const std::atomic<int> *cancel = nullptr) const {
    static_assert(sizeof(std::atomic<int>) == sizeof(int), "std::atomic<int> is laid out as an int");
    struct Ctx {
      const std::function<bool(std::string_view)> *f;
      std::exception_ptr error;
    } ctx{&on_text, nullptr};
    auto trampoline = [](const char *piece, std::size_t len, void *user) -> int {
      auto *c = static_cast<Ctx *>(user);
      try {
        return (*c->f)(std::string_view(piece, len)) ? 0 : 1;
      } catch (...) {
        c->error = std::current_exception();
        return 1;
      }
    };
    char *s = nullptr;
    int32_t status = zipp_lm_generate(get(), messages_json.c_str(), sampling_json.empty() ? nullptr : sampling_json.c_str(),
                                      on_text ? +trampoline : nullptr, &ctx,
                                      reinterpret_cast<const int *>(cancel), &s);
    if (ctx.error) {
      zipp_string_free(s);
      std::rethrow_exception(ctx.error);
    }
    detail::check(status);
    return detail::take(s);
  }
  const zipp_lm *get() const noexcept { return handle_.get(); }

 private:
  LanguageModel(const zipp_models *models, const std::string &spec) {
    zipp_lm *h = nullptr;
    detail::check(zipp_lm_new(models, spec.c_str(), &h));
    handle_.reset(h, zipp_lm_free);
  }
  std::shared_ptr<zipp_lm> handle_;
};

// Mines personas from an activity graph (zipp_mine_personas): the result's JSON
// ({"personas", "metrics", "history", "graph"}) for the spec's JSON ({"edges": [...], ...}).
// `on_progress(stage, done, total, loss, auc)` (optional; loss and auc NaN where they do not
// apply) runs on this thread; returning false cancels (zipp::Error with ZIPP_ERR_CANCELLED),
// as does `cancel` set to non-zero from any thread. An exception thrown by `on_progress`
// cancels and is rethrown here.
inline std::string mine_personas(
    const Models &models, const std::string &spec_json,
    const std::function<bool(std::string_view, uint64_t, uint64_t, double, double)> &on_progress = {},
    const std::atomic<int> *cancel = nullptr) {
  static_assert(sizeof(std::atomic<int>) == sizeof(int), "std::atomic<int> is laid out as an int");
  struct Ctx {
    const std::function<bool(std::string_view, uint64_t, uint64_t, double, double)> *f;
    std::exception_ptr error;
  } ctx{&on_progress, nullptr};
  auto trampoline = [](const char *stage, uint64_t done, uint64_t total, double loss, double auc, void *user) -> int {
    auto *c = static_cast<Ctx *>(user);
    try {
      return (*c->f)(std::string_view(stage), done, total, loss, auc) ? 0 : 1;
    } catch (...) {
      c->error = std::current_exception();
      return 1;
    }
  };
  char *s = nullptr;
  int32_t status = zipp_mine_personas(models.get(), spec_json.c_str(), on_progress ? +trampoline : nullptr, &ctx,
                                      reinterpret_cast<const int *>(cancel), &s);
  if (ctx.error) {
    zipp_string_free(s);
    std::rethrow_exception(ctx.error);
  }
  detail::check(status);
  return detail::take(s);
}

// Builds an activity graph into a folder in PyTorch Geometric's layout in bounded memory
// (zipp_build_graph): the report's JSON ({"out", "load", "ranges", ...}) for the spec's JSON
// ({"edges": [...], "out": "...", "memory_budget_mb": 1024, ...}). `on_progress(pass, rows)`
// (optional) runs on this thread; returning false cancels (zipp::Error with
// ZIPP_ERR_CANCELLED), as does `cancel` set to non-zero from any thread. An exception thrown
// by `on_progress` cancels and is rethrown here.
inline std::string build_graph(const std::string &spec_json,
                               const std::function<bool(uint32_t, uint64_t)> &on_progress = {},
                               const std::atomic<int> *cancel = nullptr) {
  static_assert(sizeof(std::atomic<int>) == sizeof(int), "std::atomic<int> is laid out as an int");
  struct Ctx {
    const std::function<bool(uint32_t, uint64_t)> *f;
    std::exception_ptr error;
  } ctx{&on_progress, nullptr};
  auto trampoline = [](uint32_t pass, uint64_t rows, void *user) -> int {
    auto *c = static_cast<Ctx *>(user);
    try {
      return (*c->f)(pass, rows) ? 0 : 1;
    } catch (...) {
      c->error = std::current_exception();
      return 1;
    }
  };
  char *s = nullptr;
  int32_t status = zipp_build_graph(spec_json.c_str(), on_progress ? +trampoline : nullptr, &ctx,
                                    reinterpret_cast<const int *>(cancel), &s);
  if (ctx.error) {
    zipp_string_free(s);
    std::rethrow_exception(ctx.error);
  }
  detail::check(status);
  return detail::take(s);
}

// One RGB image a generation returned: `width * height` pixels of 3 bytes, rows `stride`
// bytes apart, owned by the Images it came from.
struct ImageView {
  const uint8_t *rgb;
  uint32_t width;
  uint32_t height;
  std::size_t stride;
};

// The images of one generation. `info()` is the JSON of what the request resolved to.
class Images {
 public:
  std::size_t size() const {
    std::size_t n = 0;
    detail::check(zipp_images_count(get(), &n));
    return n;
  }
  ImageView operator[](std::size_t i) const {
    ImageView v{nullptr, 0, 0, 0};
    detail::check(zipp_images_get(get(), i, &v.rgb, &v.width, &v.height, &v.stride));
    return v;
  }
  std::string info() const {
    char *s = nullptr;
    detail::check(zipp_images_info(get(), &s));
    return detail::take(s);
  }
  const zipp_images *get() const noexcept { return handle_.get(); }

 private:
  friend class ImageModel;
  explicit Images(zipp_images *h) : handle_(h, zipp_images_free) {}
  std::shared_ptr<zipp_images> handle_;
};

// A Stable Diffusion model (SD 1.x, 2.x, XL, Turbo): `spec` is the JSON of zipp_image_model_new
// (a quoted path, or {"path": ..., "taesd": ..., "dtype": ..., "device": ...}).
class ImageModel {
 public:
  explicit ImageModel(const std::string &spec) {
    zipp_image_model *h = nullptr;
    detail::check(zipp_image_model_new(spec.c_str(), &h));
    handle_.reset(h, zipp_image_model_free);
  }
  std::string id() const {
    char *s = nullptr;
    detail::check(zipp_image_model_id(get(), &s));
    return detail::take(s);
  }
  // Generates for the request's JSON (zipp_image_generate). `init` (optional) makes it
  // image-to-image. `on_step(step, total)` (optional) runs on this thread after each step;
  // returning false cancels (zipp::Error with ZIPP_ERR_CANCELLED), as does `cancel` set to
  // non-zero from any thread. An exception thrown by `on_step` cancels and is rethrown here.
  Images generate(const std::string &request_json, const ImageView *init = nullptr,
                  const std::function<bool(uint32_t, uint32_t)> &on_step = {},
                  const std::atomic<int> *cancel = nullptr) const {
    static_assert(sizeof(std::atomic<int>) == sizeof(int), "std::atomic<int> is laid out as an int");
    struct Ctx {
      const std::function<bool(uint32_t, uint32_t)> *f;
      std::exception_ptr error;
    } ctx{&on_step, nullptr};
    auto trampoline = [](uint32_t step, uint32_t total, double, double, void *user) -> int {
      auto *c = static_cast<Ctx *>(user);
      try {
        return (*c->f)(step, total) ? 0 : 1;
      } catch (...) {
        c->error = std::current_exception();
        return 1;
      }
    };
    zipp_images *out = nullptr;
    int32_t status = zipp_image_generate(get(), request_json.c_str(), init ? init->rgb : nullptr,
                                         init ? init->width : 0, init ? init->height : 0, init ? init->stride : 0,
                                         on_step ? +trampoline : nullptr, &ctx, reinterpret_cast<const int *>(cancel),
                                         &out);
    if (ctx.error) {
      zipp_images_free(out);
      std::rethrow_exception(ctx.error);
    }
    detail::check(status);
    return Images(out);
  }
  // The conditioning JSON a request would use (embeddings out; pass it back as "conditioning").
  std::string encode(const std::string &request_json) const {
    char *s = nullptr;
    detail::check(zipp_image_encode(get(), request_json.c_str(), &s));
    return detail::take(s);
  }
  const zipp_image_model *get() const noexcept { return handle_.get(); }

 private:
  std::shared_ptr<zipp_image_model> handle_;
};

// An immutable persona with its cached memory index.
class Persona {
 public:
  static Persona from_json(const std::string &json) {
    zipp_persona *h = nullptr;
    detail::check(zipp_persona_from_json(json.c_str(), &h));
    return Persona(h);
  }
  static Persona load(const std::string &path) {
    zipp_persona *h = nullptr;
    detail::check(zipp_persona_load(path.c_str(), &h));
    return Persona(h);
  }
  std::string id() const {
    char *s = nullptr;
    detail::check(zipp_persona_id(get(), &s));
    return detail::take(s);
  }
  std::string to_json(bool pretty = false) const {
    char *s = nullptr;
    detail::check(zipp_persona_to_json(get(), pretty ? 1 : 0, &s));
    return detail::take(s);
  }
  const zipp_persona *get() const noexcept { return handle_.get(); }

 private:
  friend class JsonlReader;
  friend class SyntheticBench;
  friend class MovieLens;
  explicit Persona(zipp_persona *h) : handle_(h, zipp_persona_free) {}
  std::shared_ptr<zipp_persona> handle_;
};

// Streams personas from a JSONL file. Move-only; one thread at a time.
class JsonlReader {
 public:
  explicit JsonlReader(const std::string &path) {
    zipp_jsonl_reader *h = nullptr;
    detail::check(zipp_jsonl_open(path.c_str(), &h));
    handle_.reset(h);
  }
  // The next persona, or nothing at the end of the file.
  std::optional<Persona> next() {
    zipp_persona *p = nullptr;
    detail::check(zipp_jsonl_next(handle_.get(), &p));
    if (p == nullptr) return std::nullopt;
    return Persona(p);
  }

 private:
  struct Free {
    void operator()(zipp_jsonl_reader *r) const noexcept { zipp_jsonl_free(r); }
  };
  std::unique_ptr<zipp_jsonl_reader, Free> handle_;
};

inline std::vector<Persona> read_jsonl(const std::string &path) {
  std::vector<Persona> all;
  JsonlReader reader(path);
  while (auto p = reader.next()) all.push_back(std::move(*p));
  return all;
}

// One personalization: the full JSON (prompt, evidence) with accessors.
class Result {
 public:
  explicit Result(std::string json) : json_(std::move(json)) {}
  const std::string &json() const noexcept { return json_; }
  // The personalized prompt, for the text-to-image model.
  std::string prompt() const {
    char *s = nullptr;
    detail::check(zipp_result_prompt(json_.c_str(), &s));
    return detail::take(s);
  }
  // Human-readable lines: the prompt and the evidence behind it.
  std::string explain() const {
    char *s = nullptr;
    detail::check(zipp_explain(json_.c_str(), &s));
    return detail::take(s);
  }

 private:
  std::string json_;
};

// A personalization method, from a bare name ("vprag") or a JSON spec.
class Personalizer {
 public:
  Personalizer(const Models &models, const std::string &spec) {
    zipp_personalizer *h = nullptr;
    detail::check(zipp_personalizer_new(models.get(), spec.c_str(), &h));
    handle_.reset(h, zipp_personalizer_free);
  }
  Result personalize(const Persona &persona, const std::string &prompt) const {
    char *s = nullptr;
    detail::check(zipp_personalize_prompt(get(), persona.get(), prompt.c_str(), &s));
    return Result(detail::take(s));
  }
  // `request_json`: {"prompt": ..., "task": "edit", "token_budget": 77, ...}.
  Result personalize_request(const Persona &persona, const std::string &request_json) const {
    char *s = nullptr;
    detail::check(zipp_personalize(get(), persona.get(), request_json.c_str(), &s));
    return Result(detail::take(s));
  }
  // A JSON array of requests in, a JSON array of results out.
  std::string personalize_batch(const Persona &persona, const std::string &requests_json) const {
    char *s = nullptr;
    detail::check(zipp_personalize_batch(get(), persona.get(), requests_json.c_str(), &s));
    return detail::take(s);
  }
  std::string spec() const {
    char *s = nullptr;
    detail::check(zipp_personalizer_spec(get(), &s));
    return detail::take(s);
  }
  const zipp_personalizer *get() const noexcept { return handle_.get(); }

 private:
  std::shared_ptr<zipp_personalizer> handle_;
};

// A seeded synthetic persona bench (VPTT-Bench's shape); persona i is generated on demand.
class SyntheticBench {
 public:
  // `options_json` empty: the defaults (10,000 personas); else e.g. {"seed":3,"personas":100}.
  // `vocabulary_dir` empty: the provisioned clip-interrogator phrase lists.
  explicit SyntheticBench(const std::string &options_json = std::string(),
                          const std::string &vocabulary_dir = std::string()) {
    zipp_synthetic_bench *h = nullptr;
    detail::check(zipp_synthetic_bench_new(vocabulary_dir.empty() ? nullptr : vocabulary_dir.c_str(),
                                           options_json.empty() ? nullptr : options_json.c_str(), &h));
    handle_.reset(h, zipp_synthetic_bench_free);
  }
  std::size_t size() const {
    std::size_t n = 0;
    detail::check(zipp_synthetic_bench_len(handle_.get(), &n));
    return n;
  }
  Persona persona(std::size_t i) const {
    zipp_persona *p = nullptr;
    detail::check(zipp_synthetic_bench_persona(handle_.get(), i, &p));
    return Persona(p);
  }

 private:
  std::shared_ptr<zipp_synthetic_bench> handle_;
};

// MovieLens 100K: one persona per user (the data may not be redistributed).
class MovieLens {
 public:
  // `dir` empty: the provisioned movielens-100k folder.
  explicit MovieLens(const std::string &dir = std::string()) {
    zipp_movielens *h = nullptr;
    detail::check(zipp_movielens_load(dir.empty() ? nullptr : dir.c_str(), &h));
    handle_.reset(h, zipp_movielens_free);
  }
  std::size_t users() const { return count(zipp_movielens_users); }
  std::size_t movies() const { return count(zipp_movielens_movies); }
  std::size_t ratings() const { return count(zipp_movielens_ratings); }
  // `options_json` empty: the defaults; else e.g. {"max_posts":10,"min_rating":4}.
  Persona persona(std::size_t i, const std::string &options_json = std::string()) const {
    zipp_persona *p = nullptr;
    detail::check(zipp_movielens_persona(handle_.get(), i, options_json.empty() ? nullptr : options_json.c_str(), &p));
    return Persona(p);
  }

 private:
  std::size_t count(int32_t (*f)(const zipp_movielens *, std::size_t *)) const {
    std::size_t n = 0;
    detail::check(f(handle_.get(), &n));
    return n;
  }
  std::shared_ptr<zipp_movielens> handle_;
};

// The VPTT scoring state of one persona (SPEC §4), built once, reused for every prompt.
// Scores are JSON objects: {"pa", "gs", "cp", "cp_soft", "nv", "nv_soft", "vptt", "vptt_c"}.
class Scorer {
 public:
  // `options_json` empty: the defaults; else e.g. {"novelty":"soft","clusters":3}.
  Scorer(const Models &models, const Persona &persona, const std::string &options_json = std::string()) {
    zipp_scorer *h = nullptr;
    detail::check(zipp_scorer_new(models.get(), persona.get(),
                                  options_json.empty() ? nullptr : options_json.c_str(), &h));
    handle_.reset(h, zipp_scorer_free);
  }
  // One prompt's score as JSON.
  std::string score(const std::string &prompt) const {
    char *s = nullptr;
    detail::check(zipp_scorer_score(get(), prompt.c_str(), &s));
    return detail::take(s);
  }
  // A JSON array of prompts in, a JSON array of scores out.
  std::string score_batch(const std::string &prompts_json) const {
    char *s = nullptr;
    detail::check(zipp_scorer_score_batch(get(), prompts_json.c_str(), &s));
    return detail::take(s);
  }
  std::size_t rank() const {
    std::size_t n = 0;
    detail::check(zipp_scorer_rank(get(), &n));
    return n;
  }
  std::size_t clusters() const {
    std::size_t n = 0;
    detail::check(zipp_scorer_clusters(get(), &n));
    return n;
  }
  const zipp_scorer *get() const noexcept { return handle_.get(); }

 private:
  std::shared_ptr<zipp_scorer> handle_;
};

// A streaming evaluation (methods × personas × queries → VPTT tables). Thread-safe: calls
// on one evaluation are serialised inside the library.
class Evaluation {
 public:
  // `config_json` empty: the five methods on the four VPTT queries; else e.g.
  // {"methods":["identity","vprag"],"queries":"extended","options":{"novelty":"measured"}}.
  explicit Evaluation(const Models &models, const std::string &config_json = std::string()) {
    zipp_evaluation *h = nullptr;
    detail::check(zipp_evaluation_new(models.get(), config_json.empty() ? nullptr : config_json.c_str(), &h));
    handle_.reset(h, zipp_evaluation_free);
  }
  // Adds a persona; returns its samples as a JSON array.
  std::string add_persona(const Persona &persona) {
    char *s = nullptr;
    detail::check(zipp_evaluation_add_persona(handle_.get(), persona.get(), &s));
    return detail::take(s);
  }
  // Adds a persona, dropping its samples.
  void add(const Persona &persona) {
    detail::check(zipp_evaluation_add_persona(handle_.get(), persona.get(), nullptr));
  }
  std::uint64_t personas() const {
    std::uint64_t n = 0;
    detail::check(zipp_evaluation_personas(get(), &n));
    return n;
  }
  // The report so far as JSON.
  std::string report_json() const {
    char *s = nullptr;
    detail::check(zipp_evaluation_report(get(), &s));
    return detail::take(s);
  }
  // The configuration it was built from (defaults filled in) as JSON.
  std::string config_json() const {
    char *s = nullptr;
    detail::check(zipp_evaluation_config(get(), &s));
    return detail::take(s);
  }
  // The report so far as text tables.
  std::string table() const {
    char *s = nullptr;
    detail::check(zipp_evaluation_table(get(), &s));
    return detail::take(s);
  }
  // The aggregates so far as JSON (exact, mergeable in any order with other shards').
  std::string aggregate_json() const {
    char *s = nullptr;
    detail::check(zipp_evaluation_aggregate(get(), &s));
    return detail::take(s);
  }
  // Adds another shard's aggregates (same config) to this evaluation's.
  void merge(const std::string &aggregate_json) {
    detail::check(zipp_evaluation_merge(handle_.get(), aggregate_json.c_str()));
  }
  const zipp_evaluation *get() const noexcept { return handle_.get(); }

 private:
  std::shared_ptr<zipp_evaluation> handle_;
};

// The text tables of a report read back from JSON.
inline std::string report_table(const std::string &report_json) {
  char *s = nullptr;
  detail::check(zipp_report_table(report_json.c_str(), &s));
  return detail::take(s);
}

// Merges shards' aggregates (JSON from Evaluation::aggregate_json) into one; no model needed.
inline std::string merge_aggregates(const std::vector<std::string> &aggregates_json) {
  std::vector<const char *> ptrs;
  ptrs.reserve(aggregates_json.size());
  for (const auto &a : aggregates_json) ptrs.push_back(a.c_str());
  char *s = nullptr;
  detail::check(zipp_aggregate_merge(ptrs.data(), ptrs.size(), &s));
  return detail::take(s);
}

// The report (JSON) of an aggregate; report_table renders it as text.
inline std::string aggregate_report_json(const std::string &aggregate_json) {
  char *s = nullptr;
  detail::check(zipp_aggregate_report(aggregate_json.c_str(), &s));
  return detail::take(s);
}

// Statistics (SPEC §9); bad input throws zipp::Error (ZIPP_ERR_INVALID_INPUT).
namespace stats {
inline double mean(const std::vector<double> &xs) {
  double out = 0;
  detail::check(zipp_stats_mean(xs.data(), xs.size(), &out));
  return out;
}
// Cohen's d with the pooled s.d.; nothing when undefined (a group of fewer than 2 values,
// two constant groups with equal means, a NaN/inf value).
inline std::optional<double> cohens_d(const std::vector<double> &a, const std::vector<double> &b) {
  double out = 0;
  detail::check(zipp_stats_cohens_d(a.data(), a.size(), b.data(), b.size(), &out));
  if (out != out) return std::nullopt;  // NaN
  return out;
}
inline double binomial_test(std::uint64_t k, std::uint64_t n, double p = 0.5) {
  double out = 0;
  detail::check(zipp_stats_binomial_test(k, n, p, &out));
  return out;
}
inline std::pair<double, double> wilson_interval(std::uint64_t k, std::uint64_t n, double confidence = 0.95) {
  double lo = 0, hi = 0;
  detail::check(zipp_stats_wilson_interval(k, n, confidence, &lo, &hi));
  return {lo, hi};
}
inline std::vector<double> average_ranks(const std::vector<double> &xs) {
  std::vector<double> out(xs.size());
  detail::check(zipp_stats_average_ranks(xs.data(), xs.size(), out.data()));
  return out;
}
inline double spearman(const std::vector<double> &x, const std::vector<double> &y) {
  if (x.size() != y.size()) {
    throw Error(ZIPP_ERR_INVALID_INPUT, "spearman: x has " + std::to_string(x.size()) + " values, y has " +
                                            std::to_string(y.size()));
  }
  double out = 0;
  detail::check(zipp_stats_spearman(x.data(), y.data(), x.size(), &out));
  return out;
}
}  // namespace stats

}  // namespace zipp

#endif  // ZIPP_HPP
