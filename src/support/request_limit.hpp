// SPDX-License-Identifier: ISC
// The largest request any entry point accepts, in one place: beyond it no mapping can succeed,
// and pointer differences would overflow.
#pragma once

#include <cstddef>
#include <cstdint>

namespace lockbox {

inline constexpr std::size_t kMaxRequest = PTRDIFF_MAX / 2;

}  // namespace lockbox
