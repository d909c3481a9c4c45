// `pgraph ingest` and `pgraph info` through the CLI: every bad input gets a message naming
// the file and line, exit code 2, and no store; killed runs leave no trusted store.
#include <catch2/catch.hpp>
#include <signal.h>
#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>

#include "test/support/temp_dir.h"

using pgraph::test::ReadFile;
using pgraph::test::RunCommand;
using pgraph::test::TempDir;
using pgraph::test::WriteFile;
namespace fs = std::filesystem;

namespace {

std::string Pgraph() { return PGRAPH_BINARY; }

struct Case {
  const char* name;
  const char* edges;     // content of e.tsv (nullptr: file absent)
  const char* features;  // content of f.tsv (nullptr: none)
  const char* extra;     // extra flags
  const char* expect;    // substring of the message
};

}  // namespace

TEST_CASE("bad input: message, exit code 2, no store", "[tools]") {
  const Case cases[] = {
      {"wrong field count", "a\tx\nb\tx\ty\tz\n", nullptr, "", "e.tsv' line 2: expected 2 fields"},
      {"non-numeric weight", "a\tx\t1\nb\tx\tlots\n", nullptr, "", "line 2: weight is not a number: 'lots'"},
      {"NaN weight", "a\tx\t1\nb\tx\tnan\n", nullptr, "", "line 2: weight is NaN or infinite"},
      {"Inf weight", "a\tx\t1\nb\tx\tinf\n", nullptr, "", "line 2: weight is NaN or infinite"},
      {"negative weight", "a\tx\t1\nb\tx\t-3\n", nullptr, "", "line 2: weight is negative"},
      {"empty id", "a\tx\n\tx\n", nullptr, "", "line 2: empty item id"},
      {"empty input", "# only a comment\n\n", nullptr, "", "no edges (empty input)"},
      {"missing edge file", nullptr, nullptr, "", "file not found"},
      {"non-numeric feature", "a\tx\nb\tx\n", "a\t1 2\nb\t1 x\n", "", "f.tsv' line 2: feature value 2 is not a number: 'x'"},
      {"NaN feature", "a\tx\nb\tx\n", "a\t1 2\nb\tnan 1\n", "", "f.tsv' line 2: feature value 1 is NaN or infinite"},
      {"dimension mismatch", "a\tx\nb\tx\n", "a\t1 2\nb\t1 2 3\n", "", "f.tsv' line 2: expected 2 feature values"},
      {"duplicate feature row", "a\tx\nb\tx\n", "a\t1 2\nb\t1 2\na\t3 4\n", "", "f.tsv' line 3: duplicate feature row for item 'a'"},
      {"feature row for unknown item", "a\tx\nb\tx\n", "a\t1 2\nb\t1 2\nzz\t3 4\n", "", "f.tsv' line 3: feature row for unknown item 'zz'"},
      {"items without features", "a\tx\nb\tx\n", "a\t1 2\n", "", "1 of 2 items have no feature row (first: 'b')"},
      {"empty feature file", "a\tx\n", "", "", "no feature rows"},
      {"missing feature file", "a\tx\n", nullptr, "--features nope.tsv", "file not found: 'nope.tsv'"},
      {"npy without ids", "a\tx\n", nullptr, "--features f.npy", "file not found"},
      {"full disk", "a\tx\nb\ty\n", nullptr, "", "No space left on device"},
      {"bad memory budget", "a\tx\n", nullptr, "--memory-budget lots",
       "bad size 'lots' (expected e.g. 512M, 4G) for --memory-budget (or auto)"},
  };
  for (const Case& c : cases) {
    DYNAMIC_SECTION(c.name) {
      TempDir tmp;
      if (c.edges) WriteFile(tmp.Sub("e.tsv"), c.edges);
      std::string cmd = "cd " + tmp.path() + " && ";
      if (std::string(c.name) == "full disk") cmd += "PGRAPH_FAULT_FAIL_WRITE_AFTER=2 ";
      cmd += Pgraph() + " ingest --quiet --store s --edges e.tsv " + c.extra;
      if (c.features) {
        WriteFile(tmp.Sub("f.tsv"), c.features);
        cmd += " --features f.tsv";
      }
      std::string out;
      int rc = RunCommand(cmd, &out);
      INFO(out);
      CHECK(rc == (std::string(c.name) == "full disk" ? 1 : 2));
      CHECK_THAT(out, Catch::Contains(c.expect));
      CHECK_FALSE(fs::exists(tmp.Sub("s")));
      for (const auto& e : fs::directory_iterator(tmp.path())) {
        CHECK(e.path().filename().string().find(".tmp-") == std::string::npos);
      }
    }
  }
}

