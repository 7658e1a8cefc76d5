// What a design tool linking libzipp does: load the shared models once, stream the user
// personas, personalize a scene prompt for every persona on worker threads, show the prompt,
// why it changed and how much it now reads like the person (VPTT score), then compare two
// methods on every persona. Build (after `bash scripts/install-c.sh PREFIX`):
//
//   c++ -std=c++17 examples/cpp/personalize.cpp $(pkg-config --cflags --libs zipp) -o personalize
//   ./personalize examples/data/personas.jsonl "a cozy reading corner"
#include <cstdint>
#include <future>
#include <iostream>
#include <string>
#include <vector>

#include "zipp.hpp"

// The number after "key": in a flat JSON object (a score).
static double number(const std::string &json, const std::string &key) {
  const std::size_t at = json.find("\"" + key + "\":");
  return at == std::string::npos ? 0.0 : std::stod(json.substr(at + key.size() + 3));
}

int main(int argc, char **argv) {
  if (argc < 2) {
    std::cerr << "usage: " << argv[0] << " PERSONAS.jsonl [PROMPT]\n";
    return 2;
  }
  const std::string prompt = argc > 2 ? argv[2] : "a cozy reading corner";
  try {
    zipp::Models models;  // $ZIPP_MODELS_DIR or ~/.cache/zipp/models
    models.load();
    const zipp::Personalizer vprag(models, R"({"method":"vprag","default_budget":3})");
    const std::vector<zipp::Persona> personas = zipp::read_jsonl(argv[1]);

    // One task per persona; the personalizer and models are shared by every thread.
    std::vector<std::future<zipp::Result>> jobs;
    for (const auto &persona : personas) {
      jobs.push_back(std::async(std::launch::async, [&vprag, &persona, &prompt] {
        return vprag.personalize(persona, prompt);
      }));
    }
    std::vector<double> before, after;
    for (std::size_t i = 0; i < jobs.size(); ++i) {
      const zipp::Result r = jobs[i].get();
      std::cout << "== " << personas[i].id() << "\n" << r.explain() << "\n";
      if (r.prompt().rfind(prompt, 0) != 0) {
        std::cerr << "unexpected: the personalized prompt does not start with the base prompt\n";
        return 1;
      }
      // How much each prompt reads like this person (VPTT, SPEC §4): personalizing should raise it.
      const zipp::Scorer scorer(models, personas[i]);
      before.push_back(number(scorer.score(prompt), "vptt"));
      after.push_back(number(scorer.score(r.prompt()), "vptt"));
      std::cout << "VPTT " << before.back() << " -> " << after.back() << "\n\n";
    }
    std::uint64_t raised = 0;
    for (std::size_t i = 0; i < before.size(); ++i) raised += after[i] > before[i] ? 1 : 0;
    const auto [lo, hi] = zipp::stats::wilson_interval(raised, before.size());
    std::cout << "VPRAG raised VPTT for " << raised << " of " << before.size() << " personas (mean "
              << zipp::stats::mean(before) << " -> " << zipp::stats::mean(after)
              << "; exact binomial p = " << zipp::stats::binomial_test(raised, before.size()) << ", 95% Wilson ["
              << lo << ", " << hi << "])\n\n";

    // Two methods on every persona and the four VPTT queries: the paper's table.
    zipp::Evaluation ev(models, R"({"methods":["identity","vprag"]})");
    for (const auto &persona : personas) ev.add(persona);
    std::cout << ev.table() << "\n";

    // Images: the tiny random test model stands in for a real one (pass a real folder,
    // e.g. "/models/sd-turbo"); the personalization of the first persona is the request.
    {
      zipp::ImageModel sd(R"("zipp-diffusion/tests/fixtures/tiny-sd")");
      zipp::Personalizer id(models, R"({"method":"identity"})");
      const std::string p = id.personalize(personas.front(), prompt).json();
      std::uint32_t steps_seen = 0;
      zipp::Images images = sd.generate(R"({"personalization":)" + p + R"(,"steps":3,"seed":1})", nullptr,
                                        [&](std::uint32_t, std::uint32_t) { return ++steps_seen > 0; });
      const zipp::ImageView img = images[0];
      if (images.size() != 1 || img.width != 64 || img.height != 64 || steps_seen != 3) {
        std::cerr << "unexpected image result\n";
        return 1;
      }
      std::cout << "image " << img.width << "x" << img.height << " after " << steps_seen << " steps\n";
      try {
        sd.generate(R"({"prompt":"a cat","steps":5})", nullptr, [](std::uint32_t, std::uint32_t) { return false; });
        std::cerr << "unexpected: the generation was not cancelled\n";
        return 1;
      } catch (const zipp::Error &e) {
        std::cout << "cancelled as asked: " << e.status_name() << "\n";
      }
    }

    // Errors are exceptions carrying the status and the message.
    try {
      zipp::Personalizer bad(models, R"({"method":"vprag","temperature":-1})");
      std::cerr << "unexpected: a negative temperature was accepted\n";
      return 1;
    } catch (const zipp::Error &e) {
      std::cout << "rejected as expected: " << e.status_name() << ": " << e.what() << "\n";
    }
    std::cout << "personalized " << personas.size() << " personas with zipp " << zipp_version() << "\n";
  } catch (const zipp::Error &e) {
    std::cerr << "zipp error " << e.status_name() << ": " << e.what() << "\n";
    return 1;
  }
  return 0;
}
