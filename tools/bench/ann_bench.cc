// ann_bench: recall@k and single-thread queries/s of pgraph's LSH retrieval against exact
// search, with FAISS IndexLSH and hnswlib HNSW on the same vectors when they were found at
// configure time (PGRAPH_BENCH_FAISS / PGRAPH_BENCH_HNSWLIB). Not a test; results go in
// docs/BENCHMARKS.md ("## ann").
//
// Vectors: the `embedding` column of a store (--store), or synthetic embeddings with
// planted structure (default): `communities` unit centroids mu_c; each community has
// `subclusters` unit directions nu_cs; item = normalize(mu_c + sub_spread * nu_cs +
// noise * z / sqrt(d)). The top-10 of an item are mostly its sub-cluster mates; `noise`
// sets how hard they are to tell from the rest (0.35: cos ~0.92 to the mates; 0.6: ~0.8).
//
// Queries: `queries` items drawn uniformly (seeded), searched with their own vector and
// themselves excluded, as `pgraph query --item` does with --exclude-self.
// Timing: every search method runs on one thread, one query at a time, warm process;
// ground truth and index builds use all threads.
#include <CLI/CLI.hpp>
#include <fmt/core.h>
#include <tbb/global_control.h>
#include <tbb/info.h>
#include <tbb/parallel_for.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <fstream>
#include <memory>
#include <numeric>
#include <random>
#include <set>
#include <sstream>

#include "ann/ann.h"
#include "storage/store.h"

#ifdef PGRAPH_BENCH_FAISS
#include <faiss/IndexLSH.h>
#include <omp.h>
#endif
#ifdef PGRAPH_BENCH_HNSWLIB
#include <hnswlib/hnswlib.h>
#endif

