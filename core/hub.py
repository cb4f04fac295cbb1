"""Is a spec a Hugging Face Hub id, and can the Hub be reached right now? Light: no ML imports.

Models, data sets and mteb tasks all ask before touching the Hub, so an offline user gets one
clear line in seconds instead of the Hub client's minute of retries.
"""

from __future__ import annotations

import re
import socket
from urllib.parse import urlparse

_HUB_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")  # the Hub's rule: no spaces, no other symbols


def looks_like_hub_id(spec: str) -> bool:
    """``name`` or ``org/name``: what the Hub accepts as a repository id (not a path, no spaces)."""
    parts = spec.split("/")
    return 1 <= len(parts) <= 2 and all(_HUB_NAME.fullmatch(part) for part in parts)


def hub_unreachable(timeout: float = 3.0) -> str | None:
    """Why the Hub cannot be reached (offline mode set, no DNS, no route), or None if it can."""
    from huggingface_hub import constants

    if constants.HF_HUB_OFFLINE:
        return "HF_HUB_OFFLINE is set"
    host = urlparse(constants.ENDPOINT).hostname or "huggingface.co"
    try:
        socket.create_connection((host, 443), timeout=timeout).close()
    except OSError as exc:
        return f"no connection to {host}: {exc.strerror or exc}"
    return None
