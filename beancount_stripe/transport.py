"""The HTTP transport under the Stripe SDK: one urllib3 connection pool per gateway, bodies
parsed with orjson.

``stripe.HTTPClient`` is the SDK's documented extension point. Its default, ``RequestsClient``,
spent most of a request's CPU in ``requests``' session machinery: every request scanned the
whole environment twice for proxy variables, looked for ~/.netrc, merged settings and cookies,
and each thread opened its own connections. With a hundred clients synced at once
(`sync --all --jobs N`, each client's key in an environment variable) that was most of the run's
CPU. Here the environment is read once, for the one host the gateway talks to, and the
connections are pooled across the gateway's threads.

Successful bodies are parsed with orjson and handed to the gateway call on the same thread: the
SDK itself formats every body for its debug log (whatever the log level) and parses it with
``json``, about 17 ms of the GIL per page of 100 expanded transactions. Anything else (errors,
a body orjson refuses) reaches the SDK unchanged, so its retries, error mapping and messages are
as with its own transport.
"""

from __future__ import annotations

import textwrap
import threading
from collections.abc import Mapping
from typing import Any, NoReturn
from urllib.parse import urlsplit
from urllib.request import getproxies, proxy_bypass

import orjson
import stripe
import urllib3

handoff = threading.local()  # a body the transport parsed, for the gateway call on this thread
NOTHING = object()

_POOL_SIZE = 64  # connections kept per host: above the most threads one gateway runs


class ParsingTransport(stripe.HTTPClient):
    """A ``stripe.HTTPClient`` on one thread-safe urllib3 pool, proxies read once."""

    name = "urllib3"

    def __init__(self, *, api_base: str, timeout: float) -> None:
        super().__init__(verify_ssl_certs=True)
        options: dict[str, Any] = {
            "maxsize": _POOL_SIZE,
            "retries": False,  # the SDK retries (and the gateway above it)
            "timeout": urllib3.Timeout(connect=timeout, read=timeout),
            "cert_reqs": "CERT_REQUIRED",
            "ca_certs": stripe.ca_bundle_path,
        }
        proxy = _proxy_for(api_base)
        self._pool: urllib3.PoolManager = (
            urllib3.ProxyManager(proxy, **options) if proxy else urllib3.PoolManager(**options)
        )

    def request(  # type: ignore[override]
        self, method: str, url: str, headers: Mapping[str, str] | None, post_data: Any = None
    ) -> tuple[Any, int, Mapping[str, str]]:
        try:
            response = self._pool.request(
                method.upper(),
                url,
                headers=dict(headers or {}),
                body=post_data,
                redirect=False,
                preload_content=True,
            )
        except Exception as e:  # every failure of the network or TLS, named for the user
            _connection_error(e)
        content, status, rheaders = response.data, response.status, response.headers
        if status == 200 and getattr(handoff, "want", False):
            try:
                handoff.body = orjson.loads(content)
            except orjson.JSONDecodeError:
                return content, status, rheaders
            return b"{}", status, rheaders
        return content, status, rheaders

    def close(self) -> None:
        self._pool.clear()


def _proxy_for(api_base: str) -> str | None:
    """The proxy the environment names for ``api_base`` (HTTPS_PROXY, ALL_PROXY, NO_PROXY)."""
    parts = urlsplit(api_base)
    if parts.hostname and proxy_bypass(parts.hostname):
        return None
    proxies = getproxies()
    return proxies.get(parts.scheme or "https") or proxies.get("all")


def _connection_error(e: Exception) -> NoReturn:
    """The SDK's ``APIConnectionError``: retried for drops and timeouts, not for TLS failures."""
    if isinstance(e, urllib3.exceptions.SSLError):
        msg = (
            "Could not verify Stripe's SSL certificate.  Please make sure that your network is "
            "not intercepting certificates.  If this problem persists, let us know at "
            "support@stripe.com."
        )
        should_retry = False
    else:
        msg = (
            "Unexpected error communicating with Stripe.  If this problem persists, let us "
            "know at support@stripe.com."
        )
        should_retry = isinstance(
            e, (urllib3.exceptions.HTTPError, ConnectionError, TimeoutError, OSError)
        ) and not isinstance(e, urllib3.exceptions.LocationValueError)
    err = f"{type(e).__name__}: {e}"
    text = textwrap.fill(msg) + f"\n\n(Network error: {err})"
    raise stripe.APIConnectionError(text, should_retry=should_retry) from e