namespace {

using namespace pgraph;
using Clock = std::chrono::steady_clock;

double Seconds(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}

struct Synthetic {
  std::uint64_t items = 1'000'000;
  std::uint32_t dim = 64;
  std::uint32_t communities = 1000;
  std::uint32_t subclusters = 32;
  float sub_spread = 0.6f;
  float noise = 0.45f;
  std::uint64_t seed = 7;
};

void Normalize(float* v, std::uint32_t d) {
  double s = 0;
  for (std::uint32_t j = 0; j < d; ++j) s += double{v[j]} * v[j];
  const float inv = s > 0 ? static_cast<float>(1 / std::sqrt(s)) : 0.f;
  for (std::uint32_t j = 0; j < d; ++j) v[j] *= inv;
}

std::vector<float> MakeSynthetic(const Synthetic& s) {
  const std::uint32_t d = s.dim;
  auto unit_vectors = [&](std::uint64_t count, std::uint64_t seed) {
    std::vector<float> v(count * d);
    tbb::parallel_for(std::uint64_t{0}, count, [&](std::uint64_t i) {
      std::mt19937_64 rng(seed * 0x9e3779b97f4a7c15ull + i);
      std::normal_distribution<float> normal;
      for (std::uint32_t j = 0; j < d; ++j) v[i * d + j] = normal(rng);
      Normalize(&v[i * d], d);
    });
    return v;
  };
  const auto mu = unit_vectors(s.communities, s.seed);
  const auto nu = unit_vectors(std::uint64_t{s.communities} * s.subclusters, s.seed + 1);
  std::vector<float> out(s.items * d);
  const float scale = s.noise / std::sqrt(static_cast<float>(d));
  tbb::parallel_for(std::uint64_t{0}, s.items, [&](std::uint64_t i) {
    std::mt19937_64 rng((s.seed + 2) * 0x9e3779b97f4a7c15ull + i);
    std::normal_distribution<float> normal;
    const std::uint64_t c = rng() % s.communities;
    const std::uint64_t sub = c * s.subclusters + rng() % s.subclusters;
    float* x = &out[i * d];
    for (std::uint32_t j = 0; j < d; ++j) {
      x[j] = mu[c * d + j] + s.sub_spread * nu[sub * d + j] + scale * normal(rng);
    }
    Normalize(x, d);
  });
  return out;
}

std::vector<std::string> Split(const std::string& s, char sep) {
  std::vector<std::string> out;
  std::stringstream ss(s);
  std::string part;
  while (std::getline(ss, part, sep)) {
    if (!part.empty()) out.push_back(part);
  }
  return out;
}

struct Row {
  std::string method, params;
  double build_s = 0, recall = 0, qps = 0, p50_us = 0, p99_us = 0, reranked = 0;
};

void Print(const Row& r, double exact_qps) {
  fmt::print("| {:<11} | {:<30} | {:>8.1f} | {:>9.4f} | {:>9.0f} | {:>7.1f}x | {:>8.0f} | {:>8.0f} | {:>9} |\n",
             r.method, r.params, r.build_s, r.recall, r.qps, r.qps / exact_qps, r.p50_us,
             r.p99_us, r.reranked > 0 ? fmt::format("{:.0f}", r.reranked) : std::string("-"));
  std::fflush(stdout);
}

// Runs `search(q, out)` for every query on this thread; fills recall, qps and latency.
template <typename F>
void Measure(Row* row, std::size_t nq, std::uint32_t k,
             const std::vector<std::vector<ann::Neighbor>>& truth, F&& search) {
  std::vector<double> lat(nq);
  std::vector<NodeId> found;
  double recall = 0;
  const auto start = Clock::now();
  for (std::size_t q = 0; q < nq; ++q) {
    const auto t0 = Clock::now();
    found.clear();
    search(q, &found);
    lat[q] = Seconds(t0, Clock::now());
    std::set<NodeId> want;
    for (const auto& n : truth[q]) want.insert(n.id);
    std::size_t hit = 0;
    for (auto id : found) hit += want.count(id);
    recall += static_cast<double>(hit) / std::max<std::size_t>(1, std::min<std::size_t>(k, truth[q].size()));
  }
  const double total = Seconds(start, Clock::now());
  std::sort(lat.begin(), lat.end());
  row->recall = recall / nq;
  row->qps = nq / total;
  row->p50_us = lat[nq / 2] * 1e6;
  row->p99_us = lat[std::min(nq - 1, nq * 99 / 100)] * 1e6;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"ann_bench: LSH retrieval vs exact, FAISS-LSH and HNSW"};
  Synthetic syn;
  std::string store_dir;
  std::size_t nq = 1000;
  std::uint32_t k = 10;
  std::string configs = "16:14,24:16,32:16";
  std::string probes_list = "0,2,4";
  std::string candidates_list = "2000,5000,10000";
  std::string faiss_bits = "64,128,256,512";
  std::string hnsw_ef = "16,32,64,128";
  int hnsw_m = 16, hnsw_efc = 100;
  int threads = 0;
  std::uint64_t query_seed = 11;
  bool no_faiss = false, no_hnsw = false;
  app.add_option("--store", store_dir, "Read the embedding column of this store");
  app.add_option("--items", syn.items, "Synthetic: items");
  app.add_option("--dim", syn.dim, "Synthetic: dimension");
  app.add_option("--communities", syn.communities, "Synthetic: communities");
  app.add_option("--subclusters", syn.subclusters, "Synthetic: sub-clusters per community");
  app.add_option("--sub-spread", syn.sub_spread, "Synthetic: sub-cluster offset length");
  app.add_option("--noise", syn.noise, "Synthetic: per-item noise length");
  app.add_option("--seed", syn.seed, "Synthetic: seed");
  app.add_option("--queries", nq, "Query items");
  app.add_option("--k", k, "Neighbours per query");
  app.add_option("--configs", configs, "LSH tables:bits list, comma separated");
  app.add_option("--probes", probes_list, "Multi-probe settings to try");
  app.add_option("--candidates", candidates_list, "Candidate budgets to try");
  app.add_option("--faiss-bits", faiss_bits, "FAISS IndexLSH nbits to try");
  app.add_option("--hnsw-ef", hnsw_ef, "HNSW ef values to try");
  app.add_option("--hnsw-m", hnsw_m, "HNSW M");
  app.add_option("--hnsw-efc", hnsw_efc, "HNSW efConstruction");
  app.add_option("--threads", threads, "Threads for builds and ground truth (0: all)");
  app.add_flag("--no-faiss", no_faiss, "Skip FAISS");
  app.add_flag("--no-hnsw", no_hnsw, "Skip hnswlib");
  CLI11_PARSE(app, argc, argv);
  const int nthreads = threads > 0 ? threads : tbb::info::default_concurrency();
  tbb::global_control all_threads(tbb::global_control::max_allowed_parallelism, nthreads);

