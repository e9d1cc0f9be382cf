"""Credentials never printed: a URL's password and secret-looking query values masked."""

from __future__ import annotations

import re

_SECRET_QUERY = re.compile(r"(?i)^(.*(key|token|secret|password|pass|pwd|auth|sig).*)$")


def mask_url(url: str) -> str:
    """``url`` with any credential in it masked: the password of its user info and the
    values of query parameters named like a key, token, secret or password."""
    from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

    try:
        parts = urlsplit(url)
    except ValueError:
        return "(unparseable URL)"
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, _, host = netloc.rpartition("@")
        user = userinfo.split(":", 1)[0]
        netloc = f"{user}:***@{host}" if ":" in userinfo else f"***@{host}"
    query = urlencode(
        [
            (k, "***" if _SECRET_QUERY.match(k) else v)
            for k, v in parse_qsl(parts.query, keep_blank_values=True)
        ],
        safe="*",
    )
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))
