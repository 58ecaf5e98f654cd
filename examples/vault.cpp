// SPDX-License-Identifier: ISC
// vault: a small password vault that keeps every plaintext, key and passphrase in lockbox memory.
//
//   vault [--stats] FILE init          create an empty vault
//   vault [--stats] FILE put NAME      store a secret under NAME (replacing any old one)
//   vault [--stats] FILE get NAME      print the secret stored under NAME
//   vault [--stats] FILE list          print the names
//   vault [--stats] FILE remove NAME   delete an entry
//
//   vault --help                       this text
//
// The master passphrase, and the secret for `put`, are read without echo from the terminal
// (`init` asks twice; a signal at the prompt gives the terminal its echo back first), or, when
// standard input is not a terminal, one line each from it (for scripts; no input at all is an
// error, not an empty passphrase). Keys come from
// crypto_pwhash (Argon2id); the entries are sealed together with crypto_secretbox. A vault is
// rewritten into a temporary file that is renamed over the old one, so a crash never loses it.
// In memory, every decrypted secret stays sealed (lockbox::sealed_string): its plaintext exists
// only while it is printed or written back to the file. --stats shows the boxes.
//
// Exit codes: 0 done, 1 usage or I/O error, 2 wrong passphrase, 3 file corrupted, truncated or
// not a vault, 4 no such entry.
#include <fcntl.h>
#include <sodium.h>
#include <sys/stat.h>
#include <termios.h>
#include <unistd.h>

#include <lockbox/lockbox.hpp>

#include <array>
#include <cerrno>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

namespace {

// ------------------------------------------------------------------------------------------
// The file: a header in the clear, then the sealed entries.
//   magic "LBXVAULT" | version (1 byte) | opslimit (8) | memlimit (8) | salt (16)
//   | key check (16) | nonce (24) | secretbox(entries)
// The key check is a keyed hash of a fixed text under the derived key: it tells a wrong
// passphrase apart from a damaged file.
// ------------------------------------------------------------------------------------------
constexpr char kMagic[8] = {'L', 'B', 'X', 'V', 'A', 'U', 'L', 'T'};
constexpr std::uint8_t kVersion = 1;
constexpr std::size_t kSaltBytes = crypto_pwhash_SALTBYTES;
constexpr std::size_t kCheckBytes = 16;
constexpr std::size_t kNonceBytes = crypto_secretbox_NONCEBYTES;
constexpr std::size_t kHeaderBytes = 8 + 1 + 8 + 8 + kSaltBytes + kCheckBytes + kNonceBytes;
constexpr std::size_t kMinFileBytes = kHeaderBytes + crypto_secretbox_MACBYTES;

enum Exit { kOk = 0, kUsage = 1, kWrongPassphrase = 2, kDamaged = 3, kNoEntry = 4 };

using Key = std::array<unsigned char, crypto_secretbox_KEYBYTES>;

struct Failure {
  Exit code;
  std::string message;
};

[[noreturn]] void fail(Exit code, const std::string& message) { throw Failure{code, message}; }

struct Entry {
  lockbox::string name;
  lockbox::sealed_string value;  // opened only to print it or to save the vault
};

struct Header {
  std::uint64_t opslimit = crypto_pwhash_OPSLIMIT_INTERACTIVE;
  std::uint64_t memlimit = crypto_pwhash_MEMLIMIT_INTERACTIVE;
  unsigned char salt[kSaltBytes] = {};
  unsigned char check[kCheckBytes] = {};
  unsigned char nonce[kNonceBytes] = {};
};

void put_u64(std::vector<unsigned char>& out, std::uint64_t value) {
  for (int i = 0; i < 8; ++i) out.push_back(static_cast<unsigned char>(value >> (8 * i)));
}
std::uint64_t get_u64(const unsigned char* in) {
  std::uint64_t value = 0;
  for (int i = 0; i < 8; ++i) value |= std::uint64_t{in[i]} << (8 * i);
  return value;
}

// ------------------------------------------------------------------------------------------
// Reading secrets: one byte at a time with read(2), straight into lockbox memory, so that no
// stdio buffer ever holds them.
// ------------------------------------------------------------------------------------------
// One line from fd, without its newline; fails when fd is at its end before a single byte (no
// input is not an empty secret) or cannot be read.
lockbox::string read_line(int fd, const char* what) {
  lockbox::string line;
  unsigned char c = 0;
  bool any = false;
  for (;;) {
    ssize_t got = read(fd, &c, 1);
    if (got < 0 && errno == EINTR) continue;
    if (got < 0) fail(kUsage, std::string("cannot read the ") + what + ": " + std::strerror(errno));
    if (got == 0) break;
    any = true;
    if (c == '\n') break;
    line.push_back(static_cast<char>(c));
  }
  c = 0;
  if (!any) fail(kUsage, std::string("no ") + what + " given: standard input is at its end");
  if (!line.empty() && line[line.size() - 1] == '\r') line.pop_back();
  return line;
}

// While echo is off, a signal that ends the program (Ctrl-C, Ctrl-\, a hang-up, a kill) must
// give the terminal its echo back first: the handler restores it (tcsetattr is
// async-signal-safe), then dies of the signal as it would have.
termios g_terminal_before{};
constexpr int kEndingSignals[] = {SIGINT, SIGQUIT, SIGTERM, SIGHUP, SIGTSTP};

extern "C" void restore_echo_and_die(int signal_number) {
  tcsetattr(STDIN_FILENO, TCSAFLUSH, &g_terminal_before);
  ssize_t ignored = ::write(STDERR_FILENO, "\n", 1);
  (void)ignored;
  std::signal(signal_number, SIG_DFL);
  std::raise(signal_number);
}

// Echo off, and the ending signals caught, for as long as it lives: however the read ends (a
// line, end of input, an error thrown), the terminal and the signals are given back as they were.
class EchoOff {
 public:
  EchoOff() {
    if (tcgetattr(STDIN_FILENO, &g_terminal_before) != 0) {
      fail(kUsage, std::string("cannot read the terminal's settings: ") + std::strerror(errno));
    }
    struct sigaction restore {};
    restore.sa_handler = restore_echo_and_die;
    sigemptyset(&restore.sa_mask);
    for (std::size_t i = 0; i < std::size(kEndingSignals); ++i) {
      sigaction(kEndingSignals[i], &restore, &previous_[i]);
    }
    termios quiet = g_terminal_before;
    quiet.c_lflag &= ~static_cast<tcflag_t>(ECHO);
    tcsetattr(STDIN_FILENO, TCSAFLUSH, &quiet);
  }
  ~EchoOff() {
    tcsetattr(STDIN_FILENO, TCSAFLUSH, &g_terminal_before);
    for (std::size_t i = 0; i < std::size(kEndingSignals); ++i) {
      sigaction(kEndingSignals[i], &previous_[i], nullptr);
    }
    std::fprintf(stderr, "\n");
  }
  EchoOff(const EchoOff&) = delete;
  EchoOff& operator=(const EchoOff&) = delete;

