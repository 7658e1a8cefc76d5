// zipp.hpp — a header-only C++17 wrapper over the C ABI in zipp.h (RAII handles, exceptions).
//
//   zipp::Models models;                                   // default models dir
//   zipp::Personalizer vprag(models, "vprag");             // or a JSON spec
//   zipp::Persona ana = zipp::Persona::load("ana.json");
//   zipp::Result r = vprag.personalize(ana, "a portrait in the park");
//   std::cout << r.prompt() << "\n" << r.explain() << "\n";
//
// Handles are reference-counted and immutable: copy them freely and share them across
// threads (the C library is thread-safe for them). Every failure throws zipp::Error with the
// status and the library's message.
#ifndef ZIPP_HPP
#define ZIPP_HPP

#include <cstddef>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
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
  explicit Models(const std::string &root = std::string()) {
    zipp_models *h = nullptr;
    detail::check(zipp_models_new(root.empty() ? nullptr : root.c_str(), &h));
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

}  // namespace zipp

#endif  // ZIPP_HPP
