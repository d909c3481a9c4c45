// Columns: round trips on both backends and codecs, zero-copy views, f16, the chunk cache,
// checksums and corruption, atomic updates.
#include <catch2/catch.hpp>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>

#include "storage/store.h"
#include "test/support/temp_dir.h"

using namespace pgraph;
using namespace pgraph::storage;

namespace {

std::unique_ptr<Store> MakeStore(const std::string& dir, Backend b, Codec c) {
  StoreOptions o;
  o.backend = b;
  o.codec = c;
  o.memory_budget = 8 << 20;
  auto s = Store::Create(dir, o, false);
  REQUIRE(s.ok());
  return std::move(s).value();
}

std::unique_ptr<Store> OpenStore(const std::string& dir, bool read_only = false,
                                 std::uint64_t budget = 8 << 20) {
  StoreOptions o;
  o.read_only = read_only;
  o.memory_budget = budget;
  auto s = Store::Open(dir, o);
  INFO(s.status().ToString());
  REQUIRE(s.ok());
  return std::move(s).value();
}

template <typename T>
void AddColumn(Update* u, const std::string& name, DType dt, std::uint32_t width,
               const std::vector<T>& values, std::uint32_t rows_per_chunk = 0) {
  ColumnSpec spec{name, dt, width, rows_per_chunk, -1};
  auto w = u->AddColumn(spec);
  REQUIRE(w.ok());
  // Uneven appends exercise the writer's chunk assembly.
  std::size_t pos = 0, step = width * 7;
  while (pos < values.size()) {
    std::size_t n = std::min(step, values.size() - pos);
    REQUIRE(w.value()->AppendValues(std::span<const T>(values.data() + pos, n)).ok());
    pos += n;
    step = step * 3 % (width * 1000) + width;
  }
}

}  // namespace