 private:
  struct sigaction previous_[std::size(kEndingSignals)] {};
};

lockbox::string read_secret(const char* prompt, const char* what) {
  if (!isatty(STDIN_FILENO)) return read_line(STDIN_FILENO, what);
  std::fprintf(stderr, "%s", prompt);
  EchoOff echo_off;
  return read_line(STDIN_FILENO, what);
}

// init: the passphrase twice on a terminal, where a typo cannot be seen; once from a script.
lockbox::string read_new_passphrase() {
  lockbox::string first = read_secret("new master passphrase: ", "master passphrase");
  if (!isatty(STDIN_FILENO)) return first;
  lockbox::string again = read_secret("repeat it: ", "repeated passphrase");
  if (first.size() != again.size() || !lockbox::memeq(first.data(), again.data(), first.size())) {
    fail(kUsage, "the two passphrases differ; nothing was created");
  }
  return first;
}

// ------------------------------------------------------------------------------------------
// Keys
// ------------------------------------------------------------------------------------------
void derive(const lockbox::string& passphrase, const Header& header, Key& key,
            unsigned char check[kCheckBytes]) {
  if (crypto_pwhash(key.data(), key.size(), passphrase.data(), passphrase.size(), header.salt,
                    header.opslimit, static_cast<std::size_t>(header.memlimit),
                    crypto_pwhash_ALG_ARGON2ID13) != 0) {
    fail(kUsage, "not enough memory to derive the key (Argon2id needs " +
                     std::to_string(header.memlimit >> 20) + " MiB)");
  }
  static const char kCheckText[] = "lockbox vault key check";
  crypto_generichash(check, kCheckBytes, reinterpret_cast<const unsigned char*>(kCheckText),
                     sizeof kCheckText - 1, key.data(), key.size());
}

// ------------------------------------------------------------------------------------------
// The vault in memory: entries in lockbox memory, sealed and opened as a whole.
// ------------------------------------------------------------------------------------------
class Vault {
 public:
  explicit Vault(std::string path) : path_(std::move(path)) {}

