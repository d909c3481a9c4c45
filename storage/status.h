#pragma once
// Status and Result<T>: explicit errors for every pgraph library (no exceptions).
//
// A Status is either OK (no allocation, a null pointer) or a code plus a message that names
// what failed (file, line, column, chunk, library error text). Result<T> holds a value or a
// non-OK Status. Both are [[nodiscard]]: a dropped error is a compile error under -Werror;
// a deliberate ignore is written `s.IgnoreError()`.

#include <cstdio>
#include <cstdlib>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

namespace pgraph {

enum class StatusCode {
  kOk = 0,
  kNotFound,
  kInvalidArgument,
  kCorruption,
  kIOError,
  kNotSupported,
  kResourceExhausted,
  kCancelled,
  kInternal,
};

class [[nodiscard]] Status {
 public:
  Status() = default;
  Status(const Status& o) : rep_(o.rep_ ? std::make_unique<Rep>(*o.rep_) : nullptr) {}
  Status& operator=(const Status& o) {
    rep_ = o.rep_ ? std::make_unique<Rep>(*o.rep_) : nullptr;
    return *this;
  }
  Status(Status&&) noexcept = default;
  Status& operator=(Status&&) noexcept = default;

  static Status OK() { return Status(); }
  static Status NotFound(std::string_view m) { return Status(StatusCode::kNotFound, m); }
  static Status InvalidArgument(std::string_view m) {
    return Status(StatusCode::kInvalidArgument, m);
  }
  static Status Corruption(std::string_view m) { return Status(StatusCode::kCorruption, m); }
  static Status IOError(std::string_view m) { return Status(StatusCode::kIOError, m); }
  static Status NotSupported(std::string_view m) { return Status(StatusCode::kNotSupported, m); }
  static Status ResourceExhausted(std::string_view m) {
    return Status(StatusCode::kResourceExhausted, m);
  }
  static Status Cancelled(std::string_view m) { return Status(StatusCode::kCancelled, m); }
  static Status Internal(std::string_view m) { return Status(StatusCode::kInternal, m); }

  bool ok() const { return rep_ == nullptr; }
  StatusCode code() const { return rep_ ? rep_->code : StatusCode::kOk; }
  const std::string& message() const {
    static const std::string kEmpty;
    return rep_ ? rep_->message : kEmpty;
  }
  bool IsNotFound() const { return code() == StatusCode::kNotFound; }
  bool IsInvalidArgument() const { return code() == StatusCode::kInvalidArgument; }
  bool IsCorruption() const { return code() == StatusCode::kCorruption; }
  bool IsIOError() const { return code() == StatusCode::kIOError; }
  bool IsResourceExhausted() const { return code() == StatusCode::kResourceExhausted; }
  bool IsCancelled() const { return code() == StatusCode::kCancelled; }

  // Returns a copy whose message is "prefix: message" (no-op on OK).
  Status WithContext(std::string_view prefix) const {
    if (ok()) return Status();
    return Status(code(), std::string(prefix) + ": " + message());
  }

  // "InvalidArgument: message", or "OK".
  std::string ToString() const {
    if (ok()) return "OK";
    return std::string(CodeName(code())) + ": " + message();
  }
  static const char* CodeName(StatusCode c) {
    switch (c) {
      case StatusCode::kOk: return "OK";
      case StatusCode::kNotFound: return "NotFound";
      case StatusCode::kInvalidArgument: return "InvalidArgument";
      case StatusCode::kCorruption: return "Corruption";
      case StatusCode::kIOError: return "IOError";
      case StatusCode::kNotSupported: return "NotSupported";
      case StatusCode::kResourceExhausted: return "ResourceExhausted";
      case StatusCode::kCancelled: return "Cancelled";
      case StatusCode::kInternal: return "Internal";
    }
    return "Unknown";
  }

  void IgnoreError() const {}

 private:
  struct Rep {
    StatusCode code;
    std::string message;
  };
  Status(StatusCode c, std::string_view m)
      : rep_(std::make_unique<Rep>(Rep{c, std::string(m)})) {}
  std::unique_ptr<Rep> rep_;
};

// A value or an error. Access the value only after checking ok().
template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : value_(std::move(value)) {}  // NOLINT: implicit by design
  Result(Status status) : status_(std::move(status)) {  // NOLINT
    if (status_.ok()) status_ = Status::Internal("Result constructed from OK status");
  }
  bool ok() const { return status_.ok(); }
  const Status& status() const { return status_; }
  T& value() & { return *value_; }
  const T& value() const& { return *value_; }
  T&& value() && { return std::move(*value_); }
  T* operator->() { return &*value_; }
  const T* operator->() const { return &*value_; }
  T& operator*() & { return *value_; }

 private:
  Status status_;
  std::optional<T> value_;
};

}  // namespace pgraph

#define PGRAPH_CONCAT_INNER(a, b) a##b
#define PGRAPH_CONCAT(a, b) PGRAPH_CONCAT_INNER(a, b)

#define PGRAPH_RETURN_IF_ERROR(expr)            \
  do {                                          \
    ::pgraph::Status _pgraph_s = (expr);        \
    if (!_pgraph_s.ok()) return _pgraph_s;      \
  } while (0)

#define PGRAPH_ASSIGN_OR_RETURN_IMPL(tmp, lhs, expr) \
  auto tmp = (expr);                                 \
  if (!tmp.ok()) return tmp.status();                \
  lhs = std::move(tmp).value()

#define PGRAPH_ASSIGN_OR_RETURN(lhs, expr) \
  PGRAPH_ASSIGN_OR_RETURN_IMPL(PGRAPH_CONCAT(_pgraph_r, __LINE__), lhs, expr)

// Broken invariants are bugs, not input errors: abort with the location.
#define PGRAPH_CHECK(cond)                                                            \
  do {                                                                                \
    if (!(cond)) {                                                                    \
      std::fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
      std::abort();                                                                   \
    }                                                                                 \
  } while (0)
