// SPDX-License-Identifier: ISC
// lockbox_get_stats as the tests read it: the whole struct, now.
#pragma once

#include <lockbox/lockbox.h>

namespace lockbox_test {

inline lockbox_stats stats_now() {
  lockbox_stats stats;
  lockbox_get_stats(&stats, sizeof stats);
  return stats;
}

}  // namespace lockbox_test