TEST_CASE("every dtype round-trips on both backends and codecs", "[storage]") {
  auto backend = GENERATE(Backend::kLmdb, Backend::kRocksDb);
  auto codec = GENERATE(Codec::kNone, Codec::kZstd);
  test::TempDir tmp;
  std::string dir = tmp.Sub("s");
  std::mt19937 rng(7);
  std::vector<std::uint8_t> u8(10007);
  std::vector<std::uint32_t> u32(50000);
  std::vector<std::uint64_t> u64(30001);
  std::vector<float> f32(3 * 20011);
  std::vector<std::uint16_t> f16(5 * 999);
  for (auto& v : u8) v = static_cast<std::uint8_t>(rng() % 7);  // compressible
  for (auto& v : u32) v = rng() % 1000;
  for (auto& v : u64) v = rng();
  for (auto& v : f32) v = std::uniform_real_distribution<float>(-1, 1)(rng);
  for (auto& v : f16) v = FloatToHalf(std::uniform_real_distribution<float>(-4, 4)(rng));
  {
    auto store = MakeStore(dir, backend, codec);
    auto u = store->BeginUpdate();
    REQUIRE(u.ok());
    AddColumn(u->get(), "u8", DType::kU8, 1, u8, 1024);
    AddColumn(u->get(), "u32", DType::kU32, 1, u32, 4096);
    AddColumn(u->get(), "u64", DType::kU64, 1, u64);
    AddColumn(u->get(), "f32", DType::kF32, 3, f32, 1000);  // rounded up to 1024
    AddColumn(u->get(), "f16", DType::kF16, 5, f16, 64);
    u->get()->SetMeta("k", "v");
    u->get()->SetCount("items", 42);
    REQUIRE(u->get()->Publish().ok());
    REQUIRE(store->Seal().ok());
  }
  auto store = OpenStore(dir, true);
  CHECK(store->backend() == backend);
  CHECK(store->num_items() == 42);
  CHECK(store->GetMeta("k").value() == "v");
  CHECK(store->GetMeta("nope").status().IsNotFound());
  CHECK(store->OpenColumn("nope").status().IsNotFound());
  REQUIRE(store->Verify().ok());

  auto read_all = [&](const char* name, auto& expect) {
    using T = typename std::remove_reference_t<decltype(expect)>::value_type;
    auto col = store->OpenColumn(name);
    REQUIRE(col.ok());
    const ColumnInfo& ci = col.value()->info();
    CHECK(ci.rows * ci.width == expect.size());
    CHECK((ci.rows_per_chunk & (ci.rows_per_chunk - 1)) == 0);
    std::vector<T> got(expect.size());
    REQUIRE(col.value()->ReadRows(0, ci.rows, std::as_writable_bytes(std::span(got))).ok());
    CHECK(got == expect);
    // A window that straddles chunk boundaries.
    std::uint64_t first = ci.rows / 3, count = ci.rows / 2;
    std::vector<T> part(count * ci.width);
    REQUIRE(col.value()->ReadRows(first, count, std::as_writable_bytes(std::span(part))).ok());
    CHECK(std::equal(part.begin(), part.end(), expect.begin() + first * ci.width));
    CHECK(col.value()->ReadRows(ci.rows - 1, 2, std::as_writable_bytes(std::span(part))).IsInvalidArgument());
  };
  read_all("u8", u8);
  read_all("u32", u32);
  read_all("u64", u64);
  read_all("f32", f32);
  read_all("f16", f16);

  SECTION("views give the same elements, zero-copy for raw LMDB") {
    auto col = store->OpenColumn("u32").value();
    auto view = ColumnView<std::uint32_t>::Make(*col, 1 << 30);
    REQUIRE(view.ok());
    for (std::size_t i = 0; i < u32.size(); i += 13) CHECK(view.value()[i] == u32[i]);
    if (backend == Backend::kLmdb && codec == Codec::kNone) CHECK(view.value().pinned_bytes() == 0);
    if (codec == Codec::kZstd) {
      CHECK(view.value().pinned_bytes() == u32.size() * 4);
      CHECK(ColumnView<std::uint32_t>::Make(*col, 1000).status().IsResourceExhausted());
    }
  }
  SECTION("float reads convert f16 and gather in any order") {
    auto col = store->OpenColumn("f16").value();
    std::vector<float> out(5 * 999);
    REQUIRE(col->ReadRowsAsFloat(0, 999, out).ok());
    for (std::size_t i = 0; i < out.size(); ++i) CHECK(out[i] == HalfToFloat(f16[i]));
    auto fc = store->OpenColumn("f32").value();
    std::vector<NodeId> ids = {20010, 3, 3, 1500, 0};
    std::vector<float> g(ids.size() * 3);
    REQUIRE(fc->GatherAsFloat(ids, g).ok());
    for (std::size_t k = 0; k < ids.size(); ++k) {
      for (int d = 0; d < 3; ++d) CHECK(g[k * 3 + d] == f32[ids[k] * 3 + d]);
    }
    CHECK(store->OpenColumn("u32").value()->ReadRowsAsFloat(0, 1, out).IsInvalidArgument());
  }
  SECTION("row gathers in any order, each chunk once") {
    auto col = store->OpenColumn("u32").value();
    std::vector<NodeId> ids = {static_cast<NodeId>(u32.size() - 1), 7, 7, 0, 20010};
    std::vector<std::uint32_t> g(ids.size());
    REQUIRE(col->GatherRows(ids, std::as_writable_bytes(std::span(g))).ok());
    for (std::size_t k = 0; k < ids.size(); ++k) CHECK(g[k] == u32[ids[k]]);
    std::vector<NodeId> bad = {0, static_cast<NodeId>(u32.size())};
    CHECK(col->GatherRows(bad, std::as_writable_bytes(std::span(g))).IsInvalidArgument());
  }
}

TEST_CASE("half floats round to nearest", "[storage]") {
  for (float f : {0.0f, 1.0f, -2.5f, 65504.0f, 1e-5f, 0.333f}) {
    float back = HalfToFloat(FloatToHalf(f));
    CHECK(std::abs(back - f) <= std::abs(f) * 1e-3f + 1e-7f);
  }
  CHECK(std::isinf(HalfToFloat(FloatToHalf(1e6f))));
}

