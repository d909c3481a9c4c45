// `pgraph train|infer ...` runs pgraph-torch (tools/torch_commands.h); linked into `pgraph`
// only.
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <string>
#include <string_view>

#include "tools/command.h"
#include "tools/torch_commands.h"

namespace pgraph::tools {
namespace {

// Never run: main() forwards before parsing. They make `pgraph --help` list the commands.
std::function<Status()> Forwarded(CLI::App*) {
  return [] { return Status::Internal("a pgraph-torch command was not forwarded"); };
}

}  // namespace

bool ForwardToTorchBinary(int argc, char** argv) {
  if (argc < 2) return false;
  const std::string_view cmd = argv[1];
  if (cmd != "train" && cmd != "infer") return false;
  std::error_code ec;
  const std::filesystem::path self = std::filesystem::read_symlink("/proc/self/exe", ec);
  const std::filesystem::path torch = (ec ? std::filesystem::path(argv[0]) : self)
                                          .parent_path() / "pgraph-torch";
  // argv[0] stays the name the user typed, so usage lines read "pgraph train ...".
  execv(torch.c_str(), argv);
  std::fprintf(stderr, "pgraph: error: `%s` runs %s, which could not be started: %s\n",
               argv[1], torch.c_str(), std::strerror(errno));
  return true;
}

}  // namespace pgraph::tools

PGRAPH_COMMAND(train_forward, "train", ::pgraph::tools::kTrainDescription,
               ::pgraph::tools::Forwarded);
PGRAPH_COMMAND(infer_forward, "infer", ::pgraph::tools::kInferDescription,
               ::pgraph::tools::Forwarded);
