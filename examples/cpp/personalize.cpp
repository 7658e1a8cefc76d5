// What a design tool linking libzipp does: load the shared models once, stream the user
// personas, personalize a scene prompt for every persona on worker threads, show the prompt
// and why it changed. Build (after `bash scripts/install-c.sh PREFIX`):
//
//   c++ -std=c++17 examples/cpp/personalize.cpp $(pkg-config --cflags --libs zipp) -o personalize
//   ./personalize examples/data/personas.jsonl "a cozy reading corner"
#include <future>
#include <iostream>
#include <string>
#include <vector>

#include "zipp.hpp"

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
    for (std::size_t i = 0; i < jobs.size(); ++i) {
      const zipp::Result r = jobs[i].get();
      std::cout << "== " << personas[i].id() << "\n" << r.explain() << "\n";
      if (r.prompt().rfind(prompt, 0) != 0) {
        std::cerr << "unexpected: the personalized prompt does not start with the base prompt\n";
        return 1;
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
