#pragma once
// The commands that need libtorch (train, infer) live in a second executable, pgraph-torch,
// beside `pgraph`: loading libtorch costs every process about half a second, which the other
// commands (`query` above all, which answers in milliseconds) should not pay. `pgraph`
// registers these names with their descriptions (so its --help lists them) and hands such a
// command line, unchanged, to pgraph-torch (tools/torch_forward.cc).

namespace pgraph::tools {

inline constexpr const char* kTrainDescription =
    "Train the PinSage model on a walked store; checkpoints go into the store";
inline constexpr const char* kInferDescription =
    "Embed every item layer by layer with the latest checkpoint (out of core)";

// If `argv[1]` names a command of pgraph-torch and this executable is not it, replaces the
// process with pgraph-torch (same arguments); returns only when there is nothing to forward
// (false) or the exec failed (true, after printing why).
bool ForwardToTorchBinary(int argc, char** argv);

}  // namespace pgraph::tools
