"""ONNX Runtime peer: an ONNX export of a KV-cache decoder over the transformers model's own modules.

The wrapper reuses transformers' LlamaForCausalLM submodules (embedding, RMSNorms, q/k/v/o projections,
MLP, rotary embedding, lm_head) and only makes the cache explicit, the usual ONNX decoder interface:
  forward(input_ids[1,T], past_k[L,1,Hkv,P,D], past_v[L,1,Hkv,P,D]) -> logits[1,1,V] (last position),
          present_k[L,1,Hkv,P+T,D], present_v (the past concatenated with the new rows)
One graph serves prefill (P = 0) and decode (T = 1). GQA repeats K/V heads; attention is SDPA with an
explicit causal mask for the new rows.

Steps of onnx_model(ckpt, quant):
  1. load the HF checkpoint (float32) -> wrapper -> torch.onnx.export (dynamo exporter, dynamic T and P)
  2. check: ORT logits of a prompt vs transformers eager (max |diff| stored next to the model)
  3. int8: onnxruntime.quantization.quantize_dynamic (int8 per-channel weights x int8 dynamic activations
     for MatMul/Gather: the same arithmetic class as ExecuTorch's 8da8w)
Cached under .cache/peers/<model>-onnx-<quant>-<torch/transformers/onnxruntime versions>-<checkpoint key>/.
"""
from __future__ import annotations

import json
import shutil
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CACHE = ROOT / ".cache" / "peers"


def _wrapper(hf):
    import torch
    import torch.nn.functional as F
    from transformers.models.llama.modeling_llama import apply_rotary_pos_emb

    class KVDecoder(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.hf = hf
            cfg = hf.config
            self.h, self.hkv = cfg.num_attention_heads, cfg.num_key_value_heads
            self.d = getattr(cfg, "head_dim", None) or cfg.hidden_size // self.h

        def forward(self, input_ids, past_k, past_v):
            m = self.hf.model
            t, p = input_ids.shape[1], past_k.shape[3]
            x = m.embed_tokens(input_ids)                                  # [1, T, C]
            pos = torch.arange(t, device=x.device) + p                     # [T]
            cos, sin = m.rotary_emb(x, pos[None])                          # [1, T, D]
            keys = torch.arange(p + t)                                     # [P+T]
            mask = keys[None, :] <= pos[:, None]                           # [T, P+T] causal, bool
            ks, vs = [], []
            for i, layer in enumerate(m.layers):
                a = layer.self_attn
                h = layer.input_layernorm(x)
                q = a.q_proj(h).view(1, t, self.h, self.d).transpose(1, 2)     # [1, H, T, D]
                k = a.k_proj(h).view(1, t, self.hkv, self.d).transpose(1, 2)   # [1, Hkv, T, D]
                v = a.v_proj(h).view(1, t, self.hkv, self.d).transpose(1, 2)
                q, k = apply_rotary_pos_emb(q, k, cos, sin)
                k = torch.cat([past_k[i], k], dim=2)                           # [1, Hkv, P+T, D]
                v = torch.cat([past_v[i], v], dim=2)
                ks.append(k)
                vs.append(v)
                rep = self.h // self.hkv
                o = F.scaled_dot_product_attention(q, k.repeat_interleave(rep, 1), v.repeat_interleave(rep, 1),
                                                   attn_mask=mask)              # [1, H, T, D]
                x = x + a.o_proj(o.transpose(1, 2).reshape(1, t, self.h * self.d))
                x = x + layer.mlp(layer.post_attention_layernorm(x))
            logits = self.hf.lm_head(m.norm(x[:, -1:]))                        # [1, 1, V]
            return logits, torch.stack(ks), torch.stack(vs)

    return KVDecoder().eval()


def _versions() -> str:
    import onnxruntime
    import torch
    import transformers
    return f"torch{torch.__version__.split('+')[0]}-tf{transformers.__version__}-ort{onnxruntime.__version__}"


def export_fp32(ckpt: Path, out: Path) -> dict:
    import numpy as np
    import onnxruntime as ort
    import torch
    from transformers import AutoModelForCausalLM

    hf = AutoModelForCausalLM.from_pretrained(ckpt, dtype=torch.float32).eval()
    w = _wrapper(hf)
    cfg = hf.config
    meta = {"layers": cfg.num_hidden_layers, "kv_heads": w.hkv, "head_dim": w.d}
    ids = torch.tensor([[1, 5, 9, 12, 7, 3, 8, 2 + 9]])
    past = torch.zeros(meta["layers"], 1, w.hkv, 3, w.d)
    T, P = torch.export.Dim("T", min=1, max=4096), torch.export.Dim("P", min=0, max=4096)
    with torch.inference_mode(False), torch.no_grad():
        torch.onnx.export(w, (ids, past, past.clone()), str(out), dynamo=True, external_data=False,
                          input_names=["input_ids", "past_k", "past_v"],
                          output_names=["logits", "present_k", "present_v"],
                          dynamic_shapes={"input_ids": {1: T}, "past_k": {3: P}, "past_v": {3: P}})
        ref = hf(ids, logits_to_keep=1).logits[0, -1].numpy()
    sess = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    empty = np.zeros((meta["layers"], 1, w.hkv, 0, w.d), dtype=np.float32)
    got = sess.run(["logits"], {"input_ids": ids.numpy(), "past_k": empty, "past_v": empty})[0][0, -1]
    meta["max_abs_logit_diff_vs_eager"] = float(np.abs(got - ref).max())
    meta["argmax_equal"] = bool(got.argmax() == ref.argmax())
    return meta


def onnx_model(ckpt: Path, model: str, quant: str) -> tuple[Path, float | None]:
    """(model.onnx, export seconds or None when cached). quant: fp32 | int8."""
    from peers_etllama import ckpt_key
    folder = CACHE / f"{model}-onnx-{quant}-{_versions()}-{ckpt_key(ckpt)}"
    path = folder / "model.onnx"
    if path.is_file():
        return path, json.loads(path.with_suffix(".json").read_text())["export_s"]
    print(f"[peers] exporting {folder.name} ...", file=sys.stderr, flush=True)
    t0 = time.perf_counter()
    tmp = folder.with_name(folder.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    if quant == "fp32":
        meta = export_fp32(ckpt, tmp / "model.onnx")
    else:
        from onnxruntime.quantization import QuantType, quantize_dynamic
        fp32, _ = onnx_model(ckpt, model, "fp32")
        t0 = time.perf_counter()   # quantization time only (the fp32 export is its own row)
        quantize_dynamic(str(fp32), str(tmp / "model.onnx"), weight_type=QuantType.QInt8, per_channel=True)
        parent = json.loads(fp32.with_suffix(".json").read_text())
        meta = {k: parent[k] for k in ("layers", "kv_heads", "head_dim")}
        meta["quantize_dynamic"] = "QInt8 per-channel weights, dynamic int8 activations"
    meta["export_s"] = time.perf_counter() - t0
    (tmp / "model.json").write_text(json.dumps(meta))
    shutil.rmtree(folder, ignore_errors=True)
    tmp.rename(folder)
    return path, meta["export_s"]
