// SPDX-License-Identifier: ISC
// lockbox as libgcrypt's secure allocator through <lockbox/gcrypt.h>, as an ordinary user with
// RLIMIT_MEMLOCK = 8 MiB: RSA and Ed25519 key generation, AES-256-GCM with GCRY_CIPHER_SECURE
// and HMAC-SHA256 with GCRY_MD_FLAG_SECURE on four threads at once. Every secure object
// libgcrypt hands back (keys, cipher and digest handles, gcry_malloc_secure) must be lockbox
// memory, libgcrypt's own secure pool must never lock a page (VmLck is exactly lockbox's
// locked_bytes), and libgcrypt must not warn about insecure memory.
#include <gcrypt.h>
#include <lockbox/gcrypt.h>

#include <atomic>
#include <cstdio>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "support/check.hpp"
#include "support/process.hpp"

namespace {

constexpr int kThreads = 4;
constexpr int kRounds = 3;

std::atomic<int> g_not_lockbox{0};
std::atomic<int> g_failed_calls{0};

void expect_lockbox(const void* secure_object, const char* what) {
  if (lockbox_owns(secure_object) == 1) return;
  std::fprintf(stderr, "%s at %p is not lockbox memory\n", what, secure_object);
  ++g_not_lockbox;
}

bool ok(gcry_error_t error, const char* what) {
  if (error == 0) return true;
  std::fprintf(stderr, "%s: %s\n", what, gcry_strerror(error));
  ++g_failed_calls;
  return false;
}

// A fresh key pair: libgcrypt builds it from secure MPIs, so the S-expression that holds the
// private key is secure memory. (Its gcry_sexp_find_token copies are not: libgcrypt's choice.)
void generate_key(const char* parameters, const char* what) {
  gcry_sexp_t spec = nullptr;
  gcry_sexp_t pair = nullptr;
  if (!ok(gcry_sexp_new(&spec, parameters, 0, 1), "gcry_sexp_new")) return;
  if (ok(gcry_pk_genkey(&pair, spec), what)) expect_lockbox(pair, what);
  gcry_sexp_release(pair);
  gcry_sexp_release(spec);
}

void aes_gcm_round_trip() {
  unsigned char key[32], iv[12], plain[256], sealed[256], opened[256], tag[16];
  gcry_randomize(key, sizeof key, GCRY_STRONG_RANDOM);
  gcry_create_nonce(iv, sizeof iv);
  std::memset(plain, 0x3c, sizeof plain);
  gcry_cipher_hd_t cipher = nullptr;
  if (!ok(gcry_cipher_open(&cipher, GCRY_CIPHER_AES256, GCRY_CIPHER_MODE_GCM, GCRY_CIPHER_SECURE),
          "gcry_cipher_open")) {
    return;
  }
  expect_lockbox(cipher, "an AES-GCM handle opened with GCRY_CIPHER_SECURE");
  bool fine =
      ok(gcry_cipher_setkey(cipher, key, sizeof key), "setkey") &&
      ok(gcry_cipher_setiv(cipher, iv, sizeof iv), "setiv") &&
      ok(gcry_cipher_encrypt(cipher, sealed, sizeof sealed, plain, sizeof plain), "encrypt") &&
      ok(gcry_cipher_gettag(cipher, tag, sizeof tag), "gettag") &&
      ok(gcry_cipher_reset(cipher), "reset") &&
      ok(gcry_cipher_setiv(cipher, iv, sizeof iv), "setiv") &&
      ok(gcry_cipher_decrypt(cipher, opened, sizeof opened, sealed, sizeof sealed), "decrypt") &&
      ok(gcry_cipher_checktag(cipher, tag, sizeof tag), "checktag");
  CHECK(fine && std::memcmp(opened, plain, sizeof plain) == 0);
  gcry_cipher_close(cipher);
}

void hmac() {
  gcry_md_hd_t digest = nullptr;
  if (!ok(gcry_md_open(&digest, GCRY_MD_SHA256, GCRY_MD_FLAG_SECURE | GCRY_MD_FLAG_HMAC),
          "gcry_md_open")) {
    return;
  }
  expect_lockbox(digest, "an HMAC handle opened with GCRY_MD_FLAG_SECURE");
  const char key[] = "key";
  const char message[] = "The quick brown fox jumps over the lazy dog";
  ok(gcry_md_setkey(digest, key, sizeof key - 1), "gcry_md_setkey");
  gcry_md_write(digest, message, sizeof message - 1);
  // RFC 4231-style known answer for HMAC-SHA256("key", the fox).
  static const unsigned char kExpected[4] = {0xf7, 0xbc, 0x83, 0xf4};
  const unsigned char* mac = gcry_md_read(digest, GCRY_MD_SHA256);
  CHECK(mac != nullptr && std::memcmp(mac, kExpected, sizeof kExpected) == 0);
  gcry_md_close(digest);
}

void work() {
  for (int round = 0; round < kRounds; ++round) {
    generate_key("(genkey (rsa (nbits 4:1024)))", "RSA-1024 key generation");
    generate_key("(genkey (ecc (curve Ed25519) (flags eddsa)))", "Ed25519 key generation");
    aes_gcm_round_trip();
    hmac();
    void* scratch = gcry_malloc_secure(100);
    CHECK(scratch != nullptr);
    expect_lockbox(scratch, "gcry_malloc_secure(100)");
    gcry_free(scratch);
  }
}

}  // namespace

int main() {
  std::string why = lockbox_test::become_unprivileged(8u << 20);
  CHECK_MESSAGE(why.empty(), "%s", why.c_str());
  if (!why.empty()) return lockbox_test::finish();

  lockbox_test::start_capturing_stderr();
  lockbox_gcrypt_install();
  CHECK(gcry_check_version(GCRYPT_VERSION) != nullptr);
  gcry_control(GCRYCTL_INITIALIZATION_FINISHED, 0);

  std::vector<std::thread> threads;
  for (int i = 0; i < kThreads; ++i) threads.emplace_back(work);
  for (std::thread& thread : threads) thread.join();
  std::string said = lockbox_test::stop_capturing_stderr();

  CHECK_MESSAGE(g_not_lockbox == 0, "%d secure objects were not lockbox memory",
                g_not_lockbox.load());
  CHECK_MESSAGE(g_failed_calls == 0, "%d libgcrypt calls failed", g_failed_calls.load());
  // Everything libgcrypt wanted secure was lockbox's; nothing else locked a page.
  lockbox_stats stats;
  CHECK(lockbox_get_stats(&stats, sizeof stats) == sizeof stats);
  CHECK(stats.unlocked_bytes == 0);
  CHECK_MESSAGE(lockbox_test::vmlck_bytes() == static_cast<long long>(stats.locked_bytes),
                "VmLck %lld, lockbox locked_bytes %zu", lockbox_test::vmlck_bytes(),
                stats.locked_bytes);
  CHECK_MESSAGE(said.empty(), "stderr: %s", said.c_str());
  return lockbox_test::finish();
}
