// infer_bench: layer-by-layer inference against the naive per-node Algorithm 2, linear
// growth (N and 4N items), and FLOP/s against plain GEMMs of the same shapes, all measured
// in one run. Results go in docs/BENCHMARKS.md ("## infer").
//
// The stores are generated here (random features, T uniform random neighbours per item with
// random weights) and a randomly initialised model is written as their checkpoint: inference
// cost does not depend on trained values. Uses train/checkpoint.h (private to train) to write
// that checkpoint, like the train tests do.
//
//   infer_bench [--items 1000000] [--T 50] [--features 64] [--hidden 128] [--dim 64]
//               [--threads 0] [--naive-sample 100] [--budget 2G] [--dir /tmp/infer_bench]
//               [--keep 1]   (leave the stores in --dir)
#include <ATen/ATen.h>
#include <sys/mman.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "infer/infer.h"
#include "storage/allocator.h"
#include "storage/store.h"
#include "train/checkpoint.h"
#include "train/model.h"
#include "walker/walker.h"

namespace {

using namespace pgraph;

// Microseconds per 4 KiB page to fault in fresh anonymous memory (256 MiB mapped, written
// once per page, unmapped). Inference touches ~1 GiB fresh per million items; where a fault
// costs ~20 us instead of ~1.5 (hypervisors that reclaim the guest's freed memory), that alone
// is seconds, and it varies from run to run: this says which machine the numbers came from.
double FreshPageMicros() {
  constexpr std::size_t kBytes = 256u << 20, kPage = 4096;
  void* p = mmap(nullptr, kBytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) return -1;
  const auto t = std::chrono::steady_clock::now();
  for (std::size_t i = 0; i < kBytes; i += kPage) static_cast<volatile char*>(p)[i] = 1;
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
  munmap(p, kBytes);
  return s * 1e6 / (kBytes / kPage);
}

struct Args {
  std::uint64_t items = 1000000;
  std::uint32_t T = 50, F = 64, hidden = 128, dim = 64, layers = 2;
  int threads = 0;
  std::uint32_t naive_sample = 100;
  std::string budget = "2G";
  std::string dir = "/tmp/infer_bench";
  // Existing walked stores (N items, then N/4) instead of generated ones, e.g. of
  // `pgraph generate`: their features and walk.* columns are used, a random checkpoint is
  // written into them, and they are kept.
  std::string store_n, store_quarter;
  std::string locality = "auto";
  bool keep = false;  // keep the generated stores (to profile `pgraph infer` on them)
};

double Now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

void Die(const Status& s, const char* what) {
  if (s.ok()) return;
  std::fprintf(stderr, "infer_bench: %s: %s\n", what, s.ToString().c_str());
  std::exit(1);
}

// A store with `n` items: features, walk.neighbors / walk.weights, and a checkpoint.
void MakeStore(const std::string& dir, const Args& a, std::uint64_t n) {
  storage::StoreOptions so;
  so.codec = storage::Codec::kNone;
  auto created = storage::Store::Create(dir, so, /*overwrite=*/true);
  Die(created.status(), "create");
  auto& store = *created;
  auto up = store->BeginUpdate();
  Die(up.status(), "update");
  auto fw = (*up)->AddColumn({storage::columns::kFeatures, storage::DType::kF32, a.F, 0, -1});
  auto nw = (*up)->AddColumn({storage::columns::kWalkNeighbors, storage::DType::kU32, a.T, 0, -1});
  auto ww = (*up)->AddColumn({storage::columns::kWalkWeights, storage::DType::kF32, a.T, 0, -1});
  Die(fw.status(), "features");
  Die(nw.status(), "neighbors");
  Die(ww.status(), "weights");
  std::mt19937_64 rng(42);
  std::normal_distribution<float> gauss(0, 1);
  const std::uint64_t block = 65536;
  std::vector<float> f, w;
  std::vector<NodeId> nb;
  for (std::uint64_t first = 0; first < n; first += block) {
    const std::uint64_t rows = std::min(block, n - first);
    f.resize(rows * a.F);
    for (float& x : f) x = gauss(rng);
    nb.resize(rows * a.T);
    w.resize(rows * a.T);
    for (std::uint64_t r = 0; r < rows; ++r) {
      double sum = 0;
      for (std::uint32_t t = 0; t < a.T; ++t) {
        nb[r * a.T + t] = static_cast<NodeId>(rng() % n);
        w[r * a.T + t] = 1.0f / static_cast<float>(t + 1);  // Zipf-like visit counts
        sum += w[r * a.T + t];
      }
      for (std::uint32_t t = 0; t < a.T; ++t) w[r * a.T + t] /= static_cast<float>(sum);
    }
    Die((*fw)->AppendValues<float>(f), "append");
    Die((*nw)->AppendValues<NodeId>(nb), "append");
    Die((*ww)->AppendValues<float>(w), "append");
  }
  (*up)->SetCount("items", n);
  (*up)->SetCount("feature_dim", a.F);
  Die((*up)->Publish(), "publish");
  Die(store->Seal(), "seal");
}

// A randomly initialised model as the latest checkpoint of the store at `dir` (n items).
void WriteCheckpoint(const std::string& dir, const Args& a, std::uint64_t n) {
  train::ModelConfig c;
  c.layers = a.layers;
  c.dim = a.dim;
  c.hidden = a.hidden;
  c.neighbors = a.T;
  c.feature_dim = a.F;
  c.num_items = n;
  at::manual_seed(1);
  train::PinSageModel model(c);
  train::CheckpointData data;
  train::TrainOptions opts;
  opts.layers = c.layers;
  opts.dim = c.dim;
  opts.hidden = c.hidden;
  data.meta["config"] = train::FormatConfig(c, opts);
  data.meta["epoch"] = std::to_string(1);
  for (auto& [name, t] : train::PublicParameters(*model)) {
    train::NamedArray arr;
    arr.shape = t.sizes().vec();
    at::Tensor ct = t.detach().contiguous();
    arr.data.assign(ct.data_ptr<float>(), ct.data_ptr<float>() + ct.numel());
    data.arrays[name] = std::move(arr);
  }
  auto blob = train::SerializeCheckpoint(data);
  auto opened = storage::Store::Open(dir, {});
  Die(opened.status(), "open");
  auto up2 = (*opened)->BeginUpdate();
  Die(up2.status(), "update");
  auto cw = (*up2)->AddColumn({"checkpoint", storage::DType::kU8, 1, 0,
                               static_cast<int>(storage::Codec::kNone)});
  Die(cw.status(), "checkpoint");
  Die((*cw)->Append(blob), "append");
  Die((*up2)->Publish(), "publish");
}

infer::InferReport RunInfer(const std::string& dir, const Args& a, const std::string& locality,
                            bool stored_layout = true) {
  infer::InferOptions o;
  o.store_dir = dir;
  o.stored_layout = stored_layout;
  auto mode = infer::ParseLocalityMode(locality);
  Die(mode.status(), "--locality");
  o.locality = *mode;
  o.threads = a.threads;
  o.build_index = false;
  auto b = storage::ParseByteSize(a.budget);
  Die(b.status(), "--budget");
  o.memory_budget = *b;
  auto r = infer::Infer(o);
  Die(r.status(), "infer");
  return *r;
}

}  // namespace

