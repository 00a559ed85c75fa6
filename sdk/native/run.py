"""Run edgeslm-runner from a deployable folder: on the host, or under qemu-aarch64 for arm64 targets.

Always argv lists (never a shell string) and a timeout. The runner prints one JSON object; errors come
back as {"error": ..., "status": ...} and a nonzero exit, raised here as EdgeSLMError.
"""
from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
from pathlib import Path

from edgeslm.errors import EdgeSLMError

DEFAULT_SYSROOT = "/usr/aarch64-linux-gnu"


def runner_argv(deploy: str | Path, bundle: str | Path, tokens: list[int], *, max_new_tokens: int = 32,
                reps: int = 1, warmup: int = 0, threads: int = 0, temperature: float = 0.0, top_p: float = 1.0,
                seed: int = 0, ignore_eos: bool = False, loader: bool = False) -> list[str]:
    """argv of edgeslm-runner; loader=True starts it through the folder's own glibc loader (Android)."""
    deploy = Path(deploy)
    argv = [str(deploy / "edgeslm-runner"), str(bundle), "--tokens", ",".join(str(int(t)) for t in tokens),
            "--max-new-tokens", str(max_new_tokens), "--reps", str(reps), "--warmup", str(warmup),
            "--threads", str(threads), "--temperature", repr(float(temperature)), "--top-p", repr(float(top_p)),
            "--seed", str(seed)]
    if ignore_eos:
        argv.append("--ignore-eos")
    if loader:
        argv = [str(deploy / "lib" / "ld-linux-aarch64.so.1"), "--library-path", str(deploy / "lib"), *argv]
    return argv


def run_qemu(argv: list[str], *, timeout_s: float, cpu: str = "cortex-a76", sysroot: str | None = DEFAULT_SYSROOT,
             env: dict | None = None, cwd: str | Path | None = None) -> subprocess.CompletedProcess:
    """Run an aarch64 Linux binary with qemu-user. cpu: QEMU_CPU (cortex-a76: the default 'max' CPU makes
    XNNPACK pick SVE kernels that emulate ~14x slower). sysroot None: no -L (self-contained folders)."""
    qemu = shutil.which("qemu-aarch64")
    if qemu is None:
        raise EdgeSLMError("qemu-aarch64 not found", fix="apt-get install -y qemu-user")
    cmd = [qemu, *(["-L", sysroot] if sysroot else []), *argv]
    full_env = {**os.environ, "QEMU_CPU": cpu, **(env or {})}
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s, env=full_env, cwd=cwd)
    except subprocess.TimeoutExpired:
        raise EdgeSLMError(f"qemu-aarch64 run timed out after {timeout_s:.0f} s: {' '.join(argv[:2])}") from None


def _needs_qemu(target) -> bool:
    return target.emulation == "qemu-aarch64" and platform.machine() not in ("aarch64", "arm64")


def run_runner(deploy: str | Path, bundle: str | Path, tokens: list[int], *, target: str = "host",
               timeout_s: float = 600.0, **options) -> dict:
    """Run the runner for `target` (host directly, arm64 under qemu) and return its JSON metrics."""
    from edgeslm.targets import get_target

    tgt = get_target(target)
    android = tgt.triple.endswith("android")
    argv = runner_argv(deploy, bundle, tokens, loader=android, **options)
    if _needs_qemu(tgt):
        proc = run_qemu(argv, timeout_s=timeout_s, cpu=tgt.qemu_cpu or "cortex-a76",
                        sysroot=None if android else DEFAULT_SYSROOT)
    else:
        try:
            proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout_s)
        except subprocess.TimeoutExpired:
            raise EdgeSLMError(f"edgeslm-runner timed out after {timeout_s:.0f} s") from None
    try:
        return parse_runner_output(proc.stdout, proc.stderr, proc.returncode)
    except RunnerFailed as err:
        raise EdgeSLMError(f"edgeslm-runner: {err}", path=bundle) from None


class RunnerFailed(Exception):
    """edgeslm-runner ran but gave no metrics: its message says why (the runner's error or stderr tail)."""


def parse_runner_output(stdout: str, stderr: str, returncode: int) -> dict:
    """The runner's one JSON object, or RunnerFailed (no JSON, a JSON error, or a nonzero exit)."""
    try:
        result = json.loads(stdout)
    except json.JSONDecodeError:
        tail = (stderr.strip().splitlines() or ["no output"])[-1]
        raise RunnerFailed(f"exited {returncode} without JSON: {tail}") from None
    if returncode != 0 or "error" in result:
        raise RunnerFailed(f"error {result.get('status', returncode)}: {result.get('error', '')}")
    return result
