#pragma once
// The `pgraph` command registry. Each subcommand lives in its own tools/cmd_<name>.cc and
// registers itself with PGRAPH_COMMAND; tools/pgraph.cc builds the CLI from the registry.
//
// Exit codes shared by every command: 0 success, 2 bad input or usage (InvalidArgument,
// NotFound, Corruption), 1 anything else (I/O, internal).

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "storage/status.h"

namespace CLI {
class App;
}

namespace pgraph::tools {

// Called once to declare the subcommand's options on `app`; returns the action that runs
// after parsing (it may capture state owned by the returned closure).
using CommandSetup = std::function<std::function<Status()>(CLI::App* app)>;

struct CommandEntry {
  std::string name;
  std::string description;
  CommandSetup setup;
};

std::vector<CommandEntry>& CommandRegistry();

struct CommandRegistrar {
  CommandRegistrar(std::string name, std::string description, CommandSetup setup) {
    CommandRegistry().push_back({std::move(name), std::move(description), std::move(setup)});
  }
};

// Maps a Status to the process exit code described above.
int ExitCodeFor(const Status& s);

// Sets TBB's global thread limit for the process; 0 means all cores. Returns the count.
int ConfigureThreads(int threads);

}  // namespace pgraph::tools

#define PGRAPH_COMMAND(ident, name, description, setup) \
  static ::pgraph::tools::CommandRegistrar pgraph_command_##ident(name, description, setup)