TEST_CASE("npy features: wrong dtype and shape are refused", "[tools]") {
  TempDir tmp;
  WriteFile(tmp.Sub("e.tsv"), "a\tx\nb\tx\n");
  WriteFile(tmp.Sub("ids.txt"), "a\nb\n");
  auto npy = [](const std::string& dict, std::size_t payload) {
    std::string h = dict;
    while ((10 + h.size() + 1) % 64 != 0) h += ' ';
    h += '\n';
    std::string s = "\x93NUMPY\x01";
    s.push_back('\0');
    s.push_back(static_cast<char>(h.size()));
    s.push_back('\0');
    return s + h + std::string(payload, '\0');
  };
  WriteFile(tmp.Sub("f8.npy"), npy("{'descr': '<f8', 'fortran_order': False, 'shape': (2, 2), }", 32));
  WriteFile(tmp.Sub("s3.npy"), npy("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 2, 2), }", 32));
  WriteFile(tmp.Sub("rows.npy"), npy("{'descr': '<f4', 'fortran_order': False, 'shape': (3, 2), }", 24));
  std::string base = "cd " + tmp.path() + " && " + Pgraph() +
                     " ingest --quiet --store s --edges e.tsv --feature-ids ids.txt --features ";
  std::string out;
  CHECK(RunCommand(base + "f8.npy", &out) == 2);
  CHECK_THAT(out, Catch::Contains("dtype '<f8', expected float32"));
  CHECK(RunCommand(base + "s3.npy", &out) == 2);
  CHECK_THAT(out, Catch::Contains("3 dimensions, expected 2"));
  CHECK(RunCommand(base + "rows.npy", &out) == 2);
  CHECK_THAT(out, Catch::Contains("has 3 rows but 'ids.txt' lists 2 ids"));
  CHECK_FALSE(fs::exists(tmp.Sub("s")));
}

TEST_CASE("an existing store is kept unless --overwrite", "[tools]") {
  TempDir tmp;
  WriteFile(tmp.Sub("e.tsv"), "a\tx\nb\tx\n");
  WriteFile(tmp.Sub("e2.tsv"), "a\tx\nb\tx\nc\ty\n");
  std::string base = "cd " + tmp.path() + " && " + Pgraph() + " ";
  std::string out;
  REQUIRE(RunCommand(base + "ingest --quiet --store s --edges e.tsv", &out) == 0);
  CHECK(RunCommand(base + "ingest --quiet --store s --edges e2.tsv", &out) == 2);
  CHECK_THAT(out, Catch::Contains("already exists (use --overwrite"));
  REQUIRE(RunCommand(base + "info --store s --json", &out) == 0);
  CHECK_THAT(out, Catch::Contains("\"items\": 2"));
  REQUIRE(RunCommand(base + "ingest --quiet --store s --edges e2.tsv --overwrite", &out) == 0);
  REQUIRE(RunCommand(base + "info --store s --json", &out) == 0);
  CHECK_THAT(out, Catch::Contains("\"items\": 3"));
}

TEST_CASE("skip-bad-lines counts and skips malformed lines", "[tools]") {
  TempDir tmp;
  WriteFile(tmp.Sub("e.tsv"), "a\tx\t1\nb\tx\tbad\nc\ty\t2\nd\n");
  std::string out;
  REQUIRE(RunCommand("cd " + tmp.path() + " && " + Pgraph() +
                         " ingest --store s --edges e.tsv --skip-bad-lines --json",
                     &out) == 0);
  CHECK_THAT(out, Catch::Contains("\"bad_lines\": 2"));
  CHECK_THAT(out, Catch::Contains("\"edges\": 2"));
  CHECK_THAT(out, Catch::Contains("line 2: weight is not a number"));
}

