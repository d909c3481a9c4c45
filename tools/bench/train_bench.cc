// train_bench: where training time goes, and how fast it is against two references.
//   1. A generated graph (planted communities): pairs/s with the pipeline off and on in the
//      same run, and the time per stage (sampling, gathering, forward, backward, optimizer).
//   2. The arithmetic bound: the model's FLOP/s during training against plain matrix
//      products of the same shapes (forward + both backward products) timed in this run.
//   3. The peer configuration: MovieLens-100k, 2 layers, 64-d, 10 neighbours, batch 512,
//      2 threads; one negative embedding per pair (512 shared negatives), reported as
//      (q, i, negative) triplets/s against the PyG PinSage-style model's ~24k/s.
// Usage: train_bench [--items N] [--dim d] [--hidden m] [--neighbors T] [--batch B]
//                    [--negatives N] [--threads t] [--steps S] [--movielens DIR]
//                    [--sections 1234] (which parts to run: 1-3 above, 4 the MovieLens quality
//                    check after 5 epochs, 5 a torch x BLAS thread matrix on MovieLens, 6 the
//                    MovieLens step alone on one thread (for profilers); e.g. 3 for the peer
//                    configuration alone)
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include <tbb/global_control.h>

#include "train/trainer.h"

using namespace pgraph;
using namespace pgraph::train;

