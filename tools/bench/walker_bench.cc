// walker_bench: random-walk throughput against memory references, whole-graph neighbourhood
// time, and the stability/cost measurements behind the walk defaults (docs/WALKER.md).
//
//   walker_bench speed   [--adjacency-mb 1024] [--sources 20000] [--repeat 3] [--keep 0|1]
//                        [--dir DIR]
//   walker_bench all     [--items 1000000] [--contexts 200000] [--edges 10000000] [--dir DIR]
//   walker_bench defaults [--items 100000] [--contexts 20000] [--edges 1000000] [--sample 4000]
//
// speed: builds a synthetic bipartite CSR of about --adjacency-mb (both directions, raw LMDB
// columns, so walks read the map in place), measures dependent random loads/s (pointer
// chasing over one random cycle of cache lines) and independent random loads/s (a gather)
// over an array of the same size (the gather also with 2 threads at once: what the memory
// system gives a second core right now), then walk steps/s with 1 and 2 threads and per lane
// count. A step is item -> context -> item: two hops, each one offset pair plus one target,
// "about two random loads" per hop. Each figure is the best and median of --repeat runs;
// CPU use (user+sys / wall) shows whether the threads really had a core each. --keep 1
// keeps the synthetic store and reuses it next time (same --adjacency-mb and --dir).
#include <sys/resource.h>
#include <tbb/global_control.h>
#include <tbb/info.h>
#include <tbb/parallel_invoke.h>
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
  std::uint64_t adjacency_mb = 1024, sources = 20000, repeat = 3;
  bool keep = false;
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
    else if (k == "--repeat") a.repeat = std::max<std::uint64_t>(1, num());
    else if (k == "--keep") a.keep = num() != 0;
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
double GatherOver(const std::vector<std::uint32_t>& a, std::uint64_t salt) {
  const std::uint64_t n = a.size();
  const std::uint64_t loads = 100'000'000;
  std::uint64_t sum = 0;
  auto t = Clock::now();
  for (std::uint64_t i = 0; i < loads; ++i) sum += a[Mix(i + salt) % n];
  double s = Since(t);
  if (sum == 1) std::printf(" ");
  return loads / s;
}

std::vector<std::uint32_t> GatherArray(std::uint64_t bytes) {
  std::vector<std::uint32_t> a(bytes / 4);
  for (std::uint64_t i = 0; i < a.size(); ++i) a[i] = static_cast<std::uint32_t>(i);
  return a;
}

// Two gathers at once, one per thread, over the same array: per-thread rates.
std::pair<double, double> Gather2(const std::vector<std::uint32_t>& a) {
  double r1 = 0, r2 = 0;
  tbb::task_arena arena(2);
  arena.execute([&] {
    tbb::parallel_invoke([&] { r1 = GatherOver(a, 0); }, [&] { r2 = GatherOver(a, 1ull << 40); });
  });
  return {r1, r2};
}

// CPU seconds (user + sys) of the whole process so far.
double CpuSeconds() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return u.ru_utime.tv_sec + u.ru_stime.tv_sec + 1e-6 * (u.ru_utime.tv_usec + u.ru_stime.tv_usec);
}

std::string LoadAverage() {
  std::ifstream in("/proc/loadavg");
  std::string a, b, c;
  in >> a >> b >> c;
  return a + " " + b + " " + c;
}

