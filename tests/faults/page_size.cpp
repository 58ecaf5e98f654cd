// SPDX-License-Identifier: ISC
// A kernel whose pages are not the 4096 bytes lockbox is built for (16 KiB on some arm64 and
// ppc64 kernels, 64 KiB on others), simulated: the first call must stop with one clear line.
#include <lockbox/lockbox.h>

#include <cstdio>

#include "os/os.hpp"

int main() {
  lockbox::os::simulate_page_size(16384);
  std::printf("expect -\n");
  std::fflush(stdout);
  void* volatile key = lockbox_malloc(32);
  (void)key;
  return 0;
}