namespace {

struct Args {
  std::uint32_t items = 20000, communities = 200, feature_dim = 64, neighbors = 10;
  std::uint32_t dim = 64, hidden = 128, batch = 512, negatives = 500, steps = 30;
  int threads = 2;
  std::string sections = "1234";
  std::string movielens = std::string(PGRAPH_SHARED_DATA) + "/movielens-100k";
};

struct Data {
  std::uint32_t items = 0, width = 0, feature_dim = 0;
  std::vector<NodeId> nbrs;
  std::vector<float> weights, features;
  std::vector<std::pair<NodeId, NodeId>> train, heldout;
};

Data Planted(const Args& a) {
  std::mt19937_64 rng(1);
  std::normal_distribution<float> gauss(0, 1);
  std::uniform_real_distribution<double> uni(0, 1);
  Data d;
  d.items = a.items;
  d.width = a.neighbors;
  d.feature_dim = a.feature_dim;
  const std::uint32_t per = a.items / a.communities;
  std::vector<float> centroid(a.communities * a.feature_dim);
  for (float& c : centroid) c = gauss(rng);
  d.features.resize(std::size_t{a.items} * a.feature_dim);
  for (std::uint32_t u = 0; u < a.items; ++u) {
    for (std::uint32_t f = 0; f < a.feature_dim; ++f) {
      d.features[u * a.feature_dim + f] = 0.6f * centroid[(u % a.communities) * a.feature_dim + f] + gauss(rng);
    }
  }
  d.nbrs.resize(std::size_t{a.items} * a.neighbors);
  d.weights.resize(d.nbrs.size());
  for (std::uint32_t u = 0; u < a.items; ++u) {
    double sum = 0;
    for (std::uint32_t t = 0; t < a.neighbors; ++t) {
      NodeId v = uni(rng) < 0.9 ? static_cast<NodeId>((rng() % per) * a.communities + u % a.communities)
                                : static_cast<NodeId>(rng() % a.items);
      d.nbrs[u * a.neighbors + t] = v;
      d.weights[u * a.neighbors + t] = static_cast<float>(1.0 / (t + 1));
      sum += 1.0 / (t + 1);
    }
    for (std::uint32_t t = 0; t < a.neighbors; ++t) d.weights[u * a.neighbors + t] /= static_cast<float>(sum);
    for (int j = 0; j < 10; ++j) {
      NodeId i = static_cast<NodeId>((rng() % per) * a.communities + u % a.communities);
      (j == 0 ? d.heldout : d.train).emplace_back(u, i);
    }
  }
  return d;
}

// MovieLens-100k: items = movies; N(u) = the top-T items by the exact probability of a
// two-step walk item -> user -> item; features = 19 genre flags + standardised year; pairs =
// consecutive ratings of a user (by time), the last one of each user held out.
bool MovieLens(const std::string& dir, std::uint32_t T, Data* d) {
  std::ifstream ratings(dir + "/u.data"), items(dir + "/u.item");
  if (!ratings || !items) return false;
  struct Rating {
    std::uint32_t user, item;
    long time;
  };
  std::vector<Rating> rs;
  std::uint32_t u, i, r;
  long t;
  std::uint32_t n_items = 0, n_users = 0;
  while (ratings >> u >> i >> r >> t) {
    rs.push_back({u - 1, i - 1, t});
    n_items = std::max(n_items, i);
    n_users = std::max(n_users, u);
  }
  std::vector<std::vector<std::uint32_t>> by_item(n_items), by_user(n_users);
  for (const Rating& x : rs) {
    by_item[x.item].push_back(x.user);
    by_user[x.user].push_back(x.item);
  }
  d->items = n_items;
  d->width = T;
  d->nbrs.assign(std::size_t{n_items} * T, kInvalidNode);
  d->weights.assign(d->nbrs.size(), 0.0f);
  std::vector<double> p(n_items);
  for (std::uint32_t it = 0; it < n_items; ++it) {
    std::fill(p.begin(), p.end(), 0.0);
    for (std::uint32_t usr : by_item[it]) {
      for (std::uint32_t v : by_user[usr]) p[v] += 1.0 / by_user[usr].size();
    }
    p[it] = 0;
    std::vector<std::uint32_t> order(n_items);
    for (std::uint32_t v = 0; v < n_items; ++v) order[v] = v;
    std::partial_sort(order.begin(), order.begin() + T, order.end(),
                      [&](std::uint32_t a, std::uint32_t b) { return p[a] > p[b]; });
    double sum = 0;
    for (std::uint32_t k = 0; k < T; ++k) sum += p[order[k]];
    for (std::uint32_t k = 0; k < T && sum > 0; ++k) {
      if (p[order[k]] <= 0) break;
      d->nbrs[it * T + k] = order[k];
      d->weights[it * T + k] = static_cast<float>(p[order[k]] / sum);
    }
  }
  d->feature_dim = 20;
  d->features.assign(std::size_t{n_items} * 20, 0.0f);
  std::string line;
  std::vector<double> years(n_items, 0);
  while (std::getline(items, line)) {
    std::vector<std::string> f;
    std::stringstream ss(line);
    std::string x;
    while (std::getline(ss, x, '|')) f.push_back(x);
    if (f.size() < 24) continue;
    std::uint32_t id = std::stoul(f[0]) - 1;
    if (id >= n_items) continue;
    for (int g = 0; g < 19; ++g) d->features[id * 20 + g] = f[5 + g] == "1" ? 1.0f : 0.0f;
    years[id] = f[2].size() >= 4 ? std::stod(f[2].substr(f[2].size() - 4)) : 1990;
  }
  double mean = 0, var = 0;
  for (double y : years) mean += y / n_items;
  for (double y : years) var += (y - mean) * (y - mean) / n_items;
  for (std::uint32_t it = 0; it < n_items; ++it) {
    d->features[it * 20 + 19] = static_cast<float>((years[it] - mean) / std::sqrt(var + 1e-9));
  }
  for (auto& items_of : by_user) (void)items_of;
  std::vector<std::vector<Rating>> hist(n_users);
  for (const Rating& x : rs) hist[x.user].push_back(x);
  for (auto& h : hist) {
    std::stable_sort(h.begin(), h.end(), [](const Rating& a, const Rating& b) { return a.time < b.time; });
    for (std::size_t k = 1; k < h.size(); ++k) {
      (k + 1 == h.size() ? d->heldout : d->train).emplace_back(h[k - 1].item, h[k].item);
    }
  }
  return true;
}

struct Run {
  TrainReport report;
  bool ok = false;
};

Run TrainOnce(const Data& d, const Args& a, bool pipeline, std::uint32_t negatives,
              std::uint32_t steps, std::uint32_t epochs = 1, std::uint32_t eval_pairs = 0,
              int torch_threads = 0, int blas_threads = 0) {
  InMemoryFeatures features(d.feature_dim, d.features);
  InMemoryNeighborhoods nbrs(d.width, d.nbrs, d.weights);
  TrainData data;
  data.features = &features;
  data.neighborhoods = &nbrs;
  data.train_pairs = d.train;
  data.heldout_pairs = d.heldout;
  TrainOptions o;
  o.epochs = epochs;
  o.batch = a.batch;
  o.dim = a.dim;
  o.hidden = a.hidden;
  o.neighbors = a.neighbors;
  o.negatives = negatives;
  o.threads = a.threads;
  o.torch_threads = torch_threads;
  o.blas_threads = blas_threads;
  o.pipeline = pipeline;
  o.max_steps_per_epoch = steps;
  o.eval_pairs = eval_pairs;
  o.hard_negatives = epochs > 1;
  auto r = TrainOnData(data, o);
  Run run;
  if (!r.ok()) {
    std::fprintf(stderr, "train failed: %s\n", r.status().ToString().c_str());
    return run;
  }
  run.report = std::move(r).value();
  run.ok = true;
  return run;
}

void PrintBreakdown(const char* label, const TrainReport& r) {
  const TimeBreakdown& t = r.time;
  std::printf("%-12s %8.0f pairs/s  wall %.2fs | sampling %.2f gathering %.2f transfer %.2f "
              "forward %.2f backward %.2f optimizer %.2f | consumer waited %.2f\n",
              label, r.pairs_per_second, r.seconds, t.sampling, t.gathering, t.transfer,
              t.forward, t.backward, t.optimizer, t.wait);
}

}  // namespace

