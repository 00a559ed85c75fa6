"""ExecuTorch's own LLM export path (examples.models.llama + extension.llm.export), for benchmarks/peers.py.

This is ExecuTorch's recipe, not edgeslm's: its llama_transformer, its custom SDPA op
(use_sdpa_with_kv_cache -> replace_sdpa_with_custom_op) and custom KV cache op (update_cache), torchao
8da4w / 8da8w linears, int8 embedding, XNNPACK. The .pte is run by ExecuTorch's TextLLMRunner
(executorch.extension.llm.runner), which has the custom-op kernels loaded in Python.

Steps of etllama_pte(ckpt, qmode):
  1. HF safetensors -> Meta-layout state dict (q/k rows un-permuted from HF's rotate-half order to the
     interleaved order ExecuTorch's rope uses; output = tied embedding; float32) -> consolidated.pth (our own
     file, written here; ExecuTorch loads it with torch.load(mmap=True), weights-only in torch 2.x) +
     params.json, in a scratch folder whose path names no recipe (ExecuTorch reads "int8" / "8da4w" in the
     checkpoint path as "already quantized")
  2. LlmConfig(model_class=smollm2, kv cache + custom sdpa, dynamic shape, xnnpack, qmode (8da4w: groups of
     32; 8da8w: per channel), embedding 8-bit,
     max_seq_length = ctx) -> export_llama -> <out>/model.pte
  3. cached under .cache/peers/<model>-etllama-<qmode>-<ctx>-et<executorch version>-r2-<checkpoint key>
"""
from __future__ import annotations

import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CACHE = ROOT / ".cache" / "peers"


