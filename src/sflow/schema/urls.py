"""How a probe's http(s) URL is read: one rule for checking it when the file is loaded and for
sending the request."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

_HOST = r"[A-Za-z0-9_.\-]+|[0-9A-Fa-f:.]+"  # compiled by `re` on first use: most runs check no URL


def split_http_url(url: str, default_host: str) -> tuple[str, int, bool, str]:
    """(host, port, tls, request target) of an http(s) URL.

    `host:port/path` means `http://host:port/path`, and a URL without a host goes to
    `default_host`. A URL no request can be made from (spaces, another scheme, a bad port or
    host) raises ValueError.
    """
    if not url or not url.isprintable() or any(char.isspace() for char in url):
        raise ValueError(f"invalid url {url!r}: expected http://HOST[:PORT]/PATH (no spaces)")
    parts = urlsplit(url if "://" in url else f"http://{url}")
    if parts.scheme not in ("http", "https"):
        raise ValueError(f"invalid url {url!r}: the scheme must be http or https")
    tls = parts.scheme == "https"
    try:
        port = parts.port or (443 if tls else 80)
    except ValueError as exc:
        raise ValueError(f"invalid url {url!r}: {exc}") from None
    host = parts.hostname or default_host
    if not re.fullmatch(_HOST, host):
        raise ValueError(f"invalid url {url!r}: {host!r} is not a host name or address")
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return host, port, tls, target
