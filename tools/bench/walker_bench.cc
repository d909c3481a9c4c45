// walker_bench: random-walk throughput against memory references, whole-graph neighbourhood
// time, and the stability/cost measurements behind the walk defaults (docs/WALKER.md).
//
//   walker_bench speed   [--adjacency-mb 1024] [--sources 20000] [--dir DIR]
//   walker_bench all     [--items 1000000] [--contexts 200000] [--edges 10000000] [--dir DIR]
//   walker_bench defaults [--items 100000] [--contexts 20000] [--edges 1000000] [--sample 4000]
//
// speed: builds a synthetic bipartite CSR of about --adjacency-mb (both directions, raw LMDB
// columns, so walks read the map in place), measures dependent random loads/s (pointer
// chasing over one random cycle of cache lines) and independent random loads/s (a gather)
// over an array of the same size, then walk hops/s with 1 and 2 threads and per lane count.
// A hop is half a step (item -> context, or context -> item): one offset pair plus one target,
// "about two random loads".
#include <tbb/global_control.h>
#include <tbb/info.h>
#include <tbb/task_arena.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <numeric>
#include <random>
#include <set>
#include <string>
#include <unordered_map>
#include <vector>

#include "storage/store.h"
#include "tools/lib/generator.h"
#include "walker/walker.h"

