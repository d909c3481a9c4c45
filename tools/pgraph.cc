// pgraph: the command-line front end. Subcommands register themselves (tools/command.h).
#include <CLI/CLI.hpp>
#include <tbb/global_control.h>
#include <tbb/info.h>

#include <algorithm>
#include <cstdio>
#include <memory>
#include <thread>

#include "storage/allocator.h"
#include "tools/command.h"
#include "tools/torch_commands.h"

namespace pgraph::tools {

std::vector<CommandEntry>& CommandRegistry() {
  static std::vector<CommandEntry> registry;
  return registry;
}

int ExitCodeFor(const Status& s) {
  switch (s.code()) {
    case StatusCode::kOk: return 0;
    case StatusCode::kInvalidArgument:
    case StatusCode::kNotFound:
    case StatusCode::kCorruption:
    case StatusCode::kNotSupported: return 2;
    case StatusCode::kCancelled: return 130;
    default: return 1;
  }
}

int ConfigureThreads(int threads) {
  static std::unique_ptr<tbb::global_control> control;
  int n = threads > 0 ? threads : static_cast<int>(tbb::info::default_concurrency());
  control = std::make_unique<tbb::global_control>(tbb::global_control::max_allowed_parallelism,
                                                  static_cast<size_t>(n));
  return n;
}

}  // namespace pgraph::tools

int main(int argc, char** argv) {
  using namespace pgraph::tools;
  if (ForwardToTorchBinary(argc, argv)) return 1;
  pgraph::storage::ReuseFreedMemory();
  CLI::App app{"pgraph: PinSage item embeddings from a graph kept on disk"};
  app.require_subcommand(1);
  app.set_version_flag("--version", "pgraph 0.1");
  auto& registry = CommandRegistry();
  std::sort(registry.begin(), registry.end(),
            [](const CommandEntry& a, const CommandEntry& b) { return a.name < b.name; });
  std::function<pgraph::Status()> action;
  for (auto& entry : registry) {
    CLI::App* sub = app.add_subcommand(entry.name, entry.description);
    auto run = std::make_shared<std::function<pgraph::Status()>>(entry.setup(sub));
    sub->callback([run, &action] { action = *run; });
  }
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int rc = app.exit(e);
    return rc == 0 ? 0 : 2;
  }
  if (!action) return 2;
  pgraph::Status s = action();
  if (!s.ok()) {
    std::fprintf(stderr, "pgraph: error: %s\n", s.ToString().c_str());
    return ExitCodeFor(s);
  }
  return 0;
}