TEST_CASE("byte sizes parse", "[storage]") {
  CHECK(ParseByteSize("512M").value() == 512ull << 20);
  CHECK(ParseByteSize("4G").value() == 4ull << 30);
  CHECK(ParseByteSize("64k").value() == 64ull << 10);
  CHECK(ParseByteSize("1.5GiB").value() == 3ull << 29);
  CHECK(ParseByteSize("100").value() == 100);
  CHECK(ParseByteSize("12X").status().IsInvalidArgument());
  CHECK(ParseByteSize("").status().IsInvalidArgument());
}

TEST_CASE("the chunk cache never holds more than its budget", "[storage]") {
  ChunkCache cache(1 << 20);
  for (std::uint64_t k = 0; k < 500; ++k) {
    auto v = std::make_shared<std::vector<std::byte>>(10000 + (k % 7) * 3000);
    cache.Insert(k, v);
    REQUIRE(cache.used_bytes() <= cache.budget());
  }
  CHECK(cache.Lookup(499) != nullptr);  // most recent stays
  CHECK(cache.Lookup(0) == nullptr);    // oldest evicted
  cache.Insert(1000, std::make_shared<std::vector<std::byte>>(2 << 20));  // larger than budget
  CHECK(cache.Lookup(1000) == nullptr);
  CHECK(cache.used_bytes() <= cache.budget());
}

TEST_CASE("reading a compressed column through a small cache stays within budget", "[storage]") {
  test::TempDir tmp;
  std::string dir = tmp.Sub("s");
  std::vector<std::uint32_t> v(1 << 20);
  for (std::size_t i = 0; i < v.size(); ++i) v[i] = static_cast<std::uint32_t>(i * 2654435761u);
  {
    auto store = MakeStore(dir, Backend::kLmdb, Codec::kZstd);
    auto u = store->BeginUpdate();
    AddColumn(u->get(), "x", DType::kU32, 1, v, 16384);  // 64 KiB chunks, 64 of them
    REQUIRE(u->get()->Publish().ok());
    REQUIRE(store->Seal().ok());
  }
  auto store = OpenStore(dir, true, 256 << 10);  // room for 4 chunks
  auto col = store->OpenColumn("x").value();
  std::vector<std::uint32_t> row(1);
  std::mt19937 rng(1);
  for (int i = 0; i < 2000; ++i) {
    std::uint64_t r = rng() % v.size();
    REQUIRE(col->ReadRows(r, 1, std::as_writable_bytes(std::span(row))).ok());
    REQUIRE(row[0] == v[r]);
    REQUIRE(store->cache().used_bytes() <= 256u << 10);
  }
  CHECK(store->cache().misses() > 0);
}

namespace {
// Finds `pattern` in a file and flips one byte of it. Returns false when absent.
bool FlipByteOf(const std::string& path, const std::string& pattern) {
  std::string data = test::ReadFile(path);
  std::size_t at = data.find(pattern);
  if (at == std::string::npos) return false;
  data[at + pattern.size() / 2] ^= 0x5a;
  test::WriteFile(path, data);
  return true;
}
}  // namespace

TEST_CASE("a flipped byte gives a checksum error naming column and chunk", "[storage]") {
  auto codec = GENERATE(Codec::kNone, Codec::kZstd);
  test::TempDir tmp;
  std::string dir = tmp.Sub("s");
  std::vector<std::uint32_t> v(3 * 4096);
  std::mt19937 rng(3);
  for (auto& x : v) x = rng();
  {
    auto store = MakeStore(dir, Backend::kLmdb, codec);
    auto u = store->BeginUpdate();
    AddColumn(u->get(), "victim", DType::kU32, 1, v, 4096);
    REQUIRE(u->get()->Publish().ok());
    REQUIRE(store->Seal().ok());
  }
  // Random data does not compress, so chunk 1's bytes appear verbatim in the file.
  std::string pattern(reinterpret_cast<const char*>(v.data() + 4096 + 100), 64);
  REQUIRE(FlipByteOf(dir + "/data.mdb", pattern));
  auto store = OpenStore(dir, true);
  auto col = store->OpenColumn("victim").value();
  CHECK(col->ReadChunk(0).ok());
  auto bad = col->ReadChunk(1);
  REQUIRE(bad.status().IsCorruption());
  CHECK_THAT(bad.status().message(), Catch::Contains("column 'victim' chunk 1"));
  CHECK_THAT(bad.status().message(), Catch::Contains("checksum"));
  CHECK(store->Verify().IsCorruption());
}