TEST_CASE("stdin, gzip, CSV with header, info JSON", "[tools]") {
  TempDir tmp;
  WriteFile(tmp.Sub("e.csv"), "item,user,weight\na,x,1\nb,x,2\nc,y,1\na,y,1\n");
  std::string base = "cd " + tmp.path() + " && ";
  std::string out;
  REQUIRE(RunCommand(base + "cat e.csv | " + Pgraph() + " ingest --quiet --store s1 --edges -", &out) == 0);
  REQUIRE(RunCommand(base + "gzip -k e.csv && " + Pgraph() + " ingest --quiet --store s2 --edges e.csv.gz", &out) == 0);
  for (const char* s : {"s1", "s2"}) {
    REQUIRE(RunCommand(base + Pgraph() + " info --json --verify --store " + s, &out) == 0);
    CHECK_THAT(out, Catch::Contains("\"items\": 3"));
    CHECK_THAT(out, Catch::Contains("\"contexts\": 2"));
    CHECK_THAT(out, Catch::Contains("\"edges\": 4"));
    CHECK_THAT(out, Catch::Contains("\"backend\": \"lmdb\""));
    CHECK_THAT(out, Catch::Contains("\"name\": \"item_to_context.weights\""));
    CHECK_THAT(out, Catch::Contains("\"verified\": true"));
  }
  CHECK(RunCommand(base + Pgraph() + " info --store nowhere", &out) == 2);
  CHECK_THAT(out, Catch::Contains("no store at 'nowhere'"));
}

namespace {
// Runs pgraph with PGRAPH_TEST_STOP_AT=point, waits until it stops there, kills it (-9).
void RunAndKillAt(const std::string& dir, const char* point, const std::vector<std::string>& args) {
  pid_t pid = fork();
  if (pid == 0) {
    if (chdir(dir.c_str()) != 0) _exit(99);
    setenv("PGRAPH_TEST_STOP_AT", point, 1);
    std::vector<char*> argv;
    std::string bin = PGRAPH_BINARY;
    argv.push_back(bin.data());
    std::vector<std::string> copy = args;
    for (auto& a : copy) argv.push_back(a.data());
    argv.push_back(nullptr);
    int devnull = open("/dev/null", O_WRONLY);
    dup2(devnull, 2);
    execv(bin.c_str(), argv.data());
    _exit(98);
  }
  int status = 0;
  REQUIRE(waitpid(pid, &status, WUNTRACED) == pid);
  REQUIRE(WIFSTOPPED(status));
  kill(pid, SIGKILL);
  REQUIRE(waitpid(pid, &status, 0) == pid);
  REQUIRE(WIFSIGNALED(status));
}
}  // namespace

TEST_CASE("ingest killed mid-way leaves no trusted store, or the previous one", "[tools]") {
  const char* point = GENERATE("ingest.columns", "ingest.seal");
  TempDir tmp;
  WriteFile(tmp.Sub("e.tsv"), "a\tx\nb\tx\nc\ty\n");
  WriteFile(tmp.Sub("e2.tsv"), "a\tx\nb\tx\n");
  RunAndKillAt(tmp.path(), point, {"ingest", "--store", "s", "--edges", "e.tsv"});
  CHECK_FALSE(fs::exists(tmp.Sub("s")));
  std::string out;
  CHECK(RunCommand("cd " + tmp.path() + " && " + Pgraph() + " info --store s", &out) == 2);
  // A store that exists survives a killed --overwrite untouched.
  REQUIRE(RunCommand("cd " + tmp.path() + " && " + Pgraph() + " ingest --quiet --store s --edges e2.tsv", &out) == 0);
  RunAndKillAt(tmp.path(), point, {"ingest", "--store", "s", "--edges", "e.tsv", "--overwrite"});
  REQUIRE(RunCommand("cd " + tmp.path() + " && " + Pgraph() + " info --json --verify --store s", &out) == 0);
  CHECK_THAT(out, Catch::Contains("\"items\": 2"));
  // The next ingest clears the build directories the killed ones left.
  REQUIRE(RunCommand("cd " + tmp.path() + " && " + Pgraph() + " ingest --quiet --overwrite --store s --edges e.tsv", &out) == 0);
  int leftovers = 0;
  for (const auto& e : fs::directory_iterator(tmp.path())) {
    if (e.path().filename().string().find(".s.tmp-") != std::string::npos) ++leftovers;
  }
  CHECK(leftovers == 0);
}
