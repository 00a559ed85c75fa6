// program_image.{h,cpp} — where an ExecuTorch program's bytes (the weights) live in memory.
//
// EDGESLM_WEIGHT_PAGES=huge: the whole .pte read into anonymous memory aligned to 2 MB and advised as
// transparent huge pages (MADV_HUGEPAGE). A decode step streams every weight once: on the file mapping's
// 4 KB pages that is a TLB miss and a hardware-prefetcher restart every 4 KB, on 2 MB pages neither
// (benchmarks/qlinear_loops.cpp, one thread, int4: 7.1 -> 6.2 ms a token's linears). Costs: the file is
// read at open (~0.2 s for 170 MB from the page cache) and all of it is resident and anonymous (not
// evictable), including the parts a run never reads (the embedding rows of unused tokens).
// EDGESLM_WEIGHT_PAGES=mmap: the file mapping, pages resident as read (ExecuTorch's Module default).
// Unset / auto: huge when the kernel offers transparent huge pages (Linux, "always" or "madvise"),
// else mmap -- Android kernels usually have THP off, so phones keep the evictable file mapping.
#pragma once

#include <sys/mman.h>

#include <cstddef>
#include <cstdint>
#include <string>

#include "../common/backend.h"

namespace edgeslm {

enum class WeightPages { kMmap, kHuge };

// The mode of EDGESLM_WEIGHT_PAGES (auto resolved against the kernel's THP setting); an unknown value is
// an error naming the variable and the fix.
Status weight_pages(WeightPages* out);

// The .pte's bytes in anonymous memory, 2 MB-aligned; the whole 2 MB pages the file fills are advised as
// huge pages (a hint: without THP they are ordinary pages), the tail under 2 MB is not. ExecuTorch uses the
// program's constants in place (BufferDataLoader: no copies).
struct ProgramImage {
  void* map = nullptr;             // the mapping (size + 2 MB, for the alignment)
  size_t map_bytes = 0;
  const uint8_t* data = nullptr;   // 2 MB-aligned start of the file's bytes
  size_t size = 0;
  ProgramImage() = default;
  ProgramImage(const ProgramImage&) = delete;
  ProgramImage& operator=(const ProgramImage&) = delete;
  ~ProgramImage() { if (map != nullptr) munmap(map, map_bytes); }
};

Status read_program_image(const std::string& path, ProgramImage* img);

// Bytes of [p, p + n) the kernel backs with huge pages: AnonHugePages of the /proc/self/smaps areas inside
// the range (0 where /proc is absent).
int64_t huge_page_bytes(const void* p, size_t n);

}  // namespace edgeslm
