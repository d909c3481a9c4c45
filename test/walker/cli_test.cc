// `pgraph walk`, `pgraph ppr`, `pgraph export --what neighbors`: outputs and exit codes.
// Runs the pgraph binary of this build (each start loads libtorch: [slow]); skipped, with a
// warning, when the binary was not built.
#include <cmath>
#include <filesystem>
#include <map>
#include <sstream>

#include "test/walker/walker_test_util.h"

namespace pgraph::walker {
namespace {

bool HaveBinary() {
  if (std::filesystem::exists(PGRAPH_BINARY)) return true;
  WARN("pgraph binary not built (" << PGRAPH_BINARY << "): CLI test skipped");
  return false;
}

int Run(const std::string& args, std::string* out) {
  return test::RunCommand(std::string(PGRAPH_BINARY) + " " + args, out);
}

TEST_CASE("pgraph walk, ppr and export: outputs and bad input", "[walker][cli][slow]") {
  if (!HaveBinary()) return;
  auto t = testing::StoreFromEdges("a\tc1\nb\tc1\nb\tc2\nd\tc2\ne\tc2\nx\tc3\ny\tc3\n");
  const std::string dir = t->dir;
  t->graph.reset();
  t->ids.reset();
  t->store.reset();  // the commands open the store themselves
  std::string out;
  // Bad input: exit 2, store untouched.
  REQUIRE(Run("walk --store " + dir + " --restart 1 --quiet", &out) == 2);
  REQUIRE(out.find("--restart") != std::string::npos);
  REQUIRE(Run("walk --store " + dir + " --top-t 0 --quiet", &out) == 2);
  REQUIRE(Run("walk --store " + dir + " --edge-weights sqrt --quiet", &out) == 2);
  REQUIRE(out.find("expected auto, uniform, linear or log") != std::string::npos);
  REQUIRE(Run("walk --store " + dir + " --edge-weights log --quiet", &out) == 2);  // unweighted
  REQUIRE(out.find("no edge weights") != std::string::npos);
  REQUIRE(Run("ppr --store " + dir + " --item nope", &out) == 2);
  REQUIRE(out.find("nope") != std::string::npos);
  REQUIRE(Run("export --store " + dir + " --what neighbors --format tsv --out -", &out) == 2);
  REQUIRE(out.find("pgraph walk") != std::string::npos);
  test::WriteFile(t->tmp.Sub("pairs.tsv"), "a\tzz\n");
  REQUIRE(Run("walk --store " + dir + " --quiet --pairs " + t->tmp.Sub("pairs.tsv"), &out) == 2);
  REQUIRE(out.find("zz") != std::string::npos);
  // A good run.
  REQUIRE(Run("walk --store " + dir + " --quiet --top-t 3 --walks-per-node 50 --json", &out) == 0);
  REQUIRE(out.find("\"items\": 6") != std::string::npos);
  REQUIRE(Run("ppr --store " + dir + " --item b --k 2 --json", &out) == 0);
  REQUIRE(out.find("\"query\": [\"b\"]") != std::string::npos);
  REQUIRE(out.find("\"item\": \"x\"") == std::string::npos);  // other component
  REQUIRE(Run("ppr --store " + dir + " --item x", &out) == 0);
  REQUIRE(out.find("1\ty\t") == 0);
  const std::string tsv = t->tmp.Sub("nb.tsv");
  REQUIRE(Run("export --store " + dir + " --what neighbors --format tsv --out " + tsv, &out) == 0);
  std::istringstream lines(test::ReadFile(tsv));
  std::string item, nbr;
  double w;
  std::map<std::string, double> sums;
  int n = 0;
  while (lines >> item >> nbr >> w) {
    REQUIRE(item != nbr);
    REQUIRE((item == "x" || item == "y") == (nbr == "x" || nbr == "y"));
    sums[item] += w;
    ++n;
  }
  REQUIRE(n > 0);
  REQUIRE(sums.size() == 6);
  for (auto [k, s] : sums) REQUIRE(std::abs(s - 1.0) < 1e-5);
  REQUIRE(Run("export --store " + dir + " --what neighbors --format npy --out " + tsv, &out) == 2);
  REQUIRE(Run("export --store " + dir + " --what nothing --out " + tsv, &out) == 2);
}

}  // namespace
}  // namespace pgraph::walker
