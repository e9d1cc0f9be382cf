"""What the API's handlers are given: clients built once by `lull api` (or a test), never
read from settings by a handler."""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.client import Client

from api.rate_limit import RateLimiter
from db.sealed import SecretBox


@dataclass(frozen=True)
class ApiOptions:
    task_queue: str = "lull"
    outage_window_seconds: float = 1800.0
    # Cookie sessions last this long; a login always starts a new one.
    session_hours: float = 12.0
    # Secure cookies need HTTPS; off only for plain-HTTP development.
    cookie_secure: bool = True
    # Requests a minute per API key or session, per client IP, and logins per IP or name.
    requests_per_minute: int = 600
    ip_requests_per_minute: int = 1200
    logins_per_minute: int = 10
    # Whether the Temporal server has Lull's search attributes (the phase filter needs them).
    search_attributes: bool = True


@dataclass
class ApiContext:
    sessionmaker: async_sessionmaker[AsyncSession]
    temporal: Client
    box: SecretBox
    options: ApiOptions = field(default_factory=ApiOptions)
    limiter: RateLimiter = field(default_factory=RateLimiter)
