"""Chat speed: Airlock's LlamaSession.stream vs raw llama-cpp-python create_chat_completion(stream=True) on the
same Q4_K_M GGUF of the embedded default, same settings (greedy, n_ctx 2048, same threads), interleaved A B A B.
Reports decode tokens/s (higher is better) and time to first token (lower is better).

    .venv/bin/python -m bench chat [--quick]
"""

import shutil
import tempfile
import time
from pathlib import Path

from .harness import compare

MODEL = "airlock-embedded/SmolLM2-135M-Instruct"
MESSAGES = [{"role": "user", "content": "Write a detailed story about a lighthouse keeper and a storm."}]
MAX_TOKENS = 128


def _timed_stream(pieces) -> dict:
    start = time.perf_counter()
    first, count = None, 0
    for _ in pieces:
        count += 1
        if first is None:
            first = time.perf_counter()
    end = time.perf_counter()
    return {"ttft": first - start, "tps": (count - 1) / (end - first) if count > 1 else 0.0, "pieces": count}


def run(quick: bool = False) -> list[dict]:
    from llama_cpp import Llama

    from appliance.chat import LlamaSession, SamplingParams, default_threads
    from appliance.export.pipeline import export_gguf
    from appliance.offline import enforce_offline

    enforce_offline()
    work = Path(tempfile.mkdtemp(prefix="bench-chat-"))
    try:
        gguf = export_gguf(MODEL, ["q4_k_m"], out=work, fidelity=False, log=lambda _: None).files["q4_k_m"]
        threads = default_threads()
        ours_session = LlamaSession(gguf, n_ctx=2048, threads=threads)
        peer_llm = Llama(model_path=str(gguf), n_ctx=2048, n_threads=threads, verbose=False)
        params = SamplingParams(temperature=0.0, max_tokens=MAX_TOKENS)

        # Both sides start from an empty KV cache each round, so time to first token includes the prompt.
        def ours():
            ours_session.llm.reset()
            return _timed_stream(ours_session.stream(MESSAGES, params))

        def peer():
            peer_llm.reset()
            chunks = peer_llm.create_chat_completion(MESSAGES, stream=True, temperature=0.0, top_p=params.top_p,
                                                     top_k=params.top_k, max_tokens=MAX_TOKENS, seed=params.seed)
            return _timed_stream(c for c in chunks if c["choices"][0]["delta"].get("content"))

        rounds = 2 if quick else 5
        rows = [
            compare("chat decode tokens/s (SmolLM2-135M Q4_K_M)", ours, peer, peer_name="llama-cpp-python raw",
                    rounds=rounds, unit="tok/s", lower_is_better=False, measure=lambda s, r: r["tps"]),
            compare("chat time to first token", ours, peer, peer_name="llama-cpp-python raw", rounds=rounds,
                    unit="s", measure=lambda s, r: r["ttft"]),
        ]
        ours_session.close()
        peer_llm.close()
        return rows
    finally:
        shutil.rmtree(work, ignore_errors=True)