TEST_CASE("an update is invisible until published and replaces atomically", "[storage]") {
  auto backend = GENERATE(Backend::kLmdb, Backend::kRocksDb);
  test::TempDir tmp;
  std::string dir = tmp.Sub("s");
  {
    auto store = MakeStore(dir, backend, Codec::kZstd);
    auto u = store->BeginUpdate();
    AddColumn(u->get(), "a", DType::kU32, 1, std::vector<std::uint32_t>(1000, 1));
    REQUIRE(u->get()->Publish().ok());
    REQUIRE(store->Seal().ok());
  }
  auto store = OpenStore(dir);
  {
    auto u = store->BeginUpdate();
    AddColumn(u->get(), "a", DType::kU32, 1, std::vector<std::uint32_t>(500, 2));
    AddColumn(u->get(), "b", DType::kU32, 1, std::vector<std::uint32_t>(10, 3));
    CHECK_FALSE(store->HasColumn("b"));
    // Destroyed without Publish: nothing changes.
  }
  CHECK_FALSE(store->HasColumn("b"));
  CHECK(store->OpenColumn("a").value()->info().rows == 1000);
  {
    auto u = store->BeginUpdate();
    AddColumn(u->get(), "a", DType::kU32, 1, std::vector<std::uint32_t>(500, 2));
    u->get()->SetMeta("walk.params", "{}");
    REQUIRE(u->get()->Publish().ok());
  }
  CHECK(store->OpenColumn("a").value()->info().rows == 500);
  CHECK(store->OpenColumn("a").value()->Get<std::uint32_t>(7).value() == 2);
  {
    auto u = store->BeginUpdate();
    u->get()->DropColumn("a");
    REQUIRE(u->get()->Publish().ok());
  }
  CHECK_FALSE(store->HasColumn("a"));
  CHECK(store->GetMeta("walk.params").value() == "{}");
}

TEST_CASE("a writer killed before publishing leaves the previous store, cleaned at reopen",
          "[storage]") {
  test::TempDir tmp;
  std::string dir = tmp.Sub("s");
  {
    auto store = MakeStore(dir, Backend::kLmdb, Codec::kNone);
    auto u = store->BeginUpdate();
    AddColumn(u->get(), "a", DType::kU32, 1, std::vector<std::uint32_t>(100, 1));
    REQUIRE(u->get()->Publish().ok());
    REQUIRE(store->Seal().ok());
  }
  std::uintmax_t before = std::filesystem::file_size(dir + "/data.mdb");
  pid_t pid = fork();
  if (pid == 0) {
    // Child: write 80 MiB of chunks of a new version, then die without publishing.
    StoreOptions o;
    auto store = Store::Open(dir, o);
    if (!store.ok()) _exit(3);
    auto u = store.value()->BeginUpdate();
    auto w = u.value()->AddColumn({"a", DType::kU32, 1, 1 << 16, 0});  // raw: real bytes on disk
    std::vector<std::uint32_t> big(1 << 21, 9);
    for (int i = 0; i < 10; ++i) {  // 80 MiB: more than one write batch
      if (!w.value()->AppendValues(std::span<const std::uint32_t>(big)).ok()) _exit(4);
    }
    kill(getpid(), SIGKILL);
    _exit(5);
  }
  int status = 0;
  waitpid(pid, &status, 0);
  REQUIRE(WIFSIGNALED(status));
  CHECK(std::filesystem::file_size(dir + "/data.mdb") > before);  // chunks did reach the file
  {
    auto store = OpenStore(dir);  // writable open collects the orphans
    auto col = store->OpenColumn("a").value();
    CHECK(col->info().rows == 100);
    CHECK(col->Get<std::uint32_t>(5).value() == 1);
    REQUIRE(store->Verify().ok());
  }
  // Writing the same amount again reuses the freed pages instead of growing the file.
  std::uintmax_t after_kill = std::filesystem::file_size(dir + "/data.mdb");
  {
    auto store = OpenStore(dir);
    auto u = store->BeginUpdate();
    AddColumn(u->get(), "c", DType::kU32, 1, std::vector<std::uint32_t>(1 << 20, 4), 1 << 16);
    REQUIRE(u->get()->Publish().ok());
  }
  CHECK(std::filesystem::file_size(dir + "/data.mdb") <= after_kill + (1 << 20));
}

