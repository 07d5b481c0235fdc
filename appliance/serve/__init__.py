"""`airlock serve`: tuned models as an OpenAI-compatible HTTP service for a closed network.

server.py (what is served, safe defaults, the job runner) -> api.py (the routes) -> engine.py (llama.cpp with
continuous batching), hf_engine.py (transformers), vllm.py (vLLM behind Airlock); guard.py (keys, rates, quotas,
audit), keys.py (the key store), protocol.py (the OpenAI wire format), metrics.py (Prometheus).
"""
