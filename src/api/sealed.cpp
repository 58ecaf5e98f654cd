// SPDX-License-Identifier: ISC
// The C entry points for sealed boxes: errno and the readable reason. The boxes themselves
// belong to sealed/.
#include <cerrno>

#include "lockbox/lockbox.h"
#include "sealed/sealed_boxes.hpp"
#include "support/last_error.hpp"

using lockbox::sealed::Box;
using lockbox::sealed::SealedBoxes;

namespace {

Box* as_box(lockbox_sealed* box) { return reinterpret_cast<Box*>(box); }
const Box* as_box(const lockbox_sealed* box) { return reinterpret_cast<const Box*>(box); }

void* fail(int error) {
  errno = error;
  return nullptr;
}

// NULL is a bad argument (EINVAL), not evidence of corruption.
bool is_null(const lockbox_sealed* box, const char* call) {
  if (box != nullptr) return false;
  lockbox::set_last_error("%s: the box is NULL", call);
  errno = EINVAL;
  return true;
}

}  // namespace

extern "C" {

lockbox_sealed* lockbox_seal(const void* data, size_t size) noexcept {
  Box* box = nullptr;
  if (int err = SealedBoxes::instance().seal(data, size, &box)) {
    errno = err;
    return nullptr;
  }
  return reinterpret_cast<lockbox_sealed*>(box);
}

const void* lockbox_sealed_open(lockbox_sealed* box) noexcept {
  if (is_null(box, "lockbox_sealed_open")) return nullptr;
  void* view = nullptr;
  if (int err = SealedBoxes::instance().open(as_box(box), false, &view)) return fail(err);
  return view;
}

void* lockbox_sealed_open_rw(lockbox_sealed* box) noexcept {
  if (is_null(box, "lockbox_sealed_open_rw")) return nullptr;
  void* view = nullptr;
  if (int err = SealedBoxes::instance().open(as_box(box), true, &view)) return fail(err);
  return view;
}

void lockbox_sealed_close(lockbox_sealed* box, const void* view) noexcept {
  if (is_null(box, "lockbox_sealed_close")) return;
  if (int err = SealedBoxes::instance().close(as_box(box), view)) errno = err;
}

size_t lockbox_sealed_size(const lockbox_sealed* box) noexcept {
  if (is_null(box, "lockbox_sealed_size")) return 0;
  size_t size = 0;
  if (int err = SealedBoxes::instance().size(as_box(box), &size)) errno = err;
  return size;
}

void lockbox_sealed_free(lockbox_sealed* box) noexcept {
  if (box != nullptr) SealedBoxes::instance().free(as_box(box));
}

int lockbox_sealed_rekey(void) noexcept {
  if (int err = SealedBoxes::instance().rekey()) {
    errno = err;
    return -1;
  }
  return 0;
}

}  // extern "C"