  void create(const lockbox::string& passphrase) {
    struct stat info {};
    if (stat(path_.c_str(), &info) == 0) fail(kUsage, path_ + " already exists");
    randombytes_buf(header_.salt, sizeof header_.salt);
    derive(passphrase, header_, *key_, header_.check);
    save();
  }

  void open(const lockbox::string& passphrase) {
    std::vector<unsigned char> file = read_file();
    if (file.size() < 8 || std::memcmp(file.data(), kMagic, 8) != 0) {
      fail(kDamaged, path_ + " is not a lockbox vault");
    }
    if (file.size() < kMinFileBytes) {
      fail(kDamaged, path_ + " is truncated (" + std::to_string(file.size()) +
                         " bytes; a vault has at least " + std::to_string(kMinFileBytes) + ")");
    }
    if (file[8] != kVersion) fail(kDamaged, path_ + " has an unknown vault version");
    const unsigned char* at = file.data() + 9;
    header_.opslimit = get_u64(at);
    header_.memlimit = get_u64(at + 8);
    at += 16;
    std::memcpy(header_.salt, at, kSaltBytes);
    at += kSaltBytes;
    std::memcpy(header_.check, at, kCheckBytes);
    at += kCheckBytes;
    std::memcpy(header_.nonce, at, kNonceBytes);
    if (header_.opslimit < crypto_pwhash_OPSLIMIT_MIN ||
        header_.opslimit > crypto_pwhash_OPSLIMIT_MAX ||
        header_.memlimit < crypto_pwhash_MEMLIMIT_MIN ||
        header_.memlimit > (std::uint64_t{1} << 32)) {
      fail(kDamaged, path_ + " is corrupted: its key parameters are out of range");
    }
    unsigned char check[kCheckBytes];
    derive(passphrase, header_, *key_, check);
    if (!lockbox::memeq(check, header_.check, kCheckBytes))
      fail(kWrongPassphrase, "wrong passphrase");

    std::size_t sealed = file.size() - kHeaderBytes;
    lockbox::vector<unsigned char> plain(sealed - crypto_secretbox_MACBYTES);
    if (crypto_secretbox_open_easy(plain.data(), file.data() + kHeaderBytes, sealed, header_.nonce,
                                   key_->data()) != 0) {
      fail(kDamaged, path_ + " is corrupted: its contents fail authentication");
    }
    parse(plain);
  }

  void save() {
    lockbox::vector<unsigned char> plain = serialise();
    randombytes_buf(header_.nonce, sizeof header_.nonce);
    std::vector<unsigned char> file(kMagic, kMagic + 8);
    file.push_back(kVersion);
    put_u64(file, header_.opslimit);
    put_u64(file, header_.memlimit);
    file.insert(file.end(), header_.salt, header_.salt + kSaltBytes);
    file.insert(file.end(), header_.check, header_.check + kCheckBytes);
    file.insert(file.end(), header_.nonce, header_.nonce + kNonceBytes);
    std::size_t header_end = file.size();
    file.resize(header_end + plain.size() + crypto_secretbox_MACBYTES);
    crypto_secretbox_easy(file.data() + header_end, plain.data(), plain.size(), header_.nonce,
                          key_->data());
    write_file_atomically(file);
  }

  lockbox::vector<Entry>& entries() { return entries_; }

  Entry* find(const lockbox::string& name) {
    for (Entry& entry : entries_) {
      if (entry.name == name) return &entry;
    }
    return nullptr;
  }

 private:
  lockbox::vector<unsigned char> serialise() const {
    lockbox::vector<unsigned char> out;
    auto put_text = [&out](std::string_view text) {
      for (int i = 0; i < 4; ++i) out.push_back(static_cast<unsigned char>(text.size() >> (8 * i)));
      out.insert(out.end(), text.begin(), text.end());
    };
    for (const Entry& entry : entries_) {
      put_text(entry.name);
      put_text(entry.value.read());
    }
    return out;
  }