  // ---- vectors
  std::vector<float> owned;
  std::unique_ptr<storage::Store> store;
  ann::Embeddings emb;
  std::string source;
  auto t0 = Clock::now();
  if (!store_dir.empty()) {
    storage::StoreOptions so;
    so.read_only = true;
    auto s = storage::Store::Open(store_dir, so);
    if (!s.ok()) return fmt::print(stderr, "{}\n", s.status().ToString()), 2;
    store = std::move(s).value();
    auto col = store->OpenColumn(storage::columns::kEmbedding);
    if (!col.ok()) return fmt::print(stderr, "{}\n", col.status().ToString()), 2;
    auto e = ann::Embeddings::FromColumn(**col);
    if (!e.ok()) return fmt::print(stderr, "{}\n", e.status().ToString()), 2;
    emb = *e;
    source = "store " + store_dir;
  } else {
    owned = MakeSynthetic(syn);
    emb = ann::Embeddings::FromFloats(owned, syn.dim).value();
    source = fmt::format(
        "synthetic items={} dim={} communities={} subclusters={} sub_spread={} noise={} seed={}",
        syn.items, syn.dim, syn.communities, syn.subclusters, syn.sub_spread, syn.noise,
        syn.seed);
  }
  const std::uint32_t d = emb.dim();
  const std::uint64_t n = emb.rows();
  // Every method below gets the same dense f32 copy (FAISS/hnswlib need one anyway).
  std::vector<float> flat(n * d);
  for (std::uint64_t i = 0; i < n; ++i) emb.CopyRow(i, std::span<float>(flat).subspan(i * d, d));
  auto femb = ann::Embeddings::FromFloats(flat, d).value();
  fmt::print("# {} ({:.1f} s)\n", source, Seconds(t0, Clock::now()));

  // ---- queries and ground truth
  std::mt19937_64 rng(query_seed);
  nq = std::min<std::size_t>(nq, n);
  std::vector<NodeId> qids(nq);
  for (auto& q : qids) q = static_cast<NodeId>(rng() % n);
  std::vector<float> qvec(nq * d);
  for (std::size_t q = 0; q < nq; ++q) {
    std::copy_n(&flat[std::size_t{qids[q]} * d], d, &qvec[q * d]);
  }
  t0 = Clock::now();
  auto truth = ann::ExactSearch(femb, qvec, k, qids).value();
  const double batch_all = Seconds(t0, Clock::now());
  double kth = 0;
  for (const auto& t : truth) kth += t.empty() ? 0 : t.back().score;
  fmt::print("# {} queries, k={}, mean score of the k-th neighbour {:.3f}; threads {}\n", nq, k,
             kth / nq, nthreads);

  tbb::global_control one_thread(tbb::global_control::max_allowed_parallelism, 1);
  // Brute force, one query at a time (what --exact does for one item), on a subset.
  Row exact{"exact", "one query at a time"};
  const std::size_t nq_exact = std::min<std::size_t>(nq, 50);
  Measure(&exact, nq_exact, k, truth, [&](std::size_t q, std::vector<NodeId>* out) {
    std::vector<NodeId> ex = {qids[q]};
    auto r = ann::ExactSearch(femb, std::span<const float>(qvec).subspan(q * d, d), k, ex);
    for (const auto& nb : (*r)[0]) out->push_back(nb.id);
  });
  // Brute force, all queries in one blocked product (best case for brute force).
  t0 = Clock::now();
  auto batched = ann::ExactSearch(femb, qvec, k, qids);
  const double batch_1t = Seconds(t0, Clock::now());
  (void)batched;
  fmt::print("# exact, batched blocked GEMM over all {} queries: {:.0f} q/s on 1 thread, {:.0f} q/s on {}\n\n",
             nq, nq / batch_1t, nq / batch_all, nthreads);

  fmt::print("| method      | params                         | build s  | recall@{:<2} | q/s (1 t) | vs exact | p50 us   | p99 us   | reranked  |\n", k);
  fmt::print("|-------------|--------------------------------|---------:|----------:|----------:|---------:|---------:|---------:|----------:|\n");
  Print(exact, exact.qps);

