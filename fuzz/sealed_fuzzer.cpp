// SPDX-License-Identifier: ISC
// Fuzz target: an op interpreter over the sealed-box API against a model (each box's bytes,
// its open views and their kind). Ops: seal, open read-only (nesting), open writable and change
// bytes through the view, close a view, rekey, free. After every op the opened plaintext is
// what the model holds, the view rules answer EBUSY exactly when the model says they must, and
// the stats count the model's boxes and open boxes.
#include <fuzzer/FuzzedDataProvider.h>
#include <lockbox/lockbox.h>

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

namespace {

[[noreturn]] void fail(const char* what, const void* where) {
  std::fprintf(stderr, "sealed_fuzzer: %s at %p\n", what, where);
  std::abort();
}

struct Box {
  lockbox_sealed* handle;
  std::vector<unsigned char> bytes;  // what the box must give back
  std::vector<const void*> readers;  // open read-only views
  unsigned char* writer = nullptr;   // the open writable view
};

class Model {
 public:
  Model() { lockbox_get_stats(&baseline_, sizeof baseline_); }
  ~Model() {
    for (Box& box : boxes_) {
      while (!box.readers.empty()) close_reader(box);
      if (box.writer != nullptr) close_writer(box);
      lockbox_sealed_free(box.handle);
    }
  }

  void seal(FuzzedDataProvider& data) {
    std::size_t size = data.ConsumeIntegralInRange<int>(0, 3) == 0
                           ? data.ConsumeIntegralInRange<std::size_t>(0, 20000)
                           : data.ConsumeIntegralInRange<std::size_t>(0, 80);
    std::vector<unsigned char> bytes = data.ConsumeBytes<unsigned char>(size);
    bytes.resize(size, 0xa5);
    lockbox_sealed* handle = lockbox_seal(bytes.data(), bytes.size());
    if (handle == nullptr) fail("seal failed", nullptr);
    if (lockbox_sealed_size(handle) != size) fail("size differs", handle);
    boxes_.push_back(Box{handle, std::move(bytes), {}, nullptr});
  }

  void open_read(Box& box) {
    errno = 0;
    const void* view = lockbox_sealed_open(box.handle);
    if (box.writer != nullptr) {
      if (view != nullptr || errno != EBUSY) fail("read view beside a writer", box.handle);
      return;
    }
    if (view == nullptr) fail("open failed", box.handle);
    if (!box.readers.empty() && view != box.readers.front()) fail("readers differ", view);
    check(box, view);
    box.readers.push_back(view);
  }

  void open_write(Box& box, FuzzedDataProvider& data) {
    errno = 0;
    auto* view = static_cast<unsigned char*>(lockbox_sealed_open_rw(box.handle));
    if (box.writer != nullptr || !box.readers.empty()) {
      if (view != nullptr || errno != EBUSY) fail("writer beside another view", box.handle);
      return;
    }
    if (view == nullptr) fail("open_rw failed", box.handle);
    check(box, view);
    box.writer = view;
    // Change a few bytes now; the close seals them.
    for (int i = data.ConsumeIntegralInRange<int>(0, 4); i > 0 && !box.bytes.empty(); --i) {
      std::size_t at = data.ConsumeIntegralInRange<std::size_t>(0, box.bytes.size() - 1);
      unsigned char value = data.ConsumeIntegral<unsigned char>();
      view[at] = value;
      box.bytes[at] = value;
    }
  }

  void close_reader(Box& box) {
    const void* view = box.readers.back();
    box.readers.pop_back();
    check(box, view);
    lockbox_sealed_close(box.handle, view);
  }

  void close_writer(Box& box) {
    lockbox_sealed_close(box.handle, box.writer);
    box.writer = nullptr;
  }

  void free(std::size_t index) {
    Box& box = boxes_[index];
    // Views still open end with the box.
    lockbox_sealed_free(box.handle);
    boxes_[index] = std::move(boxes_.back());
    boxes_.pop_back();
  }

  void check_stats() const {
    lockbox_stats now;
    lockbox_get_stats(&now, sizeof now);
    std::size_t open = 0;
    for (const Box& box : boxes_) open += (box.writer != nullptr || !box.readers.empty()) ? 1 : 0;
    if (now.sealed_boxes != baseline_.sealed_boxes + boxes_.size())
      fail("sealed_boxes differs from the model", nullptr);
    if (now.open_sealed_boxes != baseline_.open_sealed_boxes + open)
      fail("open_sealed_boxes differs from the model", nullptr);
  }

  std::vector<Box>& boxes() { return boxes_; }

 private:
  static void check(const Box& box, const void* view) {
    if (reinterpret_cast<std::uintptr_t>(view) % 16 != 0) fail("misaligned view", view);
    if (!box.bytes.empty() && std::memcmp(view, box.bytes.data(), box.bytes.size()) != 0)
      fail("plaintext differs from the model", view);
  }

  lockbox_stats baseline_;
  std::vector<Box> boxes_;
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* bytes, std::size_t size) {
  FuzzedDataProvider data(bytes, size);
  Model model;
  for (int ops = 0; ops < 200 && data.remaining_bytes() > 0; ++ops) {
    int op = data.ConsumeIntegralInRange<int>(0, 6);
    if (op == 0 || model.boxes().empty()) {
      if (model.boxes().size() < 64) model.seal(data);
      continue;
    }
    std::size_t index = data.ConsumeIntegralInRange<std::size_t>(0, model.boxes().size() - 1);
    Box& box = model.boxes()[index];
    switch (op) {
      case 1:
        model.open_read(box);
        break;
      case 2:
        model.open_write(box, data);
        break;
      case 3:
        if (!box.readers.empty()) model.close_reader(box);
        break;
      case 4:
        if (box.writer != nullptr) model.close_writer(box);
        break;
      case 5:
        if (lockbox_sealed_rekey() != 0) fail("rekey failed", nullptr);
        break;
      default:
        model.free(index);
        break;
    }
    model.check_stats();
  }
  return 0;
}