  void parse(const lockbox::vector<unsigned char>& plain) {
    std::size_t at = 0;
    auto get_text = [&]() {
      if (plain.size() - at < 4) fail(kDamaged, path_ + " is corrupted: an entry is cut short");
      std::size_t length = 0;
      for (int i = 0; i < 4; ++i) length |= std::size_t{plain[at + i]} << (8 * i);
      at += 4;
      if (plain.size() - at < length)
        fail(kDamaged, path_ + " is corrupted: an entry is cut short");
      std::string_view text(reinterpret_cast<const char*>(plain.data() + at), length);
      at += length;
      return text;
    };
    while (at < plain.size()) {
      lockbox::string name(get_text());
      entries_.push_back(Entry{std::move(name), lockbox::sealed_string(get_text())});
    }
  }

  std::vector<unsigned char> read_file() const {
    int fd = ::open(path_.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) fail(kUsage, "cannot open " + path_ + ": " + std::strerror(errno));
    std::vector<unsigned char> bytes;
    unsigned char buffer[65536];
    for (;;) {
      ssize_t got = ::read(fd, buffer, sizeof buffer);
      if (got < 0 && errno == EINTR) continue;
      if (got < 0) fail(kUsage, "cannot read " + path_ + ": " + std::strerror(errno));
      if (got == 0) break;
      bytes.insert(bytes.end(), buffer, buffer + got);
    }
    ::close(fd);
    return bytes;
  }

  // Temporary file in the same directory, fsync, rename over the vault, fsync the directory: at
  // every instant the path holds either the whole old vault or the whole new one.
  void write_file_atomically(const std::vector<unsigned char>& bytes) const {
    std::string temporary = path_ + ".tmp-XXXXXX";
    int fd = mkstemp(temporary.data());
    if (fd < 0) fail(kUsage, "cannot create a file next to " + path_ + ": " + std::strerror(errno));
    std::size_t written = 0;
    while (written < bytes.size()) {
      ssize_t n = ::write(fd, bytes.data() + written, bytes.size() - written);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) {
        ::close(fd);
        ::unlink(temporary.c_str());
        fail(kUsage, "cannot write " + temporary + ": " + std::strerror(errno));
      }
      written += static_cast<std::size_t>(n);
    }
    if (fsync(fd) != 0 || ::close(fd) != 0) {
      ::unlink(temporary.c_str());
      fail(kUsage, "cannot write " + temporary + ": " + std::strerror(errno));
    }
    // Test hook: die where a crash hurts most, between the write and the rename.
    if (std::getenv("LOCKBOX_VAULT_CRASH_BEFORE_RENAME") != nullptr) raise(SIGKILL);
    if (std::rename(temporary.c_str(), path_.c_str()) != 0) {
      ::unlink(temporary.c_str());
      fail(kUsage, "cannot replace " + path_ + ": " + std::strerror(errno));
    }
    std::string directory =
        path_.find('/') == std::string::npos ? "." : path_.substr(0, path_.rfind('/'));
    int dir_fd =
        ::open(directory.empty() ? "/" : directory.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dir_fd >= 0) {
      fsync(dir_fd);
      ::close(dir_fd);
    }
  }

  std::string path_;
  Header header_;
  lockbox::unique_ptr<Key> key_ = lockbox::make_secret<Key>();
  lockbox::vector<Entry> entries_;
};

void print_stats() {
  lockbox_stats stats;
  lockbox_get_stats(&stats, sizeof stats);
  std::fprintf(stderr, "lockbox: %zu allocations (%zu bytes) in %zu KiB of locked memory",
               stats.live_allocations, stats.in_use_bytes, stats.locked_bytes / 1024);
  if (stats.memlock_limit == SIZE_MAX) {
    std::fprintf(stderr, "; RLIMIT_MEMLOCK unlimited (or CAP_IPC_LOCK)");
  } else {
    std::fprintf(stderr, "; RLIMIT_MEMLOCK %zu KiB", stats.memlock_limit / 1024);
  }
  std::fprintf(stderr, "; %zu KiB unlocked", stats.unlocked_bytes / 1024);
  std::fprintf(stderr, "; %zu sealed boxes, %zu open\n", stats.sealed_boxes,
               stats.open_sealed_boxes);
}

constexpr char kUsageLine[] =
    "usage: vault [--stats] FILE init | put NAME | get NAME | list | remove NAME\n";

int usage() {
  std::fputs(kUsageLine, stderr);
  return kUsage;
}

