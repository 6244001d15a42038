"""The service's limits, validated once when the service is built."""

from __future__ import annotations

import os
from dataclasses import dataclass

DEFAULT_MAX_BODY_BYTES = 4 * 1024 * 1024
DEFAULT_MAX_PIXELS = 40_000_000


def default_max_concurrency() -> int:
    # Requests admitted at once (the others get 503). Work on them is CPU-bound, so a few per
    # core keep the cores busy while others wait for their body; more only grows the queue.
    return 8 * (os.cpu_count() or 1)


@dataclass(frozen=True)
class ServeSettings:
    """Where the service listens and what it accepts.

    max_body_bytes: a request body larger than this gets 413 (checked against Content-Length
    before reading, and counted while streaming). max_concurrency: requests processed at once;
    more get 503 with Retry-After. max_pixels: a larger image gets 413 before it is decoded.
    max_images: images in one multipart request.
    """

    host: str = "127.0.0.1"
    port: int = 8000
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    max_concurrency: int = 0  # 0: default_max_concurrency()
    max_pixels: int = DEFAULT_MAX_PIXELS
    max_images: int = 64
    access_log: bool = True

    def __post_init__(self) -> None:
        if not 0 <= self.port <= 65535:
            raise ValueError(f"port must be in 0..65535, got {self.port}")
        for name in ("max_body_bytes", "max_pixels", "max_images"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be a positive integer, got {getattr(self, name)}")
        if self.max_concurrency < 0:
            raise ValueError(f"max_concurrency must be a positive integer (0: default), got {self.max_concurrency}")
        if self.max_concurrency == 0:
            object.__setattr__(self, "max_concurrency", default_max_concurrency())