def hf_to_meta(ckpt: Path) -> tuple[dict, dict]:
    """(state dict in Meta layout, params.json dict) from an HF Llama checkpoint folder."""
    import torch
    from safetensors.torch import load_file

    cfg = json.loads((ckpt / "config.json").read_text())
    sd = load_file(str(ckpt / "model.safetensors"))
    heads, kv_heads = cfg["num_attention_heads"], cfg["num_key_value_heads"]

    def unpermute(w: torch.Tensor, n: int) -> torch.Tensor:
        # HF rows per head: [first halves | second halves] -> Meta: interleaved pairs.  w: [n*D, dim]
        return w.view(n, 2, w.shape[0] // n // 2, w.shape[1]).transpose(1, 2).reshape(w.shape)

    out = {"tok_embeddings.weight": sd["model.embed_tokens.weight"], "norm.weight": sd["model.norm.weight"]}
    out["output.weight"] = sd.get("lm_head.weight", out["tok_embeddings.weight"])
    names = {"self_attn.q_proj": "attention.wq", "self_attn.k_proj": "attention.wk",
             "self_attn.v_proj": "attention.wv", "self_attn.o_proj": "attention.wo",
             "mlp.gate_proj": "feed_forward.w1", "mlp.down_proj": "feed_forward.w2",
             "mlp.up_proj": "feed_forward.w3", "input_layernorm": "attention_norm",
             "post_attention_layernorm": "ffn_norm"}
    for i in range(cfg["num_hidden_layers"]):
        for hf, meta in names.items():
            w = sd[f"model.layers.{i}.{hf}.weight"]
            if hf == "self_attn.q_proj":
                w = unpermute(w, heads)
            elif hf == "self_attn.k_proj":
                w = unpermute(w, kv_heads)
            out[f"layers.{i}.{meta}.weight"] = w.contiguous()
    # float32, as edgeslm's ingest holds them: both recipes quantize from the same float32 weights
    out = {k: v.float().contiguous() for k, v in out.items()}
    rope = cfg.get("rope_theta") or (cfg.get("rope_parameters") or {}).get("rope_theta", 10000.0)
    params = {"dim": cfg["hidden_size"], "hidden_dim": cfg["intermediate_size"], "n_heads": heads,
              "n_kv_heads": kv_heads, "n_layers": cfg["num_hidden_layers"], "norm_eps": cfg["rms_norm_eps"],
              "rope_theta": float(rope), "use_scaled_rope": False, "vocab_size": cfg["vocab_size"],
              "use_hf_rope": False, "attention_qkv_bias": False}
    return out, params


def etllama_pte(ckpt: Path, model: str, qmode: str, max_seq_len: int,
                cached_only: bool = False) -> tuple[Path, float | None]:
    """(.pte path, export seconds of the cached export). qmode: 8da4w | 8da8w | fp32."""
    import executorch
    version = getattr(executorch, "__version__", None) or _dist_version("executorch")
    # r2: weights outside folders named after the recipe (r1 artifacts were built from mis-read weights)
    out = CACHE / f"{model}-etllama-{qmode}-{max_seq_len}-et{version}-r2-{ckpt_key(ckpt)}"
    pte = out / "model.pte"
    if pte.is_file():
        return pte, json.loads((out / "export.json").read_text())["export_s"]
    if cached_only:
        raise RuntimeError(f"not exported yet ({out.name}; --cached-only)")
    import torch
    from executorch.examples.models.llama.export_llama_lib import export_llama
    from executorch.extension.llm.export.config.llm_config import LlmConfig, ModelType

    print(f"[peers] exporting {out.name} (ExecuTorch llama path, {qmode}) ...", file=sys.stderr, flush=True)
    t0 = time.perf_counter()
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    # ExecuTorch reads the checkpoint *path*: "int8" or "8da4w" anywhere in it means "already quantized"
    # (examples/models/llama/model.py), so the weights go to a folder whose name has no recipe in it
    weights = Path(tempfile.mkdtemp(prefix="etllama-weights-", dir=CACHE))
    sd, params = hf_to_meta(ckpt)
    torch.save(sd, weights / "consolidated.pth")
    (weights / "params.json").write_text(json.dumps(params))
    del sd
    cfg = LlmConfig()
    cfg.base.model_class = ModelType("smollm2")
    cfg.base.checkpoint = str(weights / "consolidated.pth")
    cfg.base.params = str(weights / "params.json")
    cfg.base.metadata = json.dumps({"get_bos_id": 1, "get_eos_ids": [2]})
    cfg.model.use_kv_cache = True
    cfg.model.use_sdpa_with_kv_cache = True      # ExecuTorch's custom SDPA (llama::custom_sdpa)
    cfg.model.enable_dynamic_shape = True
    cfg.export.max_seq_length = max_seq_len
    cfg.export.max_context_length = max_seq_len
    cfg.export.output_dir = str(tmp)
    cfg.export.output_name = str(tmp / "model.pte")   # a name ending in .pte is used as a path as is
    cfg.backend.xnnpack.enabled = True
    cfg.backend.xnnpack.extended_ops = True
    if qmode != "fp32":
        cfg.quantization.qmode = qmode
        # 8da4w: groups of 32 (edgeslm's int4); 8da8w: per channel (group 0; edgeslm's int8; XNNPACK takes
        # 8-bit weights per channel only: the default group of 128 fails "Only 4b group quantization")
        cfg.quantization.group_size = 32 if qmode == "8da4w" else 0
        cfg.quantization.embedding_quantize = "8,0"
    try:
        export_llama(cfg)
    finally:
        shutil.rmtree(weights, ignore_errors=True)
    seconds = time.perf_counter() - t0
    (tmp / "export.json").write_text(json.dumps({"export_s": seconds, "qmode": qmode, "params": params}))
    shutil.rmtree(out, ignore_errors=True)
    tmp.rename(out)
    return pte, seconds


def ckpt_key(ckpt: Path) -> str:
    """8 hex of config.json + the safetensors' size: which checkpoint an artifact came from."""
    import hashlib
    h = hashlib.sha256((ckpt / "config.json").read_bytes())
    h.update(str((ckpt / "model.safetensors").stat().st_size).encode())
    return h.hexdigest()[:8]


def _dist_version(name: str) -> str:
    from importlib.metadata import version
    return version(name)


if __name__ == "__main__":   # python benchmarks/peers_etllama.py 8da4w [8da8w ...]
    sys.path.insert(0, str(ROOT))
    from edgeslm import api
    ckpt = api.quickstart(ROOT / ".cache" / "quickstart-smollm2", progress=False)
    for q in sys.argv[1:]:
        print(etllama_pte(ckpt, "smollm2", q, 640), flush=True)
