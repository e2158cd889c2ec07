// The product's version, reported by every binary and in Hello / Welcome.
#ifndef ECLIPTIX_COMMON_VERSION_H_
#define ECLIPTIX_COMMON_VERSION_H_

namespace ecliptix {

inline constexpr char kVersion[] = "0.1.0";

}  // namespace ecliptix

#endif  // ECLIPTIX_COMMON_VERSION_H_