int main(int argc, char** argv) {
  pgraph::storage::ReuseFreedMemory();  // as `pgraph` does
  Args a;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string k = argv[i], v = argv[i + 1];
    if (k == "--items") a.items = std::stoull(v);
    else if (k == "--T") a.T = static_cast<std::uint32_t>(std::stoul(v));
    else if (k == "--features") a.F = static_cast<std::uint32_t>(std::stoul(v));
    else if (k == "--hidden") a.hidden = static_cast<std::uint32_t>(std::stoul(v));
    else if (k == "--dim") a.dim = static_cast<std::uint32_t>(std::stoul(v));
    else if (k == "--threads") a.threads = std::stoi(v);
    else if (k == "--naive-sample") a.naive_sample = static_cast<std::uint32_t>(std::stoul(v));
    else if (k == "--budget") a.budget = v;
    else if (k == "--dir") a.dir = v;
    else if (k == "--keep") a.keep = v == "1" || v == "yes";
    else if (k == "--stores") {
      const auto comma = v.find(',');
      if (comma == std::string::npos) {
        std::fprintf(stderr, "--stores takes N_DIR,QUARTER_DIR\n");
        return 2;
      }
      a.store_n = v.substr(0, comma);
      a.store_quarter = v.substr(comma + 1);
    } else if (k == "--locality") a.locality = v;
    else {
      std::fprintf(stderr, "unknown option %s\n", k.c_str());
      return 2;
    }
  }
  if (a.threads == 0) a.threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  const bool given = !a.store_n.empty();
  const std::string big = given ? a.store_n : a.dir + "/n";
  const std::string small = given ? a.store_quarter : a.dir + "/quarter";
  double t = Now();
  if (given) {
    // The stores' own sizes: N, T and F come from them.
    std::uint64_t n[2];
    for (int i = 0; i < 2; ++i) {
      storage::StoreOptions so;
      so.read_only = true;
      auto st = storage::Store::Open(i == 0 ? big : small, so);
      Die(st.status(), "open --stores");
      auto nbrs = (*st)->OpenColumn(storage::columns::kWalkNeighbors);
      Die(nbrs.status(), "walk.neighbors");
      n[i] = (*st)->num_items();
      a.T = (*nbrs)->info().width;
      a.F = static_cast<std::uint32_t>((*st)->count("feature_dim"));
    }
    a.items = n[0];
    // Stores walked before `walk --layout` existed get their layout now, as a walk would.
    for (const std::string& dir : {big, small}) {
      auto st = storage::Store::Open(dir, {});
      Die(st.status(), "open --stores");
      if (walker::HasCurrentLayout(**st)) continue;
      auto lr = walker::WriteLocalityLayout(st->get(), walker::LayoutMode::kAuto);
      Die(lr.status(), "layout");
      std::printf("%s: locality layout %s (%.2f s)\n", dir.c_str(),
                  lr->written ? "written" : lr->note.c_str(), lr->seconds);
    }
    WriteCheckpoint(big, a, n[0]);
    WriteCheckpoint(small, a, n[1]);
    std::printf("stores %s (%llu items) and %s (%llu items), T=%u, F=%u\n", big.c_str(),
                static_cast<unsigned long long>(n[0]), small.c_str(),
                static_cast<unsigned long long>(n[1]), a.T, a.F);
  } else {
    std::filesystem::create_directories(a.dir);
    MakeStore(small, a, a.items / 4);
    WriteCheckpoint(small, a, a.items / 4);
    MakeStore(big, a, a.items);
    WriteCheckpoint(big, a, a.items);
    std::printf("generated stores (%llu and %llu items, uniform random neighbours) in %.1f s\n",
                static_cast<unsigned long long>(a.items / 4),
                static_cast<unsigned long long>(a.items), Now() - t);
  }
  std::printf("infer_bench: K=%u T=%u F=%u m=%u d=%u threads=%d budget=%s locality=%s\n",
              a.layers, a.T, a.F, a.hidden, a.dim, a.threads, a.budget.c_str(),
              a.locality.c_str());

  // The measured runs first, after one run that warms up what a process starts once (thread
  // teams, BLAS kernel selection): later runs in the same process were 0.2-0.5 s slower at N,
  // after the item-order run's gigabytes of fresh memory and store writes. Then the
  // comparisons: item order (the locality gain) and the order computed in the run (a store
  // walked without a layout).
  const double fault_before = FreshPageMicros();
  RunInfer(small, a, a.locality);
  auto rb = RunInfer(big, a, a.locality);
  auto rs = RunInfer(small, a, a.locality);
  auto ri = RunInfer(big, a, "off");
  auto rc = RunInfer(big, a, a.locality, /*stored_layout=*/false);
  const double fault_after = FreshPageMicros();
  auto line = [](const char* name, const infer::InferReport& r) {
    std::printf("%-10s items %9llu  total %7.2f s  %8.0f items/s  %.2f GFLOP/s\n", name,
                static_cast<unsigned long long>(r.items), r.seconds, r.items / r.seconds,
                r.flops / r.seconds / 1e9);
    for (const auto& l : r.per_layer) {
      std::printf("           layer %u: project %.2f s, pool %.2f s (%llu range(s), blocks %llu)\n",
                  l.layer, l.project_seconds, l.pool_seconds,
                  static_cast<unsigned long long>(l.partitions),
                  static_cast<unsigned long long>(l.block_rows));
    }
    std::printf("           head %.2f s\n", r.head_seconds);
    if (r.locality_order) {
      std::printf("           locality order (%s) %.2f s (%.0f%% of neighbours within 4096 "
                  "positions)\n",
                  r.layout_source.c_str(), r.order_seconds, 100.0 * r.locality_share);
    } else {
      std::printf("           item order: %s\n", r.layout_note.c_str());
    }
  };
  line("N, item order", ri);
  line("N, order computed", rc);
  line("N/4", rs);
  line("N", rb);
  std::printf("linear growth: time(N) / time(N/4) = %.2f (goal <= 4.5)\n", rb.seconds / rs.seconds);
  std::printf("fresh memory: %.1f us per 4 KiB page before the runs, %.1f after (~1-2 where "
              "nothing reclaims it)\n",
              fault_before, fault_after);
  std::printf("layout: item order / %s = %.2fx; order computed / %s = %.2fx\n",
              a.locality.c_str(), ri.seconds / rb.seconds, rb.layout_source.c_str(),
              rc.seconds / rb.seconds);

  // Naive per-node Algorithm 2 on a sample, extrapolated to every item.
  {
    storage::StoreOptions so;
    so.read_only = true;
    auto store = storage::Store::Open(big, so);
    Die(store.status(), "open");
    std::vector<std::uint32_t> sample(a.naive_sample);
    std::mt19937_64 rng(7);
    for (auto& s : sample) s = static_cast<std::uint32_t>(rng() % a.items);
    std::vector<float> out(sample.size() * a.dim);
    double flops = 0;
    at::set_num_threads(a.threads);
    t = Now();
    Die(infer::NaiveEmbed(**store, "", sample, out, &flops), "naive");
    const double per = (Now() - t) / sample.size();
    const double naive_total = per * a.items;
    std::printf("naive per-node: %.2f ms/item (%zu sampled), %.1f MFLOP/item -> %.0f s for N "
                "(extrapolated)\n",
                per * 1e3, sample.size(), flops / sample.size() / 1e6, naive_total);
    std::printf("speed-up layer-by-layer vs naive: %.1fx (goal >= 20x)\n",
                naive_total / rb.seconds);
    // Check the sample against the layer-by-layer result.
    std::uint32_t d = 0;
    auto emb = infer::ReadEmbeddings(**store, &d);
    Die(emb.status(), "read embeddings");
    double diff = 0;
    for (std::size_t j = 0; j < sample.size(); ++j) {
      for (std::uint32_t i = 0; i < d; ++i) {
        diff = std::max<double>(diff, std::abs(out[j * d + i] - (*emb)[sample[j] * d + i]));
      }
    }
    std::printf("max |naive - layer-by-layer| on the sample: %.2e\n", diff);
  }

  // The arithmetic bound: GEMMs of the same shapes, same threads, same process.
  auto gemm = infer::GemmFlopsPerSecond(rb.gemm_m, rb.gemm_k, rb.gemm_n, a.threads, 3.0);
  Die(gemm.status(), "gemm");
  std::printf("plain GEMM of the same shapes: %.2f GFLOP/s; inference %.2f GFLOP/s = %.0f%% "
              "of it (goal >= 50%%); with the order computed: %.0f%%\n",
              *gemm / 1e9, rb.flops / rb.seconds / 1e9, 100.0 * rb.flops / rb.seconds / *gemm,
              100.0 * rc.flops / rc.seconds / *gemm);
  // Pooling is a sparse gather (2 flops per 4 bytes read at random): its bound is memory, not
  // the GEMM rate. The same kernel over an in-memory matrix of the rows one layer gathers
  // (importance pooling gathers W_pool p, d wide, when d <= m) gives the machine's bound for
  // the whole run: its GEMM flops at the plain-GEMM rate plus its gathers at that rate.
  const std::uint32_t pw = a.dim <= a.hidden ? a.dim : a.hidden;
  auto gather = infer::GatherRowsPerSecond(a.items, pw, a.T, a.threads, 3.0);
  Die(gather.status(), "gather");
  const double gathered = static_cast<double>(a.layers) * a.items * a.T;
  const double gemm_flops = rb.flops - 2.0 * gathered * pw;
  const double bound = gemm_flops / *gemm + gathered / *gather;
  std::printf("plain gather of the same rows (%u floats, in memory): %.1f M rows/s\n", pw,
              *gather / 1e6);
  std::printf("bound = GEMM flops at the plain-GEMM rate + gathers at the plain-gather rate = "
              "%.2f s (%.2f + %.2f); inference %.2f s = %.0f%% of the bound\n",
              bound, gemm_flops / *gemm, gathered / *gather, rb.seconds,
              100.0 * bound / rb.seconds);
  if (!a.keep && !given) std::filesystem::remove_all(a.dir);
  return 0;
}
