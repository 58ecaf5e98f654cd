// SPDX-License-Identifier: ISC
// Adapters for every peer, each used the way its documentation tells users to.
#include "peers.hpp"

#include <lockbox/lockbox.h>
#include <sodium.h>
#include <string.h>

#include <cstdlib>

#ifdef BENCH_HAVE_MIMALLOC
#include <mimalloc.h>
#endif
#ifdef BENCH_HAVE_OPENSSL
#include <openssl/crypto.h>
#endif
#ifdef BENCH_HAVE_GCRYPT
#include <gcrypt.h>
#endif
#ifdef BENCH_HAVE_BOTAN
#include <botan/mem_ops.h>
#endif

namespace bench {
namespace {

bool no_start(std::size_t) { return true; }

Peer lockbox_peer() {
  return {"lockbox", no_start, [](std::size_t n) { return lockbox_malloc(n); },
          [](void* p, std::size_t) { lockbox_free(p); }, true};
}

Peer lockbox_secretmem_peer() {
  return {"lockbox (memfd_secret)",
          [](std::size_t) { return lockbox_set_backend(LOCKBOX_BACKEND_SECRETMEM) == 0; },
          [](std::size_t n) { return lockbox_malloc(n); },
          [](void* p, std::size_t) { lockbox_free(p); }, true};
}

Peer sodium_peer() {
  return {"libsodium sodium_malloc", [](std::size_t) { return sodium_init() >= 0; },
          [](std::size_t n) { return sodium_malloc(n); },
          [](void* p, std::size_t) { sodium_free(p); }, true};
}

Peer glibc_peer() {
  return {"glibc malloc + explicit_bzero", no_start, [](std::size_t n) { return std::malloc(n); },
          [](void* p, std::size_t n) {
            explicit_bzero(p, n);
            std::free(p);
          },
          false};
}

#ifdef BENCH_SCUDO_PATH
// LLVM's hardened allocator, preloaded so that malloc and free are Scudo's; zeroing before free
// as the mimalloc and glibc rows do.
Peer scudo_peer() {
  Peer peer = glibc_peer();
  peer.name = "LLVM Scudo + explicit_bzero";
  peer.preload = BENCH_SCUDO_PATH;
  return peer;
}
#endif

#ifdef BENCH_HAVE_MIMALLOC
Peer mimalloc_peer() {
  return {"mimalloc + sodium_memzero", no_start, [](std::size_t n) { return mi_malloc(n); },
          [](void* p, std::size_t n) {
            sodium_memzero(p, n);
            mi_free(p);
          },
          false};
}
#endif

#ifdef BENCH_HAVE_OPENSSL
Peer openssl_peer() {
  // The secure heap is one fixed buddy heap (a power of two) set up once; 1 means locked.
  return {"OpenSSL secure heap",
          [](std::size_t heap_bytes) { return CRYPTO_secure_malloc_init(heap_bytes, 16) == 1; },
          [](std::size_t n) { return CRYPTO_secure_malloc(n, __FILE__, __LINE__); },
          [](void* p, std::size_t) { CRYPTO_secure_free(p, __FILE__, __LINE__); }, true};
}
#endif

#ifdef BENCH_HAVE_GCRYPT
Peer gcrypt_peer() {
  return {"libgcrypt secmem",
          [](std::size_t heap_bytes) {
            if (gcry_check_version(nullptr) == nullptr) return false;
            gcry_control(GCRYCTL_INIT_SECMEM, static_cast<int>(heap_bytes), 0);
            gcry_control(GCRYCTL_INITIALIZATION_FINISHED, 0);
            return true;
          },
          [](std::size_t n) { return gcry_malloc_secure(n); },
          [](void* p, std::size_t) { gcry_free(p); }, true};
}
#endif

#ifdef BENCH_HAVE_BOTAN
Peer botan_peer() {
  return {"Botan mlock pool", no_start, [](std::size_t n) { return Botan::allocate_memory(n, 1); },
          [](void* p, std::size_t n) { Botan::deallocate_memory(p, n, 1); }, true};
}
#endif

}  // namespace

const std::vector<Peer>& available_peers() {
  static const std::vector<Peer> peers = [] {
    std::vector<Peer> list{lockbox_peer(), lockbox_secretmem_peer(), sodium_peer()};
#ifdef BENCH_HAVE_OPENSSL
    list.push_back(openssl_peer());
#endif
#ifdef BENCH_HAVE_GCRYPT
    list.push_back(gcrypt_peer());
#endif
#ifdef BENCH_HAVE_BOTAN
    list.push_back(botan_peer());
#endif
#ifdef BENCH_SCUDO_PATH
    list.push_back(scudo_peer());
#endif
#ifdef BENCH_HAVE_MIMALLOC
    list.push_back(mimalloc_peer());
#endif
    list.push_back(glibc_peer());
    return list;
  }();
  return peers;
}

const std::vector<std::string>& missing_peers() {
  static const std::vector<std::string> missing = [] {
    std::vector<std::string> list;
#ifndef BENCH_HAVE_OPENSSL
    list.push_back("OpenSSL secure heap (libssl-dev)");
#endif
#ifndef BENCH_HAVE_GCRYPT
    list.push_back("libgcrypt secmem (libgcrypt20-dev)");
#endif
#ifndef BENCH_HAVE_BOTAN
    list.push_back("Botan mlock pool (libbotan-2-dev)");
#endif
#ifndef BENCH_HAVE_MIMALLOC
    list.push_back("mimalloc + sodium_memzero (libmimalloc-dev)");
#endif
#ifndef BENCH_SCUDO_PATH
    list.push_back("LLVM Scudo (libclang-rt-14-dev)");
#endif
    return list;
  }();
  return missing;
}

}  // namespace bench
