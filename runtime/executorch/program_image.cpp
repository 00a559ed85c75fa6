// program_image.cpp — EDGESLM_WEIGHT_PAGES and the .pte read into huge pages (see program_image.h).
#include "program_image.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace edgeslm {
namespace {

bool thp_available() {
  FILE* f = std::fopen("/sys/kernel/mm/transparent_hugepage/enabled", "r");
  if (f == nullptr) return false;
  char buf[128] = {0};
  const size_t n = std::fread(buf, 1, sizeof buf - 1, f);
  std::fclose(f);
  const std::string mode(buf, n);                     // e.g. "always [madvise] never"
  return mode.find("[always]") != std::string::npos || mode.find("[madvise]") != std::string::npos;
}

}  // namespace

Status weight_pages(WeightPages* out) {
  const char* v = std::getenv("EDGESLM_WEIGHT_PAGES");
  const std::string mode = v == nullptr ? "auto" : v;
  if (mode == "huge") *out = WeightPages::kHuge;
  else if (mode == "mmap") *out = WeightPages::kMmap;
  else if (mode == "auto" || mode.empty()) *out = thp_available() ? WeightPages::kHuge : WeightPages::kMmap;
  else
    return Status::Error(EDGESLM_ERR_INVALID_ARGUMENT, "EDGESLM_WEIGHT_PAGES=" + mode +
                                                           " is not a mode -- fix: set it to huge, mmap or auto");
  return Status::Ok();
}

namespace {
constexpr size_t kHugePage = size_t(2) << 20;
}  // namespace

Status read_program_image(const std::string& path, ProgramImage* img) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  struct stat sb;
  if (fd < 0 || fstat(fd, &sb) != 0) {
    if (fd >= 0) ::close(fd);
    return Status::Error(EDGESLM_ERR_LOAD, path + ": cannot open");
  }
  img->size = (size_t)sb.st_size;
  img->map_bytes = img->size + kHugePage;
  img->map = mmap(nullptr, img->map_bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (img->map == MAP_FAILED) {
    img->map = nullptr;
    ::close(fd);
    return Status::Error(EDGESLM_ERR_LOAD, path + ": cannot map memory for the program (out of memory) -- fix: "
                                           "EDGESLM_WEIGHT_PAGES=mmap maps the file instead");
  }
  uint8_t* start = reinterpret_cast<uint8_t*>((reinterpret_cast<uintptr_t>(img->map) + kHugePage - 1) &
                                              ~(kHugePage - 1));
  // Huge pages for the whole 2 MB pages the file fills; the tail (and a program under 2 MB) stays on 4 KB
  // pages, so no more than the file's bytes become resident (a huge tail page would add up to 2 MB).
  const size_t whole = img->size & ~(kHugePage - 1);
#if defined(MADV_HUGEPAGE)
  if (whole > 0) madvise(start, whole, MADV_HUGEPAGE);
#endif
#if defined(MADV_NOHUGEPAGE)
  const size_t rest = img->map_bytes - (size_t)(start - static_cast<uint8_t*>(img->map)) - whole;
  if (rest > 0) madvise(start + whole, rest, MADV_NOHUGEPAGE);   // THP "always" would back it anyway
#endif
  size_t done = 0;
  while (done < img->size) {
    const ssize_t r = ::read(fd, start + done, img->size - done);
    if (r <= 0) {
      ::close(fd);
      return Status::Error(EDGESLM_ERR_LOAD, path + ": read failed");
    }
    done += (size_t)r;
  }
  ::close(fd);
  img->data = start;
  return Status::Ok();
}

int64_t huge_page_bytes(const void* p, size_t n) {
  FILE* f = std::fopen("/proc/self/smaps", "r");
  if (f == nullptr) return 0;
  const uintptr_t lo = reinterpret_cast<uintptr_t>(p), hi = lo + n;
  bool inside = false;
  int64_t total = 0;
  char line[512];
  while (std::fgets(line, sizeof line, f) != nullptr) {
    unsigned long a = 0, b = 0;
    long long kb = 0;
    if (std::sscanf(line, "%lx-%lx ", &a, &b) == 2 && std::strchr(line, '-') < std::strchr(line, ' ')) {
      inside = a < hi && b > lo;
    } else if (inside && std::sscanf(line, "AnonHugePages: %lld kB", &kb) == 1) {
      total += (int64_t)kb * 1024;
    }
  }
  std::fclose(f);
  return total;
}

}  // namespace edgeslm
