// SPDX-License-Identifier: ISC
// An ordered map from addresses to trivially copyable values, on lockbox's own memory (a treap:
// a search tree whose shape random priorities keep balanced, O(log n) expected per operation).
// insert() says false when no memory can be had; nothing else can fail. Not thread-safe: the
// owner's lock guards it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <type_traits>

#include "support/metadata.hpp"

namespace lockbox {

template <typename Value>
class OrderedMap {
  static_assert(std::is_trivially_copyable_v<Value>);

 public:
  Value* find(std::uintptr_t key) {
    Node* node = root_;
    while (node != nullptr && node->key != key) node = key < node->key ? node->left : node->right;
    return node != nullptr ? &node->value : nullptr;
  }
  // False (and nothing changed) when the key is present already or no memory can be had.
  bool insert(std::uintptr_t key, const Value& value) {
    if (find(key) != nullptr) return false;
    auto* node = static_cast<Node*>(pool_.take());
    if (node == nullptr) return false;
    node->key = key;
    node->priority = next_priority();
    node->value = value;
    root_ = insert_below(root_, node);
    ++size_;
    return true;
  }
  void erase(std::uintptr_t key) { root_ = erase_below(root_, key); }
  // The value with the greatest key <= `key`, and the one with the smallest key > `key`.
  Value* at_or_before(std::uintptr_t key) {
    Node* best = nullptr;
    for (Node* node = root_; node != nullptr;) {
      if (node->key <= key) {
        best = node;
        node = node->right;
      } else {
        node = node->left;
      }
    }
    return best != nullptr ? &best->value : nullptr;
  }
  Value* after(std::uintptr_t key) {
    Node* best = nullptr;
    for (Node* node = root_; node != nullptr;) {
      if (node->key > key) {
        best = node;
        node = node->left;
      } else {
        node = node->right;
      }
    }
    return best != nullptr ? &best->value : nullptr;
  }
  template <typename Visit>
  void for_each(Visit visit) {
    visit_below(root_, visit);
  }
  std::size_t size() const { return size_; }

 private:
  struct Node {
    std::uintptr_t key;
    std::uint64_t priority;
    Node* left;
    Node* right;
    Value value;
  };

  std::uint64_t next_priority() {
    // xorshift64: the balance needs priorities that do not follow the keys, not secrecy.
    seed_ ^= seed_ << 13;
    seed_ ^= seed_ >> 7;
    seed_ ^= seed_ << 17;
    return seed_;
  }
  // Splits `node`'s tree into keys < key and keys > key (the key itself is never present).
  static void split(Node* node, std::uintptr_t key, Node** below, Node** above) {
    if (node == nullptr) {
      *below = *above = nullptr;
    } else if (node->key < key) {
      split(node->right, key, &node->right, above);
      *below = node;
    } else {
      split(node->left, key, below, &node->left);
      *above = node;
    }
  }
  static Node* insert_below(Node* node, Node* fresh) {
    if (node == nullptr) return fresh;
    if (fresh->priority > node->priority) {
      split(node, fresh->key, &fresh->left, &fresh->right);
      return fresh;
    }
    Node*& side = fresh->key < node->key ? node->left : node->right;
    side = insert_below(side, fresh);
    return node;
  }
  static Node* merge(Node* low, Node* high) {
    if (low == nullptr) return high;
    if (high == nullptr) return low;
    if (low->priority > high->priority) {
      low->right = merge(low->right, high);
      return low;
    }
    high->left = merge(low, high->left);
    return high;
  }
  Node* erase_below(Node* node, std::uintptr_t key) {
    if (node == nullptr) return nullptr;
    if (node->key == key) {
      Node* rest = merge(node->left, node->right);
      pool_.give_back(node);
      --size_;
      return rest;
    }
    Node*& side = key < node->key ? node->left : node->right;
    side = erase_below(side, key);
    return node;
  }
  template <typename Visit>
  static void visit_below(Node* node, Visit& visit) {
    if (node == nullptr) return;
    visit_below(node->left, visit);
    visit(node->key, node->value);
    visit_below(node->right, visit);
  }

  Node* root_ = nullptr;
  std::size_t size_ = 0;
  std::uint64_t seed_ = 0x9e3779b97f4a7c15u;
  metadata::NodePool pool_{sizeof(Node)};
};

}  // namespace lockbox