  // ---- pgraph LSH
  for (const auto& cfg : Split(configs, ',')) {
    const auto parts = Split(cfg, ':');
    if (parts.size() != 2) continue;
    ann::LshParams p;
    p.tables = static_cast<std::uint32_t>(std::stoul(parts[0]));
    p.bits = static_cast<std::uint32_t>(std::stoul(parts[1]));
    std::unique_ptr<ann::LshIndex> index;
    double build_s = 0;
    {
      tbb::global_control build_threads(tbb::global_control::max_allowed_parallelism, nthreads);
      t0 = Clock::now();
      index = ann::LshIndex::Build(femb, p).value();
      build_s = Seconds(t0, Clock::now());
    }
    ann::Searcher searcher(*index, femb);
    for (const auto& pr : Split(probes_list, ',')) {
      for (const auto& cand : Split(candidates_list, ',')) {
        ann::SearchOptions o;
        o.k = k;
        o.probes = static_cast<std::uint32_t>(std::stoul(pr));
        o.candidates = std::stoull(cand);
        if (o.probes > p.bits) continue;
        Row row{"pgraph-lsh", fmt::format("L={} b={} probes={} cand={}", p.tables, p.bits,
                                          o.probes, o.candidates)};
        row.build_s = build_s;
        double reranked = 0;
        Measure(&row, nq, k, truth, [&](std::size_t q, std::vector<NodeId>* out) {
          o.exclude = qids[q];
          ann::SearchStats st;
          auto r = searcher.Search(std::span<const float>(qvec).subspan(q * d, d), o, &st);
          reranked += static_cast<double>(st.reranked);
          for (const auto& nb : *r) out->push_back(nb.id);
        });
        row.reranked = reranked / nq;
        Print(row, exact.qps);
      }
    }
  }

#ifdef PGRAPH_BENCH_FAISS
  if (!no_faiss) {
    for (const auto& nb : Split(faiss_bits, ',')) {
      const int nbits = std::stoi(nb);
      omp_set_num_threads(nthreads);
      t0 = Clock::now();
      faiss::IndexLSH lsh(d, nbits, /*rotate_data=*/true, /*train_thresholds=*/false);
      lsh.train(static_cast<faiss::Index::idx_t>(n), flat.data());
      lsh.add(static_cast<faiss::Index::idx_t>(n), flat.data());
      const double build_s = Seconds(t0, Clock::now());
      omp_set_num_threads(1);
      Row row{"faiss-lsh", fmt::format("nbits={}", nbits)};
      row.build_s = build_s;
      std::vector<float> dist(k + 1);
      std::vector<faiss::Index::idx_t> lab(k + 1);
      Measure(&row, nq, k, truth, [&](std::size_t q, std::vector<NodeId>* out) {
        lsh.search(1, &qvec[q * d], k + 1, dist.data(), lab.data());
        for (std::uint32_t i = 0; i <= k && out->size() < k; ++i) {
          if (lab[i] >= 0 && static_cast<NodeId>(lab[i]) != qids[q]) {
            out->push_back(static_cast<NodeId>(lab[i]));
          }
        }
      });
      Print(row, exact.qps);
    }
  }
#else
  (void)no_faiss;
  fmt::print("# FAISS not found at configure time: skipped\n");
#endif

#ifdef PGRAPH_BENCH_HNSWLIB
  if (!no_hnsw) {
    hnswlib::InnerProductSpace space(d);
    t0 = Clock::now();
    hnswlib::HierarchicalNSW<float> hnsw(&space, n, hnsw_m, hnsw_efc, 100);
    {
      tbb::global_control build_threads(tbb::global_control::max_allowed_parallelism, nthreads);
      hnsw.addPoint(flat.data(), 0);
      tbb::parallel_for(std::uint64_t{1}, n, [&](std::uint64_t i) {
        hnsw.addPoint(&flat[i * d], static_cast<hnswlib::labeltype>(i));
      });
    }
    const double build_s = Seconds(t0, Clock::now());
    for (const auto& e : Split(hnsw_ef, ',')) {
      hnsw.setEf(std::stoul(e));
      Row row{"hnswlib", fmt::format("M={} efC={} ef={}", hnsw_m, hnsw_efc, e)};
      row.build_s = build_s;
      Measure(&row, nq, k, truth, [&](std::size_t q, std::vector<NodeId>* out) {
        auto pq = hnsw.searchKnn(&qvec[q * d], k + 1);
        std::vector<std::pair<float, hnswlib::labeltype>> res;
        while (!pq.empty()) {
          res.push_back(pq.top());
          pq.pop();
        }
        for (auto it = res.rbegin(); it != res.rend() && out->size() < k; ++it) {
          if (static_cast<NodeId>(it->second) != qids[q]) {
            out->push_back(static_cast<NodeId>(it->second));
          }
        }
      });
      Print(row, exact.qps);
    }
  }
#else
  (void)no_hnsw;
  (void)hnsw_m;
  (void)hnsw_efc;
  fmt::print("# hnswlib not found at configure time: skipped\n");
#endif
  return 0;
}
