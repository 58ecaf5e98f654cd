// SPDX-License-Identifier: ISC
#include <doctest/doctest.h>

#include "budget/budget.hpp"

using lockbox::budget::Budget;

TEST_CASE("the budget charges up to the limit exactly and tracks the peak") {
  Budget budget;
  budget.set_limit(3 * 4096);
  CHECK(budget.try_charge_locked(4096));
  CHECK(budget.try_charge_locked(2 * 4096));
  CHECK_FALSE(budget.try_charge_locked(1));
  CHECK(budget.locked_bytes() == 3 * 4096);
  budget.release_locked(4096);
  CHECK(budget.try_charge_locked(4096));
  CHECK_FALSE(budget.try_charge_locked(SIZE_MAX));
  budget.release_locked(3 * 4096);
  CHECK(budget.locked_bytes() == 0);
  CHECK(budget.peak_locked_bytes() == 3 * 4096);
}

TEST_CASE("the best-effort warning is due exactly once") {
  Budget budget;
  CHECK(budget.first_unlocked_fallback());
  CHECK_FALSE(budget.first_unlocked_fallback());
}
