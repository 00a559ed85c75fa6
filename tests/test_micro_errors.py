"""Micro backend bad input: one clear line with the numbers or the fix, nothing half-written.

Too big (early, with bytes over; and the linker's own budget when the early check is bypassed), an
architecture or recipe the C emitter does not implement, missing toolchain / QEMU (Debian packages named),
a firmware that faults (HardFault with the PC of the faulting instruction) or hangs (killed at the timeout),
and bad prompt ids.
"""
from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from edgeslm.compilers.base import Unsupported
from edgeslm.errors import EdgeSLMError
from edgeslm.farm.micro_profile import FirmwareFailed, run_firmware
from edgeslm.farm.qemu_cortex_m import QemuCortexMDevice
from micro_helpers import lower, tiny_decoder

FAULT_C = r"""
#include <stdint.h>
int main(void) {
#ifdef HANG
    for (;;) { __asm__ volatile("nop"); }
#else
    __asm__ volatile(".global edgeslm_test_udf\nedgeslm_test_udf: udf #0");
#endif
    return 0;
}
"""


def test_too_big_for_flash_refused_early_with_numbers(tmp_path, monkeypatch):
    from edgeslm.compilers.micro import quantize
    model = tiny_decoder(vocab=2048, hidden=256, layers=2, heads=4, kv_heads=4, ff=512, tied=False)
    monkeypatch.setattr(quantize, "quantize_model", lambda m: pytest.fail("quantized before the budget check"))
    with pytest.raises(EdgeSLMError, match=r"model too big for cortex-m4 .*flash [\d,]+ B > 1,048,576 B "
                                           r"\(over by [\d,]+ B\)") as err:
        lower(model, "cortex-m4", tmp_path)
    assert "fix: use a smaller model" in str(err.value)
    assert not (tmp_path / "firmware").exists()   # refused before any C was written


def test_too_big_for_ram_names_the_kv_cache(tmp_path):
    model = tiny_decoder(layers=4, heads=8, kv_heads=8, hidden=256, ff=256, seq=512, vocab=256)
    with pytest.raises(EdgeSLMError, match=r"RAM [\d,]+ B > 262,144 B \(over by [\d,]+ B; arena .* int8 KV cache"):
        lower(model, "cortex-m4", tmp_path)


def test_linker_enforces_the_budget_too(tmp_path, monkeypatch):
    from edgeslm.compilers.micro import budget
    monkeypatch.setattr(budget, "check", lambda *a, **k: None)       # bypass the early refusal
    model = tiny_decoder(vocab=2048, hidden=256, layers=2, heads=4, kv_heads=4, ff=512, tied=False)
    with pytest.raises(EdgeSLMError, match=r"does not fit cortex-m4: the linker reports FLASH by [\d,]+ bytes"):
        lower(model, "cortex-m4", tmp_path)


@pytest.mark.parametrize("extra,words", [(dict(qk_norm=True), "q/k norms"),
                                         (dict(hidden_act="gelu_tanh"), "activation 'gelu_tanh'"),
                                         (dict(qkv_bias=True), "linear biases")])
def test_unsupported_architecture_says_what(tmp_path, extra, words):
    with pytest.raises(Unsupported, match=f"{words}.*not supported by the micro C emitter") as err:
        lower(tiny_decoder(**extra), "cortex-m4", tmp_path)
    assert "fix: use a Llama-architecture" in str(err.value)


def test_recipe_and_target_refused():
    from edgeslm.compilers import get_compiler
    from edgeslm.quant import load_recipe
    from edgeslm.targets import get_target
    micro = get_compiler("micro")
    with pytest.raises(Unsupported, match="int8 per-row weights only, not recipe 'int4'"):
        micro.check_recipe(load_recipe("int4"))
    assert not micro.supports(get_target("host")) and micro.supports(get_target("cortex-m7"))


def test_missing_toolchain_and_qemu_name_debian_packages(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(EdgeSLMError, match="arm-none-eabi-gcc not found") as err:
        lower(tiny_decoder(), "cortex-m4", tmp_path / "out")
    assert "fix: apt-get install -y gcc-arm-none-eabi libnewlib-arm-none-eabi" in str(err.value)
    with pytest.raises(EdgeSLMError, match="qemu-system-arm not found") as err:
        QemuCortexMDevice("cortex-m4", workdir=tmp_path / "dev")
    assert "fix: apt-get install -y qemu-system-arm" in str(err.value)


def _build_test_firmware(tmp_path: Path, name: str, defines: list[str]) -> Path:
    from edgeslm.compilers.micro.project import cflags, linker_script, runtime_dir
    from edgeslm.targets import get_target
    target = get_target("cortex-m4")
    src = runtime_dir()
    (tmp_path / "fault.c").write_text(FAULT_C)
    (tmp_path / "link.ld").write_text(linker_script(target))
    argv = ["arm-none-eabi-gcc", *cflags(target, "portable"), *defines, f"-I{src}", str(src / "startup.c"),
            str(src / "semihost.c"), "fault.c", "-T", "link.ld", "-nostartfiles", "--specs=nano.specs",
            "--specs=nosys.specs", "-o", name]
    subprocess.run(argv, cwd=tmp_path, check=True)
    return tmp_path / name


def test_hardfault_reported_with_pc(tmp_path):
    elf = _build_test_firmware(tmp_path, "fault.elf", [])
    symbols = subprocess.run(["arm-none-eabi-nm", str(elf)], capture_output=True, text=True, check=True).stdout
    udf = next(int(line.split()[0], 16) for line in symbols.splitlines() if line.endswith(" edgeslm_test_udf"))
    device = QemuCortexMDevice("cortex-m4", workdir=tmp_path / "dev")
    device.push(elf, "fault.elf")
    done = device.run(["fault.elf", "1", "0", "1"], timeout_s=30)
    assert done.returncode == 3 and not done.timed_out
    with pytest.raises(FirmwareFailed, match=f"firmware fault: FAULT HardFault pc=0x{udf:08x} "):
        run_firmware(device, "fault.elf", [1], 1, timeout_s=30)


def test_hanging_firmware_killed_at_timeout(tmp_path):
    elf = _build_test_firmware(tmp_path, "hang.elf", ["-DHANG"])
    device = QemuCortexMDevice("cortex-m4", workdir=tmp_path / "dev")
    device.push(elf, "hang.elf")
    with pytest.raises(FirmwareFailed, match=r"firmware hung: no exit after 2 s \(killed\)"):
        run_firmware(device, "hang.elf", [1], 1, timeout_s=2)


def test_bad_prompt_ids_refused_by_firmware(tmp_path):
    lower(tiny_decoder(), "cortex-m4", tmp_path)
    device = QemuCortexMDevice("cortex-m4", workdir=tmp_path / "dev")
    device.push(tmp_path / "firmware" / "firmware.elf", "fw.elf")
    with pytest.raises(FirmwareFailed, match="token id out of range"):
        run_firmware(device, "fw.elf", [1, 256], 1, timeout_s=30)
    with pytest.raises(FirmwareFailed, match="prompt longer than the context"):
        run_firmware(device, "fw.elf", [1] * 49, 1, timeout_s=30)
