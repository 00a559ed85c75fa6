"""The bundle: the unit that moves between verbs.

bundle/
  manifest.json      schema below; every later verb reads only this folder
  model.pte | ...    the backend's artifact(s)
  tokenizer.json, tokenizer_config.json, generation_config.json (when present)

Steps: write_bundle() fills a staging dir, hashes every file into the manifest, renames into place.
load_bundle() checks the schema and every sha256, so a tampered or truncated bundle is refused.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from edgeslm.errors import EdgeSLMError
from edgeslm.fsutil import sha256_file, write_text_atomic

SCHEMA_VERSION = 1
MANIFEST = "manifest.json"
REQUIRED_KEYS = ("schema_version", "model", "quant", "backend", "target", "artifact", "files", "toolchain")
REQUIRED_MODEL_KEYS = ("architecture", "config", "vocab_size", "max_seq_len", "bos_id", "eos_ids", "weights_sha256")


@dataclass
class Bundle:
    path: Path
    manifest: dict

    @property
    def backend(self) -> str:
        return self.manifest["backend"]

    @property
    def artifact(self) -> Path:
        return self.path / self.manifest["artifact"]

    @property
    def max_seq_len(self) -> int:
        return int(self.manifest["model"]["max_seq_len"])

    @property
    def target_name(self) -> str:
        return self.manifest["target"]["name"]


def hash_files(folder: Path) -> dict[str, dict]:
    """sha256 and size of every file in `folder` except the manifest, by relative path."""
    out = {}
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        rel = path.relative_to(folder).as_posix()
        if rel != MANIFEST:
            out[rel] = {"sha256": sha256_file(path), "bytes": path.stat().st_size}
    return out


def write_manifest(folder: Path, manifest: dict) -> dict:
    """Hash the folder's files into `manifest` and write manifest.json atomically. Returns the manifest."""
    manifest = dict(manifest, schema_version=SCHEMA_VERSION, files=hash_files(folder))
    write_text_atomic(folder / MANIFEST, json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    return manifest


def load_bundle(path: str | Path, *, verify: bool = True) -> Bundle:
    path = Path(path)
    manifest_path = path / MANIFEST
    if not path.is_dir():
        raise EdgeSLMError("no such bundle directory", path=path, fix="pass the -o folder of 'edgeslm export'")
    if not manifest_path.is_file():
        raise EdgeSLMError("not a bundle (manifest.json missing)", path=path,
                           fix="pass the -o folder of 'edgeslm export', or re-export it")
    try:
        manifest = json.loads(manifest_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise EdgeSLMError(f"corrupt manifest ({err})", path=manifest_path, fix="re-export the bundle") from None
    missing = [k for k in REQUIRED_KEYS if k not in manifest]
    missing += [f"model.{k}" for k in REQUIRED_MODEL_KEYS if k not in manifest.get("model", {})]
    if missing:
        raise EdgeSLMError(f"manifest lacks {', '.join(missing)}", path=manifest_path, fix="re-export the bundle")
    if manifest["schema_version"] != SCHEMA_VERSION:
        raise EdgeSLMError(f"manifest schema {manifest['schema_version']} is not {SCHEMA_VERSION}",
                           path=manifest_path, fix="re-export the bundle with this edgeslm version")
    if verify:
        verify_files(path, manifest)
    return Bundle(path=path, manifest=manifest)


def verify_files(path: Path, manifest: dict) -> None:
    for rel, expected in manifest["files"].items():
        file = path / rel
        if not file.is_file():
            raise EdgeSLMError("file listed in the manifest is missing", path=file, fix="re-export the bundle")
        if file.stat().st_size != expected["bytes"] or sha256_file(file) != expected["sha256"]:
            raise EdgeSLMError("file does not match its sha256 in manifest.json (tampered or truncated)",
                               path=file, fix="re-export the bundle")
    art = manifest["artifact"]   # a file, or a directory artifact (.mlpackage) whose files are all listed
    if art not in manifest["files"] and not any(rel.startswith(art.rstrip("/") + "/") for rel in manifest["files"]):
        raise EdgeSLMError(f"artifact '{manifest['artifact']}' is not in the bundle", path=path,
                           fix="re-export the bundle")


# ---- manifest["tokenizer"]: what the native runtime needs to turn text into the same ids as `edgeslm run`
_PROMPT_SENTINEL = "EDGESLM_PROMPT_SENTINEL_5f1c"


def tokenizer_manifest(tokenizer) -> dict:
    """{"plain": recipe, "chat": recipe, "chat_prompt": {"prefix", "suffix"} (if the model has a chat template
    that wraps the message verbatim), "eos_ids": [...]} for edgeslm_generate_text (runtime/common/text.h).

    A recipe mirrors edgeslm.text.Tokenizer.encode: ids = prepend + encode(text, add_special) (minus the
    post-processor's BOS when strip_bos) + append; chat text = prefix + prompt + suffix, which must equal the
    rendered template for one user message (checked on probe prompts; otherwise chat_prompt is left out and
    the runtime refuses chat with a message)."""
    config = tokenizer.config
    flags = "add_bos_token" in config or "add_eos_token" in config
    eos = [tokenizer.eos_ids[0]] if flags and config.get("add_eos_token") and tokenizer.eos_ids else []

    def recipe(chat: bool) -> dict:
        if flags:
            bos = not chat and config.get("add_bos_token", False) and tokenizer.bos_id is not None
            return {"add_special": False, "prepend": [tokenizer.bos_id] if bos else [], "append": eos, "strip_bos": None}
        return {"add_special": True, "prepend": [], "append": [],
                "strip_bos": tokenizer.bos_id if chat else None}

    out = {"plain": recipe(False), "chat": recipe(True), "eos_ids": [int(e) for e in tokenizer.eos_ids]}
    if tokenizer.chat_template:
        def render(content: str) -> str:
            return tokenizer.apply_chat_template([{"role": "user", "content": content}], add_generation_prompt=True)
        text = render(_PROMPT_SENTINEL)
        if text.count(_PROMPT_SENTINEL) == 1:
            prefix, suffix = text.split(_PROMPT_SENTINEL)
            probes = ["Hello", "  two spaces\n", "<|im_end|>"]
            if all(render(p) == prefix + p + suffix for p in probes):
                out["chat_prompt"] = {"prefix": prefix, "suffix": suffix}
    return out
