// Linked into pgraph-torch only: it runs its commands itself (tools/torch_commands.h).
#include "tools/torch_commands.h"

namespace pgraph::tools {

bool ForwardToTorchBinary(int, char**) { return false; }

}  // namespace pgraph::tools
