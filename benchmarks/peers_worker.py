"""One peer in its own process (so the parent reads this process's peak RSS from wait4): load the artifact,
then for every prompt: warmup + reps of [prefill the prompt ids -> greedy first token (TTFT) -> N-1 decode
steps], EOS ignored. Prints one JSON line: {"load_s", "runs": {len: {"ttft_ms": [...], "decode_tokens_per_s":
[...], "tokens": [...]}}}.

  python benchmarks/peers_worker.py JOB.json     (JOB: kind, path, ckpt, prompts {len: ids}, new, reps,
                                                   warmup, threads, ctx)
Kinds: eager (transformers + its KV cache), onnx (onnxruntime CPU, explicit past/present KV), llamacpp
(llama-cpp-python), etllama (ExecuTorch TextLLMRunner: text in, its own stats).
The decode rate everywhere is (N - 1) / (time from the first token to the last); TTFT = prompt in -> first
token id out (tokenization excluded, except for etllama whose runner takes text: its token_encode time is
subtracted using its own stats).
"""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np


def _loop(prefill, step, prompt: list[int], new: int) -> tuple[float, float, list[int]]:
    """(ttft_ms, decode tok/s, tokens). prefill(ids) -> logits[V] of the last position; step(tok) -> logits[V]."""
    t0 = time.perf_counter()
    tok = int(np.argmax(prefill(prompt)))
    t1 = time.perf_counter()
    out = [tok]
    for _ in range(new - 1):
        tok = int(np.argmax(step(tok)))
        out.append(tok)
    t2 = time.perf_counter()
    return (t1 - t0) * 1e3, (new - 1) / (t2 - t1) if new > 1 else float("nan"), out


def eager(job):
    import torch
    from transformers import AutoModelForCausalLM
    torch.set_num_threads(job["threads"])
    model = AutoModelForCausalLM.from_pretrained(job["ckpt"], dtype=torch.float32).eval()
    state = {}

    @torch.inference_mode()
    def prefill(ids):
        out = model(torch.tensor([ids]), use_cache=True)
        state["past"], state["n"] = out.past_key_values, len(ids)
        return out.logits[0, -1].numpy()

    @torch.inference_mode()
    def step(tok):
        out = model(torch.tensor([[tok]]), past_key_values=state["past"], use_cache=True)
        state["past"] = out.past_key_values
        return out.logits[0, -1].numpy()
    return prefill, step, None


def onnx(job):
    import onnxruntime as ort
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = job["threads"]
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    sess = ort.InferenceSession(job["path"], opts, providers=["CPUExecutionProvider"])
    meta = json.loads(Path(job["path"]).with_suffix(".json").read_text())   # layers, kv_heads, head_dim
    state = {}

    def run(ids, past):
        feeds = {"input_ids": np.asarray([ids], dtype=np.int64), "past_k": past[0], "past_v": past[1]}
        logits, k, v = sess.run(["logits", "present_k", "present_v"], feeds)
        state["past"] = (k, v)
        return logits[0, -1]

    def prefill(ids):
        empty = np.zeros((meta["layers"], 1, meta["kv_heads"], 0, meta["head_dim"]), dtype=np.float32)
        return run(ids, (empty, empty))

    def step(tok):
        return run([tok], state["past"])
    return prefill, step, None


def llamacpp(job):
    import llama_cpp
    llm = llama_cpp.Llama(job["path"], n_ctx=job["ctx"], n_threads=job["threads"], n_threads_batch=job["threads"],
                          n_batch=512, n_ubatch=512, verbose=False)
    vocab = llm.n_vocab()

    def last_logits():   # llama.cpp's buffer for the last position (Llama.scores is only filled with logits_all)
        return np.ctypeslib.as_array(llama_cpp.llama_get_logits_ith(llm._ctx.ctx, -1), shape=(vocab,))

    def prefill(ids):
        llm.reset()
        llm.eval(ids)
        return last_logits()

    def step(tok):
        llm.eval([tok])
        return last_logits()
    return prefill, step, None


def etllama(job):
    import executorch.extension.llm.custom_ops.custom_ops  # noqa: F401  (llama::custom_sdpa / update_cache)
    import executorch.kernels.quantized  # noqa: F401
    from executorch.extension.llm.runner import GenerationConfig, TextLLMRunner
    from transformers import PreTrainedTokenizerFast
    tok = PreTrainedTokenizerFast(tokenizer_file=str(Path(job["ckpt"]) / "tokenizer.json"))
    runner = TextLLMRunner(job["path"], str(Path(job["ckpt"]) / "tokenizer.json"))

    def one(ids, new):
        text = tok.decode(ids, skip_special_tokens=True)
        stats, pieces = [], []
        runner.reset()
        cfg = GenerationConfig(echo=False, max_new_tokens=new, temperature=0.0, seq_len=job["ctx"], num_bos=0)

        def on_token(piece):
            pieces.append(piece)
        try:
            runner.generate(text, cfg, token_callback=on_token, stats_callback=stats.append)
        except UnicodeDecodeError:   # the binding decodes each piece as UTF-8: a lone byte token raises
            stats, pieces = [], None
            runner.reset()
            runner.generate(text, cfg, stats_callback=stats.append)
        s = stats[-1]
        start = s.token_encode_end_ms if s.token_encode_end_ms > 0 else s.inference_start_ms   # 0: not recorded
        ttft = s.first_token_ms - start
        gen = s.num_generated_tokens
        rate = (gen - 1) / ((s.inference_end_ms - s.first_token_ms) / 1e3) if gen > 1 else float("nan")
        return ttft, rate, {"text": "".join(pieces) if pieces is not None else None, "prompt_tokens": s.num_prompt_tokens, "generated": gen}
    return None, None, one


def main() -> int:
    job = json.loads(Path(sys.argv[1]).read_text())
    t0 = time.perf_counter()
    prefill, step, whole = {"eager": eager, "onnx": onnx, "llamacpp": llamacpp, "etllama": etllama}[job["kind"]](job)
    load_s = time.perf_counter() - t0
    runs = {}
    for length, ids in job["prompts"].items():
        ttft, rate, extra = [], [], {}
        for rep in range(job["warmup"] + job["reps"]):
            if whole:
                t, r, extra = whole(ids, job["new"])
                toks = None
            else:
                t, r, toks = _loop(prefill, step, ids, job["new"])
            if rep >= job["warmup"]:
                ttft.append(t)
                rate.append(r)
        runs[length] = {"ttft_ms": ttft, "decode_tokens_per_s": rate, "tokens": toks, **extra}
    print(json.dumps({"load_s": load_s, "runs": runs}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
