"""Connections for `airlock serve`: what keeps one bad client from taking the server down.

uvicorn's HTTP/1.1 protocol (h11) reads requests; `guarded_protocol` adds what it lacks:
- a connection cap: past `max_connections` open connections a new one is answered 503 (JSON, Retry-After) and
  closed at once, so the others keep their file descriptors and their answers;
- a header timeout: a connection must finish a request's headers within `header_timeout` seconds of opening (or of
  its last answer), or it is closed with 408: slow-header clients cannot hold connections open;
  uvicorn's own keep-alive timeout closes idle connections between requests, and the request body has its
  deadline in serve.api (`body_timeout`).
`open_file_limit` raises the process's file limit to what the system allows and keeps the cap below it, and
`throttled_exception_handler` logs a repeated event loop error once a minute with a count, not once per accept.
"""

import json
import logging
import time

BUSY = json.dumps({"error": {"message": "the server has too many open connections; retry shortly",
                             "type": "server_busy", "param": None, "code": None}}).encode()
LATE = json.dumps({"error": {"message": "the request headers did not arrive in time", "type": "request_timeout",
                             "param": None, "code": None}}).encode()
RESERVED_FILES = 64  # model files, logs, the audit log, sockets the server opens itself


def _raw_response(status: str, body: bytes, retry_after: int | None = None) -> bytes:
    head = [f"HTTP/1.1 {status}", "Content-Type: application/json", f"Content-Length: {len(body)}",
            "Connection: close"] + ([f"Retry-After: {retry_after}"] if retry_after else [])
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


def guarded_protocol(max_connections: int, header_timeout: float):
    """uvicorn's h11 protocol class with the connection cap and the header timeout."""
    from uvicorn.protocols.http.h11_impl import H11Protocol

    class GuardedProtocol(H11Protocol):
        def connection_made(self, transport) -> None:
            super().connection_made(transport)
            self._header_timer, self._seen = None, None
            if len(self.connections) > max_connections:
                transport.write(_raw_response("503 Service Unavailable", BUSY, retry_after=1))
                transport.close()
                return
            self._arm()

        def _arm(self) -> None:
            self._disarm()
            self._header_timer = self.loop.call_later(header_timeout, self._headers_late)

        def _disarm(self) -> None:
            if self._header_timer is not None:
                self._header_timer.cancel()
                self._header_timer = None

        def _headers_late(self) -> None:
            self._header_timer = None
            if self.cycle is None or self.cycle.response_complete:  # not in the middle of a request
                if not self.transport.is_closing():
                    self.transport.write(_raw_response("408 Request Timeout", LATE))
                    self.transport.close()

        def data_received(self, data: bytes) -> None:
            super().data_received(data)
            if self.cycle is not None and self.cycle is not self._seen:  # a request's headers are complete
                self._seen = self.cycle
                self._disarm()

        def on_response_complete(self) -> None:
            super().on_response_complete()
            if not self.transport.is_closing():
                self._arm()  # the next request's headers have the same time

        def connection_lost(self, exc) -> None:
            self._disarm()
            super().connection_lost(exc)

    return GuardedProtocol


def open_file_limit(max_connections: int) -> tuple[int, str | None]:
    """(the connection cap the process's file limit allows, a note when it had to be lowered). The soft limit is
    raised to the hard one first (a common default is 1024 soft, far more hard)."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or hard > soft:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            soft = hard
        except (ValueError, OSError):
            pass
    allowed = max(1, soft - RESERVED_FILES) if soft != resource.RLIM_INFINITY else max_connections
    if max_connections > allowed:
        return allowed, (f"--max-connections {max_connections} lowered to {allowed}: the process may open "
                         f"{soft} files (ulimit -n)")
    return max_connections, None


def throttled_exception_handler(every: float = 60.0):
    """An event loop exception handler that logs each kind of error once per `every` seconds, then how many
    times it recurred (running out of file descriptors would otherwise log a traceback per accept)."""
    log = logging.getLogger("airlock.serve")
    last: dict[str, tuple[float, int]] = {}

    def handle(loop, context) -> None:
        message = context.get("message", "event loop error")
        exc = context.get("exception")
        kind = f"{message}: {type(exc).__name__}" if exc else message
        now = time.monotonic()
        at, missed = last.get(kind, (0.0, 0))
        if now - at < every and at:
            last[kind] = (at, missed + 1)
            return
        last[kind] = (now, 0)
        more = f" (and {missed} more in the last {every:.0f} s)" if missed else ""
        log.error("%s%s%s", kind, f": {exc}" if exc else "", more)

    return handle
