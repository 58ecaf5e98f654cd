// SPDX-License-Identifier: ISC
// Bookkeeping memory: lockbox's own mappings (metadata.hpp says why).
#include "support/metadata.hpp"

#include "os/os.hpp"

namespace lockbox::metadata {

void* map(std::size_t bytes) {
  void* address = nullptr;
  std::size_t whole_pages = (bytes + os::kPageSize - 1) & ~(os::kPageSize - 1);
  return os::map_metadata(whole_pages, &address) == 0 ? address : nullptr;
}

void unmap(void* address, std::size_t bytes) {
  std::size_t whole_pages = (bytes + os::kPageSize - 1) & ~(os::kPageSize - 1);
  os::unmap(address, whole_pages);
}

void* NodePool::take() {
  if (free_ != nullptr) {
    FreeNode* node = free_;
    free_ = node->next;
    std::memset(static_cast<void*>(node), 0, node_bytes_);
    return node;
  }
  if (carved_ + node_bytes_ > kChunkBytes) {
    auto* chunk = static_cast<unsigned char*>(map(kChunkBytes));
    if (chunk == nullptr) return nullptr;
    chunk_ = chunk;
    carved_ = 0;
  }
  void* node = chunk_ + carved_;
  carved_ += node_bytes_;
  return node;  // fresh mappings read zero
}

void NodePool::give_back(void* node) {
  auto* free_node = static_cast<FreeNode*>(node);
  free_node->next = free_;
  free_ = free_node;
}

}  // namespace lockbox::metadata