TEST_CASE("stores are created atomically and never replaced by accident", "[storage]") {
  test::TempDir tmp;
  std::string dir = tmp.Sub("s");
  {
    auto store = MakeStore(dir, Backend::kLmdb, Codec::kZstd);
    CHECK_FALSE(std::filesystem::exists(dir));  // built aside until Seal
    REQUIRE(store->Seal().ok());
  }
  CHECK(std::filesystem::exists(dir + "/PGRAPH"));
  StoreOptions o;
  CHECK(Store::Create(dir, o, false).status().IsInvalidArgument());
  {
    auto failed = Store::Create(dir, o, true);  // overwrite, but dropped before Seal
    REQUIRE(failed.ok());
  }
  CHECK(std::filesystem::exists(dir + "/PGRAPH"));
  for (const auto& e : std::filesystem::directory_iterator(tmp.path())) {
    CHECK(e.path().filename().string().find(".tmp-") == std::string::npos);
  }
  std::filesystem::create_directories(tmp.Sub("notastore/x"));
  auto refused = Store::Create(tmp.Sub("notastore"), o, true);
  CHECK(refused.status().IsInvalidArgument());
  CHECK_THAT(refused.status().message(), Catch::Contains("not a pgraph store"));
  CHECK(Store::Open(tmp.Sub("missing"), o).status().IsNotFound());
  CHECK(Store::Open(tmp.Sub("notastore"), o).status().IsNotFound());
}

TEST_CASE("one writer at a time; readers alongside", "[storage]") {
  test::TempDir tmp;
  std::string dir = tmp.Sub("s");
  {
    auto store = MakeStore(dir, Backend::kLmdb, Codec::kZstd);
    REQUIRE(store->Seal().ok());
  }
  auto writer = OpenStore(dir);
  StoreOptions o;
  auto second = Store::Open(dir, o);
  CHECK(second.status().IsIOError());
  CHECK_THAT(second.status().message(), Catch::Contains("another process"));
  o.read_only = true;
  CHECK(Store::Open(dir, o).ok());
}

TEST_CASE("a full disk fails the write with ResourceExhausted and leaves no store", "[storage]") {
  test::TempDir tmp;
  std::string dir = tmp.Sub("s");
  setenv("PGRAPH_FAULT_FAIL_WRITE_AFTER", "1", 1);
  Status s;
  {
    auto store = MakeStore(dir, Backend::kLmdb, Codec::kNone);
    auto u = store->BeginUpdate();
    auto w = u.value()->AddColumn({"a", DType::kU32, 1, 1024, -1});
    std::vector<std::uint32_t> big(1 << 20, 1);
    s = w.value()->AppendValues(std::span<const std::uint32_t>(big));
    if (s.ok()) s = u.value()->Publish();
  }
  unsetenv("PGRAPH_FAULT_FAIL_WRITE_AFTER");
  CHECK(s.IsResourceExhausted());
  CHECK_THAT(s.message(), Catch::Contains("No space left on device"));
  CHECK_THAT(s.message(), Catch::Contains("column 'a'"));
  CHECK_FALSE(std::filesystem::exists(dir));
}
