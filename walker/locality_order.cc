#include "walker/walker.h"

#include <tbb/blocked_range.h>
#include <tbb/parallel_for.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>

namespace pgraph::walker {
namespace {

// Weight a label gets from the item itself in label propagation: enough to keep an item in
// its tree when its neighbours split evenly, too little to outvote any neighbour.
constexpr float kSelfWeight = 1e-3f;
// Label propagation stops after kMaxRounds, or once a round moves fewer than 1 item in
// kSettledShare.
constexpr int kMaxRounds = 4;
constexpr std::uint64_t kSettledShare = 200;

// parent[u]: u's heaviest neighbour (the first of equal weights), or u itself when it has
// none but itself.
std::vector<NodeId> HeaviestNeighbors(const NodeId* nbrs, const float* wts, std::uint64_t n,
                                      std::uint32_t T) {
  std::vector<NodeId> parent(n);
  tbb::parallel_for(tbb::blocked_range<std::uint64_t>(0, n, 4096), [&](const auto& r) {
    for (std::uint64_t u = r.begin(); u < r.end(); ++u) {
      NodeId best = static_cast<NodeId>(u);
      float best_w = 0;
      for (std::uint32_t t = 0; t < T; ++t) {
        const NodeId v = nbrs[u * T + t];
        if (v == kInvalidNode || v == u) continue;
        if (best == u || wts[u * T + t] > best_w) {
          best = v;
          best_w = wts[u * T + t];
        }
      }
      parent[u] = best;
    }
  });
  return parent;
}

// Turns the pointer graph (every item one out-pointer) into a forest: on each cycle the
// smallest id becomes a root (parent[r] = r).
void CutCycles(std::vector<NodeId>* parent) {
  std::vector<NodeId>& p = *parent;
  const std::uint64_t n = p.size();
  std::vector<std::uint8_t> state(n, 0);  // 0 unseen, 1 on the current path, 2 done
  std::vector<NodeId> path;
  for (std::uint64_t s = 0; s < n; ++s) {
    if (state[s] != 0) continue;
    path.clear();
    NodeId x = static_cast<NodeId>(s);
    while (state[x] == 0) {
      state[x] = 1;
      path.push_back(x);
      x = p[x];
    }
    if (state[x] == 1) {  // the path ran into itself: path[i..] from x is a cycle
      const auto it = std::find(path.begin(), path.end(), x);
      const NodeId r = *std::min_element(it, path.end());
      p[r] = r;
    }
    for (NodeId y : path) state[y] = 2;
  }
}

// Depth-first preorder of the forest (roots and children by increasing id), and each item's
// root.
void ForestPreorder(const std::vector<NodeId>& parent, std::vector<NodeId>* seq,
                    std::vector<NodeId>* root) {
  const std::uint64_t n = parent.size();
  std::vector<NodeId> start(n + 1, 0), child(n);
  for (std::uint64_t u = 0; u < n; ++u) {
    if (parent[u] != u) ++start[parent[u] + 1];
  }
  for (std::uint64_t u = 0; u < n; ++u) start[u + 1] += start[u];
  {
    std::vector<NodeId> fill(start.begin(), start.end() - 1);
    for (std::uint64_t u = 0; u < n; ++u) {
      if (parent[u] != u) child[fill[parent[u]]++] = static_cast<NodeId>(u);
    }
  }
  seq->clear();
  seq->reserve(n);
  root->assign(n, 0);
  std::vector<NodeId> stack;
  for (std::uint64_t r = 0; r < n; ++r) {
    if (parent[r] != r) continue;
    stack.push_back(static_cast<NodeId>(r));
    while (!stack.empty()) {
      const NodeId x = stack.back();
      stack.pop_back();
      seq->push_back(x);
      (*root)[x] = static_cast<NodeId>(r);
      for (NodeId c = start[x + 1]; c > start[x]; --c) stack.push_back(child[c - 1]);
    }
  }
}

// One synchronous round of weighted label propagation: each item takes the label with the
// most neighbour weight (ties: the smaller label). Reads `label`, returns the new labels and
// how many differ.
std::vector<NodeId> PropagateLabels(const NodeId* nbrs, const float* wts, std::uint64_t n,
                                    std::uint32_t T, const std::vector<NodeId>& label,
                                    std::uint64_t* moved) {
  std::vector<NodeId> next(n);
  std::atomic<std::uint64_t> changed{0};
  std::uint32_t slots = 8;
  while (slots < 2 * (T + 1)) slots *= 2;
  tbb::parallel_for(tbb::blocked_range<std::uint64_t>(0, n, 4096), [&](const auto& r) {
    std::vector<NodeId> keys(slots, kInvalidNode);
    std::vector<float> sums(slots, 0.0f);
    std::vector<std::uint32_t> used;
    used.reserve(T + 1);
    for (std::uint64_t u = r.begin(); u < r.end(); ++u) {
      const NodeId* nb = nbrs + u * T;
      const float* w = wts + u * T;
      // Most items have a label that holds a strict majority of their weight: that of their
      // heaviest neighbour, found without a table.
      float total = kSelfWeight, best_w = -1;
      NodeId cand = label[u];
      for (std::uint32_t t = 0; t < T; ++t) {
        if (nb[t] == kInvalidNode) continue;
        total += w[t];
        if (w[t] > best_w) best_w = w[t], cand = label[nb[t]];
      }
      float cand_w = cand == label[u] ? kSelfWeight : 0.0f;
      for (std::uint32_t t = 0; t < T; ++t) {
        if (nb[t] != kInvalidNode && label[nb[t]] == cand) cand_w += w[t];
      }
      if (2 * cand_w > total) {
        next[u] = cand;
        continue;
      }
      auto add = [&](NodeId key, float x) {
        std::uint32_t h = (key * 2654435761u) & (slots - 1);
        while (keys[h] != kInvalidNode && keys[h] != key) h = (h + 1) & (slots - 1);
        if (keys[h] == kInvalidNode) keys[h] = key, used.push_back(h);
        sums[h] += x;
      };
      add(label[u], kSelfWeight);
      for (std::uint32_t t = 0; t < T; ++t) {
        if (nb[t] != kInvalidNode) add(label[nb[t]], w[t]);
      }
      NodeId best = kInvalidNode;
      float best_sum = -1;
      for (std::uint32_t h : used) {
        if (sums[h] > best_sum || (sums[h] == best_sum && keys[h] < best)) {
          best = keys[h];
          best_sum = sums[h];
        }
        keys[h] = kInvalidNode;
        sums[h] = 0;
      }
      used.clear();
      next[u] = best;
    }
    std::uint64_t c = 0;
    for (std::uint64_t u = r.begin(); u < r.end(); ++u) c += next[u] != label[u];
    changed += c;
  });
  *moved = changed.load();
  return next;
}

}  // namespace

LocalityOrder ComputeLocalityOrder(const NodeId* nbrs, const float* wts, std::uint64_t items,
                                   std::uint32_t T) {
  LocalityOrder o;
  std::vector<NodeId> seq, label;
  {
    std::vector<NodeId> parent = HeaviestNeighbors(nbrs, wts, items, T);
    CutCycles(&parent);
    ForestPreorder(parent, &seq, &label);
  }
  // Hub-rich neighbourhoods (random walks visit popular items most) settle in one round;
  // flatter ones keep moving items for a few more.
  for (int round = 0; round < kMaxRounds; ++round) {
    std::uint64_t moved = 0;
    label = PropagateLabels(nbrs, wts, items, T, label, &moved);
    if (moved * kSettledShare < items) break;
  }
  // Labels are tree roots. Groups in the order of their root in the preorder, items within a
  // group in preorder: a counting sort.
  std::vector<NodeId> start(items, 0);
  for (std::uint64_t u = 0; u < items; ++u) ++start[label[u]];
  NodeId acc = 0;
  for (NodeId x : seq) {
    const NodeId c = start[x];
    start[x] = acc;
    acc += c;
  }
  o.order.resize(items);
  for (NodeId x : seq) o.order[start[label[x]]++] = x;
  o.pos.resize(items);
  for (std::uint64_t i = 0; i < items; ++i) o.pos[o.order[i]] = static_cast<NodeId>(i);
  return o;
}

std::uint64_t LocalityOrderScratchBytes(std::uint64_t items) {
  // parent, seq, root/label, the next labels, children (start + list): 4 bytes each, plus
  // the cycle state and the sort's group starts.
  return items * (6 * sizeof(NodeId) + 1 + sizeof(NodeId));
}

double LocalityShare(const LocalityOrder& o, const NodeId* nbrs, std::uint64_t items,
                     std::uint32_t T, std::uint64_t window, std::uint64_t stride) {
  std::uint64_t near = 0, total = 0;
  for (std::uint64_t u = 0; u < items; u += std::max<std::uint64_t>(stride, 1)) {
    for (std::uint32_t t = 0; t < T; ++t) {
      const NodeId v = nbrs[u * T + t];
      if (v == kInvalidNode) continue;
      ++total;
      const std::int64_t d = static_cast<std::int64_t>(o.pos[v]) - o.pos[u];
      near += static_cast<std::uint64_t>(std::llabs(d)) <= window;
    }
  }
  return total == 0 ? 1.0 : static_cast<double>(near) / static_cast<double>(total);
}

}  // namespace pgraph::walker
