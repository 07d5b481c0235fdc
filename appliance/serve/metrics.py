"""Prometheus metrics of `airlock serve` (GET /metrics), and the running totals the job records and the TUI shows.
"""

import threading
import time

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest


class ServeMetrics:
    def __init__(self):
        self.registry = CollectorRegistry()
        self.requests = Counter("airlock_requests", "Requests by model, key and HTTP status",
                                ["model", "key", "status"], registry=self.registry)
        self.tokens = Counter("airlock_tokens", "Tokens by model, key and kind (prompt, completion)",
                              ["model", "key", "kind"], registry=self.registry)
        self.ttft = Histogram("airlock_time_to_first_token_seconds", "Time from request to its first token",
                              ["model"], registry=self.registry,
                              buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30))
        self.duration = Histogram("airlock_request_duration_seconds", "Time from request to its last byte",
                                  ["model"], registry=self.registry, buckets=(0.1, 0.5, 1, 2, 5, 10, 30, 60, 120))
        self.active = Gauge("airlock_requests_active", "Requests being generated", ["model"], registry=self.registry)
        self.queued = Gauge("airlock_requests_queued", "Requests waiting for a slot", ["model"],
                            registry=self.registry)
        self.lock = threading.Lock()
        self.totals = {"requests": 0, "errors": 0, "completion_tokens": 0, "prompt_tokens": 0, "per_key": {}}
        self.started = time.monotonic()

    def record(self, model: str | None, key: str | None, status: int, prompt: int = 0, completion: int = 0) -> None:
        name = key or "-"
        self.requests.labels(model or "-", name, str(status)).inc()
        if prompt:
            self.tokens.labels(model or "-", name, "prompt").inc(prompt)
        if completion:
            self.tokens.labels(model or "-", name, "completion").inc(completion)
        with self.lock:
            t = self.totals
            t["requests"] += 1
            t["errors"] += status >= 400
            t["prompt_tokens"] += prompt
            t["completion_tokens"] += completion
            per = t["per_key"].setdefault(name, {"requests": 0, "tokens": 0, "errors": 0})
            per["requests"] += 1
            per["tokens"] += prompt + completion
            per["errors"] += status >= 400

    def snapshot(self) -> dict:
        """Totals since start, for the job's metrics.jsonl (requests/s and tokens/s over the whole run)."""
        with self.lock:
            t = {k: (dict(v) if isinstance(v, dict) else v) for k, v in self.totals.items()}
        elapsed = max(time.monotonic() - self.started, 1e-9)
        t.update(elapsed_s=round(elapsed, 1), requests_per_s=round(t["requests"] / elapsed, 3),
                 tokens_per_s=round(t["completion_tokens"] / elapsed, 1))
        return t

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
