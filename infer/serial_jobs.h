#pragma once
// SerialJobs: runs jobs one at a time, in the order they were posted, on a worker of a TBB
// arena, while the poster goes on. Private to infer/.
//
// Why: inference writes every layer's rows to the store (resumable segments), and a write
// batch costs a copy into LMDB, a write and an fdatasync: 0.2-0.3 s per 1M-item layer spent
// waiting on the store (docs/BENCHMARKS.md, "infer"). Posted as jobs, the writes of one block
// overlap the pooling of the next.
//
// Contract: jobs run in posting order, never two at once. The first job that fails keeps
// its Status; every job after it is dropped. What a job reads must stay valid and unchanged
// until Wait() returns. When the arena has no worker to spare (one thread allowed) the jobs
// run inside Wait(), on the caller. Post and status are for one posting thread; the
// destructor waits for the jobs.

#include <deque>
#include <functional>
#include <mutex>

#include <tbb/task_arena.h>
#include <tbb/task_group.h>

#include "storage/status.h"

namespace pgraph::infer {

class SerialJobs {
 public:
  explicit SerialJobs(tbb::task_arena* arena) : arena_(arena) {}
  ~SerialJobs() { (void)Wait(); }
  SerialJobs(const SerialJobs&) = delete;
  SerialJobs& operator=(const SerialJobs&) = delete;

  void Post(std::function<Status()> job) {
    std::lock_guard<std::mutex> lock(mu_);
    queue_.push_back(std::move(job));
    if (running_) return;
    running_ = true;
    arena_->execute([&] { group_.run([this] { Drain(); }); });
  }

  // The first failure so far (OK while none): lets the poster stop early.
  Status status() {
    std::lock_guard<std::mutex> lock(mu_);
    return error_;
  }

  // Runs or waits for every posted job; the first failure, or OK.
  Status Wait() {
    arena_->execute([&] { group_.wait(); });
    return status();
  }

 private:
  void Drain() {
    for (;;) {
      std::function<Status()> job;
      {
        std::lock_guard<std::mutex> lock(mu_);
        if (queue_.empty()) {
          running_ = false;
          return;
        }
        job = std::move(queue_.front());
        queue_.pop_front();
        if (!error_.ok()) continue;
      }
      Status s = job();
      if (!s.ok()) {
        std::lock_guard<std::mutex> lock(mu_);
        if (error_.ok()) error_ = std::move(s);
      }
    }
  }

  tbb::task_arena* arena_;
  tbb::task_group group_;
  std::mutex mu_;
  std::deque<std::function<Status()>> queue_;
  bool running_ = false;
  Status error_;
};

}  // namespace pgraph::infer