namespace {

using namespace pgraph;
using Clock = std::chrono::steady_clock;

double Since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

std::uint64_t Mix(std::uint64_t z) {
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

[[noreturn]] void Die(const Status& s, const char* what) {
  std::fprintf(stderr, "walker_bench: %s: %s\n", what, s.ToString().c_str());
  std::exit(1);
}

template <typename T>
T Check(Result<T> r, const char* what) {
  if (!r.ok()) Die(r.status(), what);
  return std::move(r).value();
}

void Check(const Status& s, const char* what) {
  if (!s.ok()) Die(s, what);
}

struct Args {
  std::string mode = "speed", dir;
  std::uint64_t adjacency_mb = 1024, sources = 20000;
  std::uint64_t items = 0, contexts = 0, edges = 0, sample = 4000;
  int threads = 0;
  bool early_only = false;
};

Args Parse(int argc, char** argv) {
  Args a;
  int i = 1;
  if (argc > 1 && argv[1][0] != '-') a.mode = argv[i++];
  for (; i + 1 < argc; i += 2) {
    std::string k = argv[i];
    std::string v = argv[i + 1];
    auto num = [&] { return std::strtoull(v.c_str(), nullptr, 10); };
    if (k == "--adjacency-mb") a.adjacency_mb = num();
    else if (k == "--sources") a.sources = num();
    else if (k == "--items") a.items = num();
    else if (k == "--contexts") a.contexts = num();
    else if (k == "--edges") a.edges = num();
    else if (k == "--sample") a.sample = num();
    else if (k == "--threads") a.threads = static_cast<int>(num());
    else if (k == "--dir") a.dir = v;
    else if (k == "--early-only") a.early_only = num() != 0;
    else {
      std::fprintf(stderr, "unknown option %s\n", k.c_str());
      std::exit(2);
    }
  }
  return a;
}

// ---- Memory references -----------------------------------------------------------------

// Dependent loads: one random cycle through all cache lines of a `bytes` array.
double PointerChase(std::uint64_t bytes) {
  const std::uint64_t lines = bytes / 64;
  std::vector<std::uint64_t> a(lines * 8);
  std::vector<std::uint32_t> perm(lines);
  std::iota(perm.begin(), perm.end(), 0u);
  std::mt19937_64 rng(1);
  for (std::uint64_t i = lines - 1; i > 0; --i) {  // Sattolo: a single cycle
    std::uint64_t j = rng() % i;
    std::swap(perm[i], perm[j]);
  }
  for (std::uint64_t i = 0; i < lines; ++i) a[perm[i] * 8ull] = perm[(i + 1) % lines] * 8ull;
  perm = {};
  const std::uint64_t loads = 20'000'000;
  std::uint64_t p = 0;
  auto t = Clock::now();
  for (std::uint64_t i = 0; i < loads; ++i) p = a[p];
  double s = Since(t);
  if (p == 1) std::printf(" ");
  return loads / s;
}

// Independent loads: a gather at hashed positions of a `bytes` array (no dependency between
// loads, so the core overlaps as many misses as it can).
double Gather(std::uint64_t bytes) {
  const std::uint64_t n = bytes / 4;
  std::vector<std::uint32_t> a(n);
  for (std::uint64_t i = 0; i < n; ++i) a[i] = static_cast<std::uint32_t>(i);
  const std::uint64_t loads = 100'000'000;
  std::uint64_t sum = 0;
  auto t = Clock::now();
  for (std::uint64_t i = 0; i < loads; ++i) sum += a[Mix(i) % n];
  double s = Since(t);
  if (sum == 1) std::printf(" ");
  return loads / s;
}

// ---- Synthetic CSR straight into a store -----------------------------------------------

template <typename T>
void PutColumn(storage::Update* u, const char* name, storage::DType dt, const std::vector<T>& v) {
  storage::ColumnSpec spec{name, dt, 1, 0, static_cast<int>(storage::Codec::kNone)};
  storage::ColumnWriter* w = Check(u->AddColumn(spec), name);
  Check(w->AppendValues<T>(v), name);
}

// Items get 1 + (geometric) contexts, mean `mean_degree`; contexts are drawn with a skew
// (popular contexts are large), so walks hit both hubs and the long tail.
void BuildSyntheticStore(const std::string& dir, std::uint64_t items, std::uint64_t contexts,
                         double mean_degree) {
  auto t = Clock::now();
  std::vector<std::uint64_t> ioff(items + 1, 0);
  std::vector<NodeId> itgt;
  itgt.reserve(static_cast<std::size_t>(items * mean_degree * 1.02));
  std::vector<std::uint64_t> coff(contexts + 1, 0);
  std::uint64_t r = 7;
  auto next = [&] { return Mix(++r); };
  const double p = 1.0 / mean_degree;
  for (std::uint64_t i = 0; i < items; ++i) {
    double u = (next() >> 11) * 0x1.0p-53;
    std::uint64_t d = 1 + static_cast<std::uint64_t>(std::log1p(-u) / std::log1p(-p));
    d = std::min<std::uint64_t>(d, 1000);
    for (std::uint64_t k = 0; k < d; ++k) {
      double v = (next() >> 11) * 0x1.0p-53;
      NodeId c = static_cast<NodeId>(std::min<double>(contexts - 1, contexts * v * v));
      // Scatter popular contexts over the id space.
      c = static_cast<NodeId>((c * 2654435761ull) % contexts);
      itgt.push_back(c);
      ++coff[c + 1];
    }
    ioff[i + 1] = itgt.size();
  }
  for (std::uint64_t c = 0; c < contexts; ++c) coff[c + 1] += coff[c];
  std::vector<NodeId> ctgt(itgt.size());
  {
    std::vector<std::uint64_t> fill(coff.begin(), coff.end() - 1);
    for (std::uint64_t i = 0; i < items; ++i) {
      for (std::uint64_t e = ioff[i]; e < ioff[i + 1]; ++e) ctgt[fill[itgt[e]]++] = static_cast<NodeId>(i);
    }
  }
  std::printf("synthetic graph: %llu items, %llu contexts, %zu edges, built in %.1fs\n",
              (unsigned long long)items, (unsigned long long)contexts, itgt.size(), Since(t));
  storage::StoreOptions so;
  so.codec = storage::Codec::kNone;
  auto store = Check(storage::Store::Create(dir, so, true), "create store");
  auto up = Check(store->BeginUpdate(), "update");
  PutColumn(up.get(), storage::columns::kItemOffsets, storage::DType::kU64, ioff);
  PutColumn(up.get(), storage::columns::kItemTargets, storage::DType::kU32, itgt);
  PutColumn(up.get(), storage::columns::kContextOffsets, storage::DType::kU64, coff);
  PutColumn(up.get(), storage::columns::kContextTargets, storage::DType::kU32, ctgt);
  up->SetCount("items", items);
  up->SetCount("contexts", contexts);
  up->SetCount("edges", itgt.size());
  Check(up->Publish(), "publish");
  up.reset();
  Check(store->Seal(), "seal");
}

std::string TempDirFor(const Args& a, const char* name) {
  std::string base = a.dir.empty() ? std::filesystem::temp_directory_path().string() + "/walker_bench"
                                   : a.dir;
  std::filesystem::create_directories(base);
  return base + "/" + name;
}

// ---- Modes -------------------------------------------------------------------------------

void Speed(const Args& a) {
  const std::uint64_t bytes = a.adjacency_mb << 20;
  // Adjacency bytes ~ 8 per edge (both target arrays) + 8 per item + 8 per context.
  const double mean_degree = 12;
  const std::uint64_t items = static_cast<std::uint64_t>(bytes / (8 * mean_degree + 8 + 8.0 / 5));
  const std::uint64_t contexts = items / 5;
  std::string dir = TempDirFor(a, "speed_store");
  BuildSyntheticStore(dir, items, contexts, mean_degree);
  auto store = Check(storage::Store::Open(dir, storage::StoreOptions{}), "open");
  auto graph = Check(walker::WalkGraph::Open(*store), "walk graph");
  const std::uint64_t adj_bytes = graph->num_edges() * 8 + (graph->num_items() + 1) * 8 +
                                  (graph->num_contexts() + 1) * 8;
  std::printf("adjacency %.0f MiB in the LMDB map (pinned in RAM: %llu bytes)\n",
              adj_bytes / 1048576.0, (unsigned long long)graph->pinned_bytes());

  double chase = PointerChase(adj_bytes);
  double gather = Gather(adj_bytes);
  std::printf("reference over %.0f MiB: dependent loads %.2fM/s, independent loads %.1fM/s\n",
              adj_bytes / 1048576.0, chase / 1e6, gather / 1e6);

  walker::WalkOptions o;  // defaults: T 50, 200 walks x 3 steps
  const std::uint64_t sources = std::min<std::uint64_t>(a.sources, graph->num_items());
  // Sources spread over the id space (every k-th block) would need several calls; a
  // contiguous range is fine: after the first hop every access is random.
  const NodeId first = static_cast<NodeId>(graph->num_items() / 3);
  auto run = [&](int threads, std::uint32_t lanes, std::uint64_t n) {
    tbb::task_arena arena(threads);
    walker::WalkOptions oo = o;
    oo.lanes = lanes;
    double s = 0;
    std::uint64_t steps = 0;
    arena.execute([&] {
      auto t = Clock::now();
      auto r = Check(walker::ComputeNeighborhoods(*graph, first, n, oo), "walk");
      s = Since(t);
      steps = r.steps;
    });
    return std::pair<double, double>(2.0 * steps / s, s);  // hops/s
  };
  run(1, 32, 2000);  // warm the page cache / TLB
  std::printf("\nlanes sweep (1 thread, %llu sources, T=%u, %u walks x %u steps):\n",
              (unsigned long long)sources / 4, o.top_t, o.walks_per_node, o.walk_length);
  for (std::uint32_t lanes : {1u, 4u, 8u, 16u, 32u, 64u, 128u}) {
    auto [hops, s] = run(1, lanes, sources / 4);
    std::printf("  lanes %3u: %6.2fM hops/s (%4.0f%% of gather)\n", lanes, hops / 1e6,
                100 * hops / gather);
  }
  std::printf("\nthreads (lanes 32, %llu sources):\n", (unsigned long long)sources);
  double one = 0;
  for (int threads : {1, 2}) {
    auto [hops, s] = run(threads, 32, sources);
    if (threads == 1) one = hops;
    std::printf("  %d thread%s: %6.2fM hops/s total, %6.2fM hops/s per thread "
                "(%.0f%% of gather; %.2fx of 1 thread), %.2fs\n",
                threads, threads > 1 ? "s" : " ", hops / 1e6, hops / threads / 1e6,
                100 * hops / threads / gather, hops / one, s);
  }
  std::printf("\nPPR (1 query, 20000 walks, restart 0.3):");
  walker::PprOptions po;
  auto t = Clock::now();
  const int queries = 50;
  for (int q = 0; q < queries; ++q) {
    Check(walker::PersonalizedPageRank(*graph, static_cast<NodeId>(first + q * 7919), po), "ppr");
  }
  std::printf(" %.1f ms per query\n", 1000 * Since(t) / queries);
  store.reset();
  std::filesystem::remove_all(dir);
}

// Generated graph (tools::Generate) ingested into a store; returns the store dir.
std::string GeneratedStore(const Args& a, std::uint64_t items, std::uint64_t contexts,
                           std::uint64_t edges, std::string* gen_dir) {
  *gen_dir = TempDirFor(a, ("gen_" + std::to_string(items)).c_str());
  std::string store_dir = *gen_dir + "_store";
  if (!std::filesystem::exists(store_dir)) {
    tools::GenerateOptions g;
    g.out_dir = *gen_dir;
    g.items = items;
    g.contexts = contexts;
    g.edges = edges;
    g.dim = 1;
    auto t = Clock::now();
    auto rep = Check(tools::Generate(g), "generate");
    std::printf("generated %llu edges in %.1fs\n", (unsigned long long)rep.edges_written,
                Since(t));
    storage::IngestOptions io;
    io.store_dir = store_dir;
    io.edges_path = *gen_dir + "/edges.tsv";
    io.header = 0;
    io.progress = false;
    io.store.codec = storage::Codec::kNone;
    t = Clock::now();
    auto ir = Check(storage::Ingest(io), "ingest");
    std::printf("ingested %llu items, %llu contexts, %llu edges in %.1fs\n",
                (unsigned long long)ir.items, (unsigned long long)ir.contexts,
                (unsigned long long)ir.edges, Since(t));
  }
  return store_dir;
}

void All(const Args& a) {
  const std::uint64_t items = a.items ? a.items : 1'000'000;
  const std::uint64_t contexts = a.contexts ? a.contexts : items / 5;
  const std::uint64_t edges = a.edges ? a.edges : items * 10;
  std::string gen;
  std::string dir = GeneratedStore(a, items, contexts, edges, &gen);
  const int threads = a.threads ? a.threads : static_cast<int>(tbb::info::default_concurrency());
  tbb::global_control gc(tbb::global_control::max_allowed_parallelism, threads);
  auto store = Check(storage::Store::Open(dir, storage::StoreOptions{}), "open");
  walker::WalkStageOptions o;
  o.pairs.heldout_path = gen + "/truth.tsv";
  o.pairs.skip_unknown = true;
  auto r = Check(walker::RunWalkStage(store.get(), o), "walk stage");
  std::printf("all neighbourhoods: %llu items, T=%u, %u walks x %u steps, %d threads: walks "
              "%.1fs (%.1fM hops/s), stage total %.1fs (pairs, write, publish); %llu train "
              "pairs, %llu held out\n",
              (unsigned long long)r.items, o.walk.top_t, o.walk.walks_per_node,
              o.walk.walk_length, threads, r.walk_seconds, 2.0 * r.steps / r.walk_seconds / 1e6,
              r.seconds, (unsigned long long)r.train_pairs, (unsigned long long)r.heldout_pairs);
}

// Stability (top-T overlap between two seeds), agreement with a long reference run, and
// community purity (share of neighbours in the item's planted community), against cost.
void Defaults(const Args& a) {
  const std::uint64_t items = a.items ? a.items : 100'000;
  const std::uint64_t contexts = a.contexts ? a.contexts : items / 5;
  const std::uint64_t edges = a.edges ? a.edges : items * 10;
  std::string gen;
  std::string dir = GeneratedStore(a, items, contexts, edges, &gen);
  auto store = Check(storage::Store::Open(dir, storage::StoreOptions{}), "open");
  auto graph = Check(walker::WalkGraph::Open(*store), "walk graph");
  auto ids = Check(storage::IdMap::Open(*store, NodeKind::kItem), "ids");
  std::unordered_map<std::uint64_t, std::uint32_t> community;
  {
    std::ifstream in(gen + "/communities.tsv");
    std::uint64_t item, c;
    while (in >> item >> c) community[item] = static_cast<std::uint32_t>(c);
  }
  const std::uint64_t n = std::min<std::uint64_t>(a.sample, graph->num_items());
  std::vector<std::uint32_t> comm_of(n);
  auto comm_id = [&](NodeId v) {
    return community[std::strtoull(ids->Name(v).value().c_str(), nullptr, 10)];
  };
  for (NodeId u = 0; u < n; ++u) comm_of[u] = comm_id(u);
  const std::uint32_t t = 50;
  auto top_sets = [&](const walker::Neighborhoods& nb) {
    std::vector<std::set<NodeId>> s(n);
    for (std::uint64_t r = 0; r < n; ++r) {
      for (std::uint32_t j = 0; j < nb.counts[r]; ++j) s[r].insert(nb.neighbors[r * t + j]);
    }
    return s;
  };
  auto overlap = [&](const std::vector<std::set<NodeId>>& x,
                     const std::vector<std::set<NodeId>>& y) {
    double sum = 0;
    std::uint64_t rows = 0;
    for (std::uint64_t r = 0; r < n; ++r) {
      std::size_t denom = std::max(x[r].size(), y[r].size());
      if (denom == 0) continue;
      std::size_t common = 0;
      for (NodeId v : x[r]) common += y[r].count(v);
      sum += static_cast<double>(common) / denom;
      ++rows;
    }
    return rows ? sum / rows : 1.0;
  };
  std::printf("\nwalks length restart | steps/item  sec/1M items(2 thr) | seed-overlap@50 "
              "ref-overlap@50 purity  weighted-purity\n");
  struct Config {
    std::uint32_t walks, length, stop_nodes, stop_visits;
  };
  std::vector<Config> configs;
  for (std::uint32_t length : {2u, 3u, 4u}) {
    if (a.early_only) break;
    for (std::uint32_t walks : {25u, 50u, 100u, 200u, 400u, 800u}) {
      configs.push_back({walks, length, 0, 0});
    }
  }
  for (auto [nodes, visits] : {std::pair{50u, 4u}, std::pair{50u, 8u}, std::pair{100u, 8u}}) {
    configs.push_back({800, 2, nodes, visits});
  }
  std::map<std::uint32_t, std::vector<std::set<NodeId>>> refs;
  for (const Config& cfg : configs) {
    const std::uint32_t length = cfg.length;
    walker::WalkOptions ref;
    ref.top_t = t;
    ref.walks_per_node = 3200;
    ref.walk_length = length;
    ref.seed = 99;
    if (!refs.count(length)) {
      refs[length] = top_sets(Check(walker::ComputeNeighborhoods(*graph, 0, n, ref), "ref"));
    }
    const auto& ref_sets = refs[length];
    {
      walker::WalkOptions o = ref;
      o.walks_per_node = cfg.walks;
      o.early_stop_nodes = cfg.stop_nodes;
      o.early_stop_visits = cfg.stop_visits;
      o.seed = 1;
      auto tm = Clock::now();
      auto x = Check(walker::ComputeNeighborhoods(*graph, 0, n, o), "walk");
      double sec = Since(tm);
      o.seed = 2;
      auto y = Check(walker::ComputeNeighborhoods(*graph, 0, n, o), "walk");
      auto xs = top_sets(x), ys = top_sets(y);
      double pure = 0, wpure = 0;
      std::uint64_t cnt = 0, rows = 0;
      for (std::uint64_t r = 0; r < n; ++r) {
        if (x.counts[r] == 0) continue;
        ++rows;
        for (std::uint32_t j = 0; j < x.counts[r]; ++j) {
          bool same = comm_id(x.neighbors[r * t + j]) == comm_of[r];
          pure += same;
          wpure += same * x.weights[r * t + j];
          ++cnt;
        }
      }
      char stop[32] = "";
      if (cfg.stop_nodes) std::snprintf(stop, sizeof stop, "  early stop %u@%u", cfg.stop_nodes, cfg.stop_visits);
      std::printf("%5u %6u %7.2f | %10.0f %12.1f | %14.3f %14.3f %6.3f %8.3f%s\n", cfg.walks,
                  length, 0.0, double(x.steps) / n, sec / n * 1e6, overlap(xs, ys), overlap(xs, ref_sets),
                  cnt ? pure / cnt : 0, rows ? wpure / rows : 0, stop);
      std::fflush(stdout);
    }
  }
}

}  // namespace

int main(int argc, char** argv) {
  Args a = Parse(argc, argv);
  std::printf("walker_bench %s on %u hardware threads\n", a.mode.c_str(),
              static_cast<unsigned>(tbb::info::default_concurrency()));
  if (a.mode == "speed") {
    Speed(a);
  } else if (a.mode == "all") {
    All(a);
  } else if (a.mode == "defaults") {
    Defaults(a);
  } else {
    std::fprintf(stderr, "modes: speed, all, defaults\n");
    return 2;
  }
  return 0;
}