int help() {
  std::fputs(kUsageLine, stdout);
  std::fputs(
      "\n"
      "A password vault whose passphrase, key and secrets live only in lockbox memory.\n"
      "  init          create an empty vault at FILE\n"
      "  put NAME      store a secret under NAME (replacing any old one)\n"
      "  get NAME      print the secret stored under NAME\n"
      "  list          print the names\n"
      "  remove NAME   delete an entry\n"
      "  --stats       then print what lockbox holds\n"
      "Secrets are read without echo from the terminal, or one line each from standard input.\n"
      "Exit codes: 0 done, 1 usage or I/O error, 2 wrong passphrase, 3 damaged file,\n"
      "4 no such entry.\n",
      stdout);
  return kOk;
}

// A program started with standard input, output or error closed would hand that number to the
// next file it opens, and read its passphrase from the vault file: they become /dev/null first
// (a closed standard input is then at its end, as an empty one is).
void open_standard_descriptors() {
  for (int fd = STDIN_FILENO; fd <= STDERR_FILENO; ++fd) {
    if (fcntl(fd, F_GETFD) != -1 || errno != EBADF) continue;
    int null = open("/dev/null", fd == STDIN_FILENO ? O_RDONLY : O_WRONLY);
    if (null != fd) std::abort();  // the lowest free descriptor is fd, as none below is closed
  }
}

int run(int argc, char** argv) {
  if (argc == 2 && (std::strcmp(argv[1], "--help") == 0 || std::strcmp(argv[1], "-h") == 0)) {
    return help();
  }
  bool stats = false;
  int at = 1;
  if (at < argc && std::strcmp(argv[at], "--stats") == 0) {
    stats = true;
    ++at;
  }
  if (argc - at < 2) return usage();
  std::string path = argv[at];
  std::string command = argv[at + 1];
  const char* name_argument = argc - at >= 3 ? argv[at + 2] : nullptr;
  bool needs_name = command == "put" || command == "get" || command == "remove";
  if (needs_name != (name_argument != nullptr) || argc - at > 3) return usage();
  if (command != "init" && command != "list" && !needs_name) return usage();
  if (sodium_init() < 0) fail(kUsage, "libsodium failed to start");

  Vault vault(path);
  if (command == "init") {
    lockbox::string passphrase = read_new_passphrase();
    if (passphrase.empty()) fail(kUsage, "the passphrase is empty");
    vault.create(passphrase);
    std::fprintf(stderr, "vault: created %s\n", path.c_str());
  } else {
    vault.open(read_secret("master passphrase: ", "master passphrase"));
    lockbox::string name(name_argument != nullptr ? name_argument : "");
    if (command == "put") {
      lockbox::string value = read_secret("secret: ", "secret");
      if (Entry* entry = vault.find(name)) {
        entry->value.assign(value);
      } else {
        vault.entries().push_back(Entry{std::move(name), lockbox::sealed_string(value)});
      }
      vault.save();
    } else if (command == "get") {
      Entry* entry = vault.find(name);
      if (entry == nullptr) fail(kNoEntry, "no entry named '" + std::string(name.c_str()) + "'");
      // The one place a secret leaves lockbox memory: the user asked to see it. The box is
      // open for this write only.
      auto value = entry->value.read();
      if (::write(STDOUT_FILENO, value.data(), value.size()) < 0 ||
          ::write(STDOUT_FILENO, "\n", 1) < 0) {
        fail(kUsage, std::string("cannot write the secret: ") + std::strerror(errno));
      }
    } else if (command == "list") {
      for (const Entry& entry : vault.entries()) std::printf("%s\n", entry.name.c_str());
    } else {  // remove
      auto& entries = vault.entries();
      std::size_t before = entries.size();
      for (std::size_t i = 0; i < entries.size(); ++i) {
        if (entries[i].name == name)
          entries.erase(entries.begin() + static_cast<std::ptrdiff_t>(i));
      }
      if (entries.size() == before)
        fail(kNoEntry, "no entry named '" + std::string(name.c_str()) + "'");
      vault.save();
    }
  }
  if (stats) print_stats();
  return kOk;
}

}  // namespace

int main(int argc, char** argv) {
  open_standard_descriptors();
  try {
    return run(argc, argv);
  } catch (const Failure& failure) {
    std::fprintf(stderr, "vault: %s\n", failure.message.c_str());
    return failure.code;
  } catch (const std::exception& error) {
    std::fprintf(stderr, "vault: %s\n", error.what());
    return kUsage;
  }
}
