"""`airlock serve`: tuned models behind an OpenAI-compatible HTTP API with API keys, rate limits and quotas.

server.py (the command's shape, defaults, start/stop), api.py (HTTP endpoints), protocol.py (OpenAI wire format),
engine.py (llama.cpp continuous batching, LoRA adapters per request), hf_engine.py (transformers, for job
directories), vllm.py (vLLM upstream), tool_calls.py (tools in, calls out), structured.py (response_format
grammars), embeddings.py (/v1/embeddings), connections.py (connection cap and timeouts), guard.py (keys, limits,
audit), keys.py (the key store), metrics.py (Prometheus counters).
"""
