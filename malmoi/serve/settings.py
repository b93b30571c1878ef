"""What a server is allowed to do: addresses, the API key, request limits, queueing and batching.

Every limit is a ``malmoi serve`` flag with the default below; a request past one gets a 4xx
that names the field (``serve/schemas.py``)."""
from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass

from malmoi.errors import MalmoiError

LOOPBACK_NAMES = ("localhost",)


@dataclass(kw_only=True)
class ServeSettings:
    """Settings of one ``malmoi serve`` process."""

    host: str = "127.0.0.1"
    """Address to listen on; anything but loopback needs ``api_key`` or ``insecure``."""
    port: int = 8000
    api_key: str | None = None
    """With a key, every route but ``/health`` and ``/`` needs ``Authorization: Bearer KEY``."""
    insecure: bool = False
    """Allow listening beyond loopback without a key."""
    max_body: int = 1_000_000
    """Bytes in a request body (413 past it)."""
    max_texts: int = 64
    """Texts in one classify request."""
    max_chars: int = 2000
    """Characters in one text or prompt."""
    max_new_tokens: int = 512
    """The largest ``max_new_tokens`` a request may ask for."""
    queue_size: int = 128
    """Requests waiting per model before 429 (at least 64, so 32 concurrent clients never see one)."""
    timeout: float = 60.0
    """Seconds a request may wait and run (504 past it); a stream's limit is per piece."""
    max_batch: int = 32
    """Texts gathered into one forward pass (1 = no micro-batching)."""
    max_wait_ms: float = 5.0
    """How long the first request of a batch waits for others to join it."""
    threads: int | None = None
    """Torch threads per process (default: the cores this process may use, divided by ``workers``)."""
    workers: int = 1
    """Server processes (each loads every model)."""

    def __post_init__(self) -> None:
        if self.api_key is None:
            self.api_key = os.environ.get("MALMOI_API_KEY") or None
        for name in ("max_body", "max_texts", "max_chars", "max_new_tokens", "queue_size", "max_batch", "workers"):
            if getattr(self, name) < 1:
                raise MalmoiError("E201", f"--{name.replace('_', '-')} must be at least 1, got {getattr(self, name)}")
        if self.timeout <= 0 or self.max_wait_ms < 0:
            raise MalmoiError("E201", "--timeout must be positive and --max-wait-ms not negative")
        if not 0 <= self.port <= 65535:
            raise MalmoiError("E201", f"--port must be between 0 and 65535, got {self.port}")
        if self.threads is not None and self.threads < 1:
            raise MalmoiError("E201", f"--threads must be at least 1, got {self.threads}")
        if not self.api_key and not self.insecure and not is_loopback(self.host):
            raise MalmoiError("E603", f"refusing to listen on {self.host} without an API key: anyone who can reach "
                                      "it could use the models")

    def torch_threads(self) -> int:
        if self.threads:
            return self.threads
        return max(1, len(os.sched_getaffinity(0)) // self.workers)


def is_loopback(host: str) -> bool:
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
