#pragma once
// Private to train/: the checkpoint blob format (torch-free).
//
// Layout (little endian):
//   "PGCKPT01"
//   u32 n_meta,   n_meta x (u32 len, key bytes, u32 len, value bytes)
//   u32 n_arrays, n_arrays x (u32 len, name, u32 ndim, ndim x i64 dims, f32 data[prod(dims)])
//   u64 FNV-1a hash of every byte before it
// Meta keys: "config" (key=value lines, see FormatConfig), "epoch", "global_step".
// Arrays: the model parameters under their public names (trainer.h, ModelParameters) and the
// Adam moments under "adam.m/<name>" and "adam.v/<name>"; meta "adam.step" is Adam's t.
// With TrainOptions::ema_decay the public names hold the moving average (the model that
// inference uses) and "adam.w/<name>" the optimizer's own iterate (what --resume continues).

#include <cstddef>
#include <map>
#include <span>
#include <string>
#include <vector>

#include "storage/status.h"
#include "train/trainer.h"

namespace pgraph::train {

struct CheckpointData {
  std::map<std::string, std::string> meta;
  std::map<std::string, NamedArray> arrays;
};

std::vector<std::byte> SerializeCheckpoint(const CheckpointData& c);
// Corruption when the magic, a length or the hash does not match.
Result<CheckpointData> ParseCheckpoint(std::span<const std::byte> blob);

// key=value lines holding the model config and the training options that define a run
// (not the execution ones: threads, device, pipeline, prefetch, epochs).
std::string FormatConfig(const ModelConfig& model, const TrainOptions& options);
// Parses FormatConfig's output into `model` and the run-defining fields of `options`.
// InvalidArgument for an unknown key or a bad value.
Status ParseConfig(const std::string& text, ModelConfig* model, TrainOptions* options);

}  // namespace pgraph::train