// Best (max) and median of rates.
std::pair<double, double> BestMedian(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return {v.back(), v[v.size() / 2]};
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
  std::string dir = TempDirFor(a, ("speed_store_" + std::to_string(a.adjacency_mb)).c_str());
  if (a.keep && std::filesystem::exists(dir + "/PGRAPH")) {
    std::printf("reusing the synthetic store in %s\n", dir.c_str());
  } else {
    BuildSyntheticStore(dir, items, contexts, mean_degree);
  }
  auto store = Check(storage::Store::Open(dir, storage::StoreOptions{}), "open");
  auto graph = Check(walker::WalkGraph::Open(*store), "walk graph");
  const std::uint64_t adj_bytes = graph->num_edges() * 8 + (graph->num_items() + 1) * 8 +
                                  (graph->num_contexts() + 1) * 8;
  std::printf("graph: %llu items, %llu contexts, %llu edges; adjacency %.0f MiB in the LMDB map "
              "(pinned in RAM: %llu bytes)\n",
              (unsigned long long)graph->num_items(), (unsigned long long)graph->num_contexts(),
              (unsigned long long)graph->num_edges(), adj_bytes / 1048576.0,
              (unsigned long long)graph->pinned_bytes());
  std::printf("load average at start: %s\n", LoadAverage().c_str());

  const std::uint64_t reps = a.repeat;
  std::vector<double> chase_v, gather_v, gather2_v;
  {
    std::vector<std::uint32_t> arr = GatherArray(adj_bytes);
    for (std::uint64_t r = 0; r < reps; ++r) {
      gather_v.push_back(GatherOver(arr, 0));
      auto [g1, g2] = Gather2(arr);
      gather2_v.push_back((g1 + g2) / 2);
    }
  }
  for (std::uint64_t r = 0; r < reps; ++r) chase_v.push_back(PointerChase(adj_bytes));
  auto [chase, chase_med] = BestMedian(chase_v);
  auto [gather, gather_med] = BestMedian(gather_v);
  auto [gather2, gather2_med] = BestMedian(gather2_v);
  std::printf("references over %.0f MiB (best / median of %llu):\n"
              "  dependent loads (pointer chase), 1 thread:  %6.2f / %6.2f M/s\n"
              "  independent loads (gather),      1 thread:  %6.1f / %6.1f M/s\n"
              "  independent loads (gather), 2 threads: per thread %6.1f / %6.1f M/s "
              "(%.2fx total of 1 thread)\n",
              adj_bytes / 1048576.0, (unsigned long long)reps, chase / 1e6, chase_med / 1e6,
              gather / 1e6, gather_med / 1e6, gather2 / 1e6, gather2_med / 1e6,
              2 * gather2 / gather);

  walker::WalkOptions o;  // defaults: T 50, 400 walks x 2 steps
  const std::uint64_t sources = std::min<std::uint64_t>(a.sources, graph->num_items());
  // A contiguous range of sources is fine: after the first hop every access is random.
  const NodeId first = static_cast<NodeId>(graph->num_items() / 3);
  struct Run {
    double steps_per_s, seconds, cpus, steps_per_cpu_s;
  };
  auto run = [&](int threads, std::uint32_t lanes, std::uint64_t n, NodeId from) {
    tbb::task_arena arena(threads);
    walker::WalkOptions oo = o;
    oo.lanes = lanes;
    Run out{};
    arena.execute([&] {
      double cpu = CpuSeconds();
      auto t = Clock::now();
      auto r = Check(walker::ComputeNeighborhoods(*graph, from, n, oo), "walk");
      out.seconds = Since(t);
      out.cpus = (CpuSeconds() - cpu) / out.seconds;
      out.steps_per_s = r.steps / out.seconds;
      out.steps_per_cpu_s = r.steps / (out.cpus * out.seconds);
    });
    return out;
  };
  run(1, 32, 2000, first);  // warm the page cache / TLB
  const std::uint64_t sweep_sources = sources / 4;
  std::printf("\nlanes sweep (1 thread, %llu sources, T=%u, %u walks x %u steps; best of %llu):\n",
              (unsigned long long)sweep_sources, o.top_t, o.walks_per_node, o.walk_length,
              (unsigned long long)reps);
  for (std::uint32_t lanes : {1u, 4u, 8u, 16u, 24u, 32u, 48u, 64u, 128u}) {
    std::vector<double> v;
    for (std::uint64_t r = 0; r < reps; ++r) v.push_back(run(1, lanes, sweep_sources, first).steps_per_s);
    double best = BestMedian(v).first;
    std::printf("  lanes %3u: %6.2fM steps/s = %6.2fM hops/s (steps %4.0f%% of gather)\n", lanes,
                best / 1e6, 2 * best / 1e6, 100 * best / gather);
  }
  std::printf("\nthreads (default lanes, %llu sources per thread; best / median of %llu):\n",
              (unsigned long long)sources, (unsigned long long)reps);
  double one_best = 0, one_med = 0;
  for (int threads : {1, 2}) {
    std::vector<double> v, cpus, per_cpu;
    for (std::uint64_t r = 0; r < reps; ++r) {
      // Fresh sources each repetition, so no run starts with another's neighbourhoods cached.
      const NodeId from = static_cast<NodeId>(first + (r % 4) * sources * 2);
      Run x = run(threads, 0, sources * threads, from);
      v.push_back(x.steps_per_s / threads);
      cpus.push_back(x.cpus);
      per_cpu.push_back(x.steps_per_cpu_s);
    }
    auto [best, med] = BestMedian(v);
    auto [best_cpu, med_cpu] = BestMedian(per_cpu);
    if (threads == 1) {
      one_best = best;
      one_med = med;
    }
    std::sort(cpus.begin(), cpus.end());
    std::printf("  %d thread%s: per thread %6.2f / %6.2fM steps/s (%5.2f / %5.2fM hops/s); "
                "steps %3.0f%% / hops %3.0f%% of the gather; total %.2fx of 1 thread "
                "(median %.2fx); CPUs busy %.2f; per CPU-second %.2f / %.2fM steps\n",
                threads, threads > 1 ? "s" : " ", best / 1e6, med / 1e6, 2 * best / 1e6,
                2 * med / 1e6, 100 * best / gather, 200 * best / gather,
                threads * best / one_best, threads * med / one_med, cpus[cpus.size() / 2],
                best_cpu / 1e6, med_cpu / 1e6);
  }
  std::printf("  goal: >= 8M steps/s per thread (20%% of the gather); load average now: %s\n",
              LoadAverage().c_str());
  std::printf("\nPPR (1 query, 20000 walks, restart 0.3):");
  walker::PprOptions po;
  auto t = Clock::now();
  const int queries = 50;
  for (int q = 0; q < queries; ++q) {
    Check(walker::PersonalizedPageRank(*graph, static_cast<NodeId>(first + q * 7919), po), "ppr");
  }
  std::printf(" %.1f ms per query\n", 1000 * Since(t) / queries);
  graph.reset();
  store.reset();
  if (!a.keep) std::filesystem::remove_all(dir);
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
  std::printf("load average before the walks: %s\n", LoadAverage().c_str());
  double cpu = CpuSeconds();
  auto r = Check(walker::RunWalkStage(store.get(), o), "walk stage");
  cpu = CpuSeconds() - cpu;
  std::printf("all neighbourhoods: %llu items, T=%u, %u walks x %u steps, %d threads: walks "
              "%.1fs (%.2fM steps/s = %.2fM hops/s; per thread %.2fM steps/s), stage total "
              "%.1fs (pairs, write, publish; CPUs busy %.2f); %llu train pairs, %llu held out\n",
              (unsigned long long)r.items, o.walk.top_t, o.walk.walks_per_node,
              o.walk.walk_length, threads, r.walk_seconds, r.steps / r.walk_seconds / 1e6,
              2.0 * r.steps / r.walk_seconds / 1e6, r.steps / r.walk_seconds / threads / 1e6,
              r.seconds, cpu / r.seconds, (unsigned long long)r.train_pairs,
              (unsigned long long)r.heldout_pairs);
  std::printf("load average after: %s\n", LoadAverage().c_str());
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
