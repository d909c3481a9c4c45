#pragma once
// SerialJobs: runs jobs one at a time, in the order they were posted, on a worker of a TBB
// arena, while the poster goes on. Private to infer/.
//
// Why: inference writes every layer's rows to the store (resumable segments), and a write
// batch costs a copy into LMDB, a write and an fdatasync: 0.2-0.3 s per 1M-item layer spent
// waiting on the store (docs/BENCHMARKS.md, "infer"). Posted as jobs, the writes of one block
// overlap the pooling of the next.
//
// It is one serial, queueing function node of a TBB flow graph built in the arena: TBB keeps
// the order and the one-at-a-time rule. Contract: the first job that fails keeps its Status;
// every job after it is skipped. What a job reads must stay valid and unchanged until Wait()
// returns. When the arena has no worker to spare (one thread allowed) the jobs run inside
// Wait(), on the caller. Post is for one posting thread; the destructor waits for the jobs.

#include <tbb/flow_graph.h>
#include <tbb/task_arena.h>

#include <functional>
#include <memory>
#include <mutex>

#include "storage/status.h"

namespace pgraph::infer {

class SerialJobs {
 public:
  using Job = std::function<Status()>;

  explicit SerialJobs(tbb::task_arena* arena) : arena_(arena) {
    arena_->execute([&] {
      graph_ = std::make_unique<tbb::flow::graph>();
      node_ = std::make_unique<Node>(*graph_, tbb::flow::serial, [this](const Job& job) {
        if (status().ok()) {
          Status s = job();
          if (!s.ok()) {
            std::lock_guard<std::mutex> lock(mu_);
            if (error_.ok()) error_ = std::move(s);
          }
        }
        return tbb::flow::continue_msg();
      });
    });
  }
  ~SerialJobs() { (void)Wait(); }
  SerialJobs(const SerialJobs&) = delete;
  SerialJobs& operator=(const SerialJobs&) = delete;

  void Post(Job job) {
    arena_->execute([&] { node_->try_put(job); });
  }

  // The first failure so far (OK while none): lets the poster stop early.
  Status status() {
    std::lock_guard<std::mutex> lock(mu_);
    return error_;
  }

  // Runs or waits for every posted job; the first failure, or OK.
  Status Wait() {
    arena_->execute([&] { graph_->wait_for_all(); });
    return status();
  }

 private:
  using Node = tbb::flow::function_node<Job, tbb::flow::continue_msg, tbb::flow::queueing>;

  tbb::task_arena* arena_;
  std::mutex mu_;
  Status error_;
  std::unique_ptr<tbb::flow::graph> graph_;
  std::unique_ptr<Node> node_;  // after graph_: destroyed first
};

}  // namespace pgraph::infer
