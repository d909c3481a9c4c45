#pragma once
// Dense identifiers shared by every component. Items and contexts are numbered 0..n-1 in
// the order ingest first saw them; edges are counted with 64 bits.

#include <cstdint>
#include <limits>

namespace pgraph {

using NodeId = std::uint32_t;     // dense item or context id
using EdgeIndex = std::uint64_t;  // position in a CSR target array

inline constexpr NodeId kInvalidNode = std::numeric_limits<NodeId>::max();

// Which side of the bipartite graph a dense id belongs to.
enum class NodeKind { kItem, kContext };

}  // namespace pgraph
