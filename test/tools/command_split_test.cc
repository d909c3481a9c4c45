// `pgraph` runs without libtorch and hands train and infer to pgraph-torch beside it
// (tools/torch_commands.h): the help lists them, their own help comes from pgraph-torch, and
// a pgraph without pgraph-torch says so instead of failing obscurely.
#include <catch2/catch.hpp>

#include <filesystem>

#include "test/support/temp_dir.h"

using pgraph::test::RunCommand;
using pgraph::test::TempDir;
namespace fs = std::filesystem;

TEST_CASE("pgraph does not load libtorch and forwards train and infer", "[tools]") {
  const std::string pgraph = PGRAPH_BINARY;
  std::string out;
  // Neither pgraph nor any library it loads is libtorch.
  REQUIRE(RunCommand("ldd " + pgraph + " 2>&1", &out) == 0);
  INFO(out);
  CHECK(out.find("libtorch") == std::string::npos);
  CHECK(out.find("libc10") == std::string::npos);

  REQUIRE(RunCommand(pgraph + " --help 2>&1", &out) == 0);
  CHECK(out.find("train ") != std::string::npos);
  CHECK(out.find("infer ") != std::string::npos);

  REQUIRE(RunCommand(pgraph + " train --help 2>&1", &out) == 0);
  CHECK(out.find("--epochs") != std::string::npos);  // pgraph-torch's train
  CHECK(out.find("pgraph-torch") == std::string::npos);
  REQUIRE(RunCommand(pgraph + " infer --help 2>&1", &out) == 0);
  CHECK(out.find("--locality-order") != std::string::npos);
  // Errors keep their exit codes through the hand-over.
  CHECK(RunCommand(pgraph + " infer --store /nonexistent/store 2>&1", &out) == 2);

  SECTION("without pgraph-torch beside it") {
    TempDir tmp;
    const std::string lone = tmp.Sub("pgraph");
    fs::copy_file(pgraph, lone);
    fs::permissions(lone, fs::perms::owner_all);
    CHECK(RunCommand(lone + " train --store x 2>&1", &out) == 1);
    CHECK(out.find("pgraph-torch") != std::string::npos);
    CHECK(RunCommand(lone + " --help 2>&1", &out) == 0);  // the rest still works
  }
}
