// Canaries: the bytes between the requested size and the end of a slot (at least 8) hold a
// pattern derived from a per-process random secret and the slot's address. Any overflow of
// the requested size changes them, and free() notices.
#pragma once

#include <cstddef>
#include <cstdint>

namespace lockbox::small {

// Called once, with a secret from the system's random generator.
void set_canary_secret(std::uint64_t secret);

// The pattern at byte offset i (from `base`) is byte i % 8 of a word keyed on `base`, so it
// can be written and checked a word at a time.
void write_canary(unsigned char* base, std::size_t from, std::size_t to);
bool canary_intact(const unsigned char* base, std::size_t from, std::size_t to);

}  // namespace lockbox::small