int main(int argc, char** argv) {
  Args a;
  for (int k = 1; k + 1 < argc; k += 2) {
    std::string f = argv[k];
    std::uint32_t v = static_cast<std::uint32_t>(std::strtoul(argv[k + 1], nullptr, 10));
    if (f == "--items") a.items = v;
    else if (f == "--dim") a.dim = v;
    else if (f == "--hidden") a.hidden = v;
    else if (f == "--neighbors") a.neighbors = v;
    else if (f == "--batch") a.batch = v;
    else if (f == "--negatives") a.negatives = v;
    else if (f == "--threads") a.threads = static_cast<int>(v);
    else if (f == "--steps") a.steps = v;
    else if (f == "--movielens") a.movielens = argv[k + 1];
    else if (f == "--sections") a.sections = argv[k + 1];
    else {
      std::fprintf(stderr, "unknown flag %s\n", f.c_str());
      return 2;
    }
  }
  tbb::global_control threads(tbb::global_control::max_allowed_parallelism, a.threads);
  std::printf("train_bench: %d threads, K=2, d=%u, m=%u, T=%u, batch %u\n", a.threads, a.dim,
              a.hidden, a.neighbors, a.batch);

  auto want = [&](char section) { return a.sections.find(section) != std::string::npos; };
  if (want('1') || want('2')) {
  // 1. Generated graph, pipeline off vs on.
  Data planted = Planted(a);
  std::printf("\n[1] generated graph: %u items, %u features, %u shared negatives, %u steps\n",
              a.items, a.feature_dim, a.negatives, a.steps);
  // A short warm-up run first (allocator and thread pools), then off and on.
  Run warm = TrainOnce(planted, a, false, a.negatives, 2);
  Run off = TrainOnce(planted, a, false, a.negatives, a.steps);
  Run off1 = TrainOnce(planted, a, false, a.negatives, a.steps, 1, 0, 1);
  Run on = TrainOnce(planted, a, true, a.negatives, a.steps);
  if (!off.ok || !on.ok || !off1.ok) return 1;
  std::printf("(torch threads: no-pipeline %d, no-pipeline-1 1, pipeline %d; the rest of the "
              "cores run the producer)\n", a.threads, std::max(1, a.threads - 1));
  PrintBreakdown("no-pipeline", off.report);
  PrintBreakdown("no-pipeline-1", off1.report);
  PrintBreakdown("pipeline", on.report);
  std::printf("pipeline speed-up: %.2fx\n", on.report.pairs_per_second / off.report.pairs_per_second);

  // 2. Arithmetic bound.
  const TrainReport& r = off1.report;
  const double model_seconds = r.time.forward + r.time.backward;
  const double model_flops = model_seconds > 0 ? r.model_flops / model_seconds : 0;
  auto mm = GemmFlopsPerSecond(r.gemm_shapes, 1, 1.0);
  if (!mm.ok()) return 1;
  std::printf("\n[2] one thread: model %.2f GFLOP/s (forward+backward) vs torch::mm of the "
              "same shapes %.2f GFLOP/s: %.0f%%\n",
              model_flops / 1e9, *mm / 1e9, 100.0 * model_flops / *mm);
  for (const GemmShape& s : r.gemm_shapes) {
    std::printf("    gemm %ld x %ld x %ld\n", static_cast<long>(s.m), static_cast<long>(s.k),
                static_cast<long>(s.n));
  }
  }

  // 3. Peer configuration on MovieLens-100k.
  Data ml;
  Args p = a;
  p.dim = 64;
  p.neighbors = 10;
  p.batch = 512;
  if (!want('3') && !want('4') && !want('5') && !want('6')) return 0;
  if (MovieLens(a.movielens, p.neighbors, &ml)) {
    std::printf("\n[3] MovieLens-100k: %u items, %zu train pairs, peer config (2 layers, 64-d, "
                "10 neighbours, batch 512, %d threads)\n",
                ml.items, ml.train.size(), a.threads);
    for (std::uint32_t hidden : {64u, 128u}) {
      if (!want('3')) break;
      p.hidden = hidden;
      Run peer_off = TrainOnce(ml, p, false, 512, 0);
      Run peer_off1 = TrainOnce(ml, p, false, 512, 0, 1, 0, 1);
      Run peer_on = TrainOnce(ml, p, true, 512, 0);
      if (!peer_on.ok || !peer_off.ok || !peer_off1.ok) return 1;
      std::printf("m=%u: %.0f triplets/s pipelined (%.0f without, %.0f without on one torch "
                  "thread), peer ~24000/s: %.2fx\n",
                  hidden, peer_on.report.pairs_per_second, peer_off.report.pairs_per_second,
                  peer_off1.report.pairs_per_second, peer_on.report.pairs_per_second / 24000.0);
      PrintBreakdown("  no-pipeline-1", peer_off1.report);
      PrintBreakdown("  pipeline", peer_on.report);
    }
    p.hidden = 128;
    if (want('6')) {
      // The consumer alone (no pipeline, one torch thread): for profilers.
      Run r = TrainOnce(ml, p, false, 512, 0, 1, 0, 1, 1);
      if (!r.ok) return 1;
      PrintBreakdown("consumer", r.report);
      for (const GemmShape& s : r.report.gemm_shapes) {
        std::printf("    gemm %ld x %ld x %ld\n", static_cast<long>(s.m), static_cast<long>(s.k),
                    static_cast<long>(s.n));
      }
    }
    if (want('5')) {
      // Thread placement on the peer configuration: torch's OpenMP team and OpenBLAS's pool.
      std::printf("thread matrix, m=128 (triplets/s):\n");
      for (bool pipeline : {false, true}) {
        for (int tt : {1, 2}) {
          for (int bt : {1, 2}) {
            Run r = TrainOnce(ml, p, pipeline, 512, 0, 1, 0, tt, bt);
            if (!r.ok) return 1;
            std::printf("  %-11s torch %d blas %d: %8.0f\n",
                        pipeline ? "pipeline" : "no-pipeline", tt, bt,
                        r.report.pairs_per_second);
          }
        }
      }
    }
    if (!want('4')) return 0;
    Run quality = TrainOnce(ml, p, true, 500, 0, 5, 943);
    if (quality.ok) {
      const EpochStats& e = quality.report.epochs.back();
      std::printf("5 epochs: loss %.4f, HR@10 %.3f, MRR %.3f (full ranking, %lu held-out "
                  "pairs)\n",
                  e.mean_loss, e.hit_rate, e.mrr, static_cast<unsigned long>(e.eval_pairs));
    }
  } else {
    std::printf("\n[3] MovieLens-100k not found under %s: skipped\n", a.movielens.c_str());
  }
  return 0;
}
