"""Is the model hub reachable? One quick answer for models and data sets alike.

transformers and datasets retry an unreachable hub for ~25 s before giving up; a 3 s TCP connect
tells the same thing at once, so an offline user gets a one-line error quickly.
"""

from __future__ import annotations

import os
import socket
from urllib.parse import urlparse

_TRUE = {"1", "true", "yes", "on"}


def env_offline(*names: str) -> bool:
    """Whether any of the environment variables ``names`` asks for offline mode (read now)."""
    return any(os.environ.get(n, "").strip().lower() in _TRUE for n in names)


def hub_reachable(timeout: float = 3.0) -> bool:
    """A TCP connect to the hub endpoint (or the HTTPS proxy, when one is set).

    The host comes from ``huggingface_hub`` so ``HF_ENDPOINT`` (a mirror) is honoured.
    """
    try:
        from huggingface_hub import constants

        target = urlparse(constants.ENDPOINT)
        proxy = os.environ.get("HTTPS_PROXY") or os.environ.get("https_proxy") or os.environ.get("ALL_PROXY")
        if proxy:
            # Behind a proxy the endpoint itself is often not directly reachable; the proxy is.
            target = urlparse(proxy if "://" in proxy else f"http://{proxy}")
        host = target.hostname
        port = target.port or (80 if target.scheme == "http" else 443)
        if not host:
            return False
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except (OSError, ImportError, ValueError):
        return False
