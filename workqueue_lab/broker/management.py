"""RabbitMQ's management HTTP API: the one place that builds a request to it.

Credentials come from the management URL (``http://user:pass@host:15672``) and travel only in the
Authorization header, never in the URL a log or an error shows.  Requests go straight to the broker,
never through an HTTP(S)_PROXY from the environment: the API is on loopback (or the broker's own
host), and a proxy would see the Basic credentials.
"""

from __future__ import annotations

import base64
import json
import logging
import urllib.error
import urllib.parse
import urllib.request

from .address import mask

log = logging.getLogger(__name__)

_opener: urllib.request.OpenerDirector | None = None


def _direct() -> urllib.request.OpenerDirector:
    global _opener
    if _opener is None:
        _opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # {}: no proxy at all
    return _opener


def build_request(mgmt_url: str, path: str, method: str = "GET", body: object = None) -> urllib.request.Request:
    """A request for ``/api/<path>`` with Basic auth from the URL's credentials (guest/guest if none)."""
    parts = urllib.parse.urlsplit(mgmt_url)
    user = urllib.parse.unquote(parts.username or "guest")
    password = urllib.parse.unquote(parts.password or "guest")
    netloc = (parts.hostname or "localhost") + (f":{parts.port}" if parts.port else "")
    url = urllib.parse.urlunsplit(parts._replace(netloc=netloc)).rstrip("/") + "/api/" + path.lstrip("/")
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method)
    request.add_header("Authorization", "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode())
    if data is not None:
        request.add_header("Content-Type", "application/json")
    return request


def call(mgmt_url: str, path: str, method: str = "GET", body: object = None, timeout: float = 3.0) -> object | None:
    """Send one request; the JSON answer (None for an empty one).  Raises OSError/HTTPError/ValueError."""
    with _direct().open(build_request(mgmt_url, path, method, body), timeout=timeout) as response:
        raw = response.read()
    return json.loads(raw) if raw else None


def get(mgmt_url: str | None, path: str, timeout: float = 3.0) -> object | None:
    """GET /api/<path> as JSON, or None when there is no management API or it does not answer (never raises)."""
    if not mgmt_url:
        return None
    try:
        return call(mgmt_url, path, timeout=timeout)
    except (OSError, ValueError, urllib.error.URLError) as exc:
        log.debug("management API %s /api/%s: %s", mask(mgmt_url), path, exc)
        return None


def quote(name: str) -> str:
    """One path segment of the API (a vhost or a queue name): '/' becomes %2F."""
    return urllib.parse.quote(name, safe="")
