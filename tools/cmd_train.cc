// `pgraph train`: learns PinSage embeddings' parameters from a walked store (train/trainer.h).
// A progress line per epoch (self-overwriting on a terminal, plain lines otherwise), an
// epoch summary with validation hit-rate / MRR, and optionally one JSON object per step and
// per epoch in --log-json FILE. Ctrl-C stops cleanly: the last finished epoch's checkpoint
// stays and `--resume` continues from it.
#include <CLI/CLI.hpp>
#include <sys/resource.h>
#include <unistd.h>

#include <atomic>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <memory>
#include <string>
#include <tuple>

#include "storage/memory_budget.h"
#include "storage/store.h"
#include "tools/command.h"
#include "tools/torch_commands.h"
#include "tools/lib/progress.h"
#include "train/trainer.h"

namespace pgraph::tools {
namespace {

std::atomic<bool> g_interrupted{false};

extern "C" void OnInterrupt(int) {
  g_interrupted.store(true);
  std::signal(SIGINT, SIG_DFL);  // a second Ctrl-C kills at once
}

struct TrainFlags {
  train::TrainOptions opts;
  std::string pooling = "importance", hard = "on", memory_budget = "auto", log_json;
  std::string loss = "softmax", degree = "on", normalize = "on", magnitude = "on",
              in_batch = "off";
  bool no_pipeline = false, quiet = false;
};

std::string Num(double v) {
  if (!std::isfinite(v)) return "null";
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.6g", v);
  return buf;
}

Status RunTrain(TrainFlags& f) {
  train::TrainOptions& o = f.opts;
  PGRAPH_ASSIGN_OR_RETURN(o.pooling, train::ParsePooling(f.pooling));
  PGRAPH_ASSIGN_OR_RETURN(o.loss, train::ParseLoss(f.loss));
  if ((o.hard_rank_lo != 0 || o.hard_rank_hi != 0) && o.hard_rank_hi <= o.hard_rank_lo) {
    return Status::InvalidArgument("--hard-rank-hi must be greater than --hard-rank-lo");
  }
  for (auto [flag, value, out] : {std::tuple{"--hard-negatives", &f.hard, &o.hard_negatives},
                                  std::tuple{"--degree-feature", &f.degree, &o.degree_feature},
                                  std::tuple{"--normalize", &f.normalize, &o.normalize},
                                  std::tuple{"--magnitude", &f.magnitude, &o.magnitude},
                                  std::tuple{"--in-batch-negatives", &f.in_batch,
                                             &o.in_batch_negatives}}) {
    if (*value != "on" && *value != "off") {
      return Status::InvalidArgument(std::string(flag) + " must be on or off");
    }
    *out = *value == "on";
  }
  o.pipeline = !f.no_pipeline;
  PGRAPH_ASSIGN_OR_RETURN(o.memory_budget, storage::ParseMemoryBudget(f.memory_budget));
  if (o.threads < 0) return Status::InvalidArgument("--threads must be >= 0");
  if (o.torch_threads < 0) return Status::InvalidArgument("--torch-threads must be >= 0");
  if (o.blas_threads < 0) return Status::InvalidArgument("--blas-threads must be >= 0");
  o.threads = ConfigureThreads(o.threads);
  // Fail fast on the device, before opening the store.
  PGRAPH_ASSIGN_OR_RETURN(std::string device, train::ResolveDevice(o.device));

  std::unique_ptr<std::FILE, int (*)(std::FILE*)> log(nullptr, &std::fclose);
  if (!f.log_json.empty()) {
    log.reset(std::fopen(f.log_json.c_str(), "w"));
    if (!log) return Status::IOError("cannot open --log-json file " + f.log_json);
  }
  const bool tty = isatty(STDERR_FILENO) != 0;
  const bool show = !f.quiet;
  double next_plain = 5;
  o.on_step = [&](const train::StepStats& s) {
    if (log) {
      std::fprintf(log.get(),
                   "{\"type\": \"step\", \"epoch\": %u, \"step\": %llu, \"global_step\": %llu, "
                   "\"loss\": %s, \"lr\": %s, \"pairs\": %llu, \"pairs_per_second\": %s}\n",
                   s.epoch, (unsigned long long)s.step, (unsigned long long)s.global_step,
                   Num(s.loss).c_str(), Num(s.lr).c_str(), (unsigned long long)s.pairs,
                   Num(s.pairs_per_second).c_str());
    }
    if (!show) return;
    const bool last = s.step + 1 == s.steps_in_epoch;
    double elapsed = s.pairs_per_second > 0 ? (s.step + 1) * s.pairs / s.pairs_per_second : 0;
    if (!tty && !last && elapsed < next_plain) return;
    if (!tty) next_plain = elapsed + 5;
    std::fprintf(stderr, "%sepoch %u/%u: step %llu/%llu, loss %.4f, %s pairs/s, ETA %.0fs%s",
                 tty ? "\r\033[K" : "", s.epoch, o.epochs, (unsigned long long)(s.step + 1),
                 (unsigned long long)s.steps_in_epoch, s.loss,
                 HumanCount(s.pairs_per_second).c_str(), s.eta_seconds, tty ? "" : "\n");
    std::fflush(stderr);
  };
  o.on_epoch = [&](const train::EpochStats& e) {
    next_plain = 5;
    if (log) {
      std::fprintf(log.get(),
                   "{\"type\": \"epoch\", \"epoch\": %u, \"loss\": %s, \"lr\": %s, "
                   "\"pairs\": %llu, \"pairs_per_second\": %s, \"seconds\": %s, "
                   "\"hard_negatives\": %u, \"hit_rate\": %s, \"mrr\": %s, \"eval_k\": %u, "
                   "\"eval_pairs\": %llu, \"eval_candidates\": %llu, \"mrr_scale\": %u}\n",
                   e.epoch, Num(e.mean_loss).c_str(), Num(e.lr).c_str(),
                   (unsigned long long)e.pairs, Num(e.pairs_per_second).c_str(),
                   Num(e.seconds).c_str(), e.hard_negatives, Num(e.hit_rate).c_str(),
                   Num(e.mrr).c_str(), o.eval_k, (unsigned long long)e.eval_pairs,
                   (unsigned long long)e.eval_candidates, e.mrr_scale);
      std::fflush(log.get());
    }
    if (!show) return;
    std::fprintf(stderr, "%sepoch %u/%u: loss %.4f, %s pairs/s, %.1fs, hard negatives %u",
                 tty ? "\r\033[K" : "", e.epoch, o.epochs, e.mean_loss,
                 HumanCount(e.pairs_per_second).c_str(), e.seconds, e.hard_negatives);
    if (std::isfinite(e.hit_rate)) {
      std::fprintf(stderr, ", hit@%u %.3f, MRR %.3f (%llu pairs, %llu candidates)", o.eval_k,
                   e.hit_rate, e.mrr, (unsigned long long)e.eval_pairs,
                   (unsigned long long)e.eval_candidates);
    }
    std::fprintf(stderr, "\n");
  };
  g_interrupted.store(false);
  o.cancel = &g_interrupted;
  auto previous = std::signal(SIGINT, OnInterrupt);
  Result<train::TrainReport> r = train::Train(o);
  std::signal(SIGINT, previous);
  if (!r.ok()) {
    if (r.status().IsCancelled()) {
      std::fprintf(stderr, "\ninterrupted: the last finished epoch's checkpoint is kept; "
                           "continue with --resume\n");
    }
    return r.status();
  }
  const train::TimeBreakdown& t = r->time;
  if (r->epochs.empty()) {
    std::printf("nothing to do: the checkpoint in %s already has %u epochs\n",
                o.store_dir.c_str(), r->first_epoch - 1);
    return Status::OK();
  }
  std::printf("trained epochs %u-%u on %s: %llu steps, %s pairs/s, %.1fs (%llu parameters)\n",
              r->first_epoch, r->epochs.back().epoch, r->device.c_str(),
              (unsigned long long)r->steps, HumanCount(r->pairs_per_second).c_str(), r->seconds,
              (unsigned long long)r->parameters);
  std::printf("  time: sampling %.1fs, gathering %.1fs, forward %.1fs, backward %.1fs, "
              "optimizer %.1fs, waiting for batches %.1fs, validation %.1fs, checkpoints %.1fs\n",
              t.sampling, t.gathering, t.forward, t.backward, t.optimizer, t.wait, t.validation,
              t.checkpoint);
  const train::EpochStats& last = r->epochs.back();
  if (std::isfinite(last.hit_rate)) {
    std::printf("  validation: hit@%u %.3f, MRR %.3f\n", o.eval_k, last.hit_rate, last.mrr);
  }
  std::printf("  checkpoint: %s (column checkpoint, meta train.config)\n", o.store_dir.c_str());
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  std::printf("  memory: peak RSS %s (budget %s, model %s with gradients and Adam state)\n",
              storage::FormatBytes(static_cast<std::uint64_t>(usage.ru_maxrss) * 1024).c_str(),
              storage::FormatBytes(o.memory_budget).c_str(),
              storage::FormatBytes(r->parameters * 4 * sizeof(float)).c_str());
  if (r->split_steps > 0) {
    std::printf("  %llu of %llu steps ran in parts (%.1f parts each) to stay within the budget; "
                "a larger --memory-budget runs them whole, faster\n",
                (unsigned long long)r->split_steps, (unsigned long long)r->steps,
                static_cast<double>(r->parts) / static_cast<double>(r->split_steps));
  }
  return Status::OK();
}

std::function<Status()> SetupTrain(CLI::App* app) {
  auto f = std::make_shared<TrainFlags>();
  train::TrainOptions& o = f->opts;
  app->option_defaults()->always_capture_default();
  app->add_option("--store", o.store_dir, "Store directory (after `pgraph walk`)")->required();
  app->add_option("--epochs", o.epochs, "Epochs (the total, also with --resume)");
  app->add_option("--batch", o.batch, "Pairs per minibatch");
  app->add_option("--layers", o.layers, "CONVOLVE layers K");
  app->add_option("--dim", o.dim, "Embedding width d (every layer's output)");
  app->add_option("--hidden", o.hidden, "Pooling width m (rows of Q)");
  app->add_option("--neighbors", o.neighbors,
                  "Neighbours T per node (the heaviest of the walk's); 0 = all");
  app->add_option("--pooling", f->pooling, "importance | mean | max");
  app->add_option("--id-embedding-dim", o.id_embedding_dim,
                  "Learnable per-item id embeddings (0 = off: the model stays inductive)");
  app->add_option("--negatives", o.negatives,
                  "Shared uniform negatives per batch (capped at items / 10)");
  app->add_option("--hard-negatives", f->hard,
                  "on | off: PPR hard negatives, n-1 per pair in epoch n (curriculum)");
  app->add_option("--max-hard-negatives", o.max_hard_negatives, "Cap of the curriculum");
  app->add_option("--hard-rank-lo", o.hard_rank_lo,
                  "Hard negatives come from PPR ranks [lo, hi) of the query; 0 = scaled to "
                  "the catalogue");
  app->add_option("--hard-rank-hi", o.hard_rank_hi, "End of that rank window; 0 = scaled");
  app->add_option("--lr", o.lr, "Adam learning rate at batch 512 (scaled linearly with batch)");
  app->add_option("--lr-decay", o.lr_decay, "Learning-rate factor per epoch after warm-up");
  app->add_option("--clip-grad-norm", o.clip_grad_norm, "Clip the gradient norm (0 = off)");
  app->add_option("--ema-decay", o.ema_decay,
                  "Save an exponential moving average of the parameters as the model "
                  "(Polyak averaging), decay per step in [0, 1), e.g. 0.999; 0 = off (the "
                  "last iterate)");
  app->add_option("--weight-decay", o.weight_decay,
                  "Decoupled weight decay (AdamW) of the weight matrices and id embeddings, "
                  "per unit of learning rate; 0 = off");
  app->add_option("--loss", f->loss,
                  "softmax (sampled softmax over the negatives) | margin (the paper's max-margin)");
  app->add_option("--margin", o.margin, "Max-margin Delta (--loss margin)");
  app->add_option("--temperature", o.temperature,
                  "Softmax temperature tau (--loss softmax; scores are cosines)");
  app->add_option("--normalize", f->normalize,
                  "on | off: L2-normalise the output embeddings (scores are cosines)");
  app->add_option("--magnitude", f->magnitude,
                  "on | off: with --normalize, a learned length per item (a prior such as "
                  "popularity in inner products)");
  app->add_option("--in-batch-negatives", f->in_batch,
                  "on | off: the batch's other positives are negatives too");
  app->add_option("--degree-feature", f->degree,
                  "on | off: append the item's standardised log-degree to its features");
  app->add_option("--threads", o.threads, "Threads (TBB producers, torch); 0 = all cores");
  app->add_option("--torch-threads", o.torch_threads,
                  "Torch intra-op threads of the trainer; 0 = threads - 1 with the pipeline, "
                  "threads without");
  app->add_option("--blas-threads", o.blas_threads,
                  "Threads of OpenBLAS's own pool for each matrix product; 0 = 1 (the best on "
                  "2 cores; raise it on many cores with large --dim / --hidden)");
  app->add_option("--device", o.device, "cpu | cuda | cuda:N | auto");
  app->add_option("--seed", o.seed, "Random seed (initialisation, batches, negatives)");
  app->add_flag("--resume", o.resume, "Continue from the store's last checkpoint");
  app->add_option("--prefetch", o.prefetch, "Batches in flight between producer and trainer");
  app->add_flag("--no-pipeline", f->no_pipeline, "Run the producer stages sequentially");
  app->add_option("--memory-budget", f->memory_budget,
                  storage::MemoryBudgetHelp(
                      "Memory for the run beyond the model: a quarter each for the batch being "
                      "run, the batches waiting and hard-negative windows, an eighth each for "
                      "the store's cache and pinned degree offsets (a batch over its share runs "
                      "in parts: slower, same result)"));
  app->add_option("--eval-k", o.eval_k, "Validation hit-rate@K");
  app->add_option("--eval-pairs", o.eval_pairs, "Held-out pairs sampled for validation");
  app->add_option("--eval-candidates", o.eval_candidates, "Candidate pool cap for validation");
  app->add_option("--max-steps-per-epoch", o.max_steps_per_epoch, "Cap (0 = whole epochs)");
  app->add_option("--log-json", f->log_json, "Write one JSON object per step and epoch");
  app->add_flag("--quiet", f->quiet, "No progress lines");
  return [f] { return RunTrain(*f); };
}

}  // namespace

PGRAPH_COMMAND(train, "train", kTrainDescription, SetupTrain);

}  // namespace pgraph::tools
