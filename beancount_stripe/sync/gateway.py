"""Connecting: a gateway with the client's key and rate limit, and the check that the key opens
exactly the configured account (the wrong client's books must never receive another's money)."""

from __future__ import annotations

import os
from typing import Any

from beancount_stripe import (
    privacy,
)
from beancount_stripe.config import ClientConfig, resolve_key
from beancount_stripe.errors import (
    ConfigError,
    StripeAccessError,
)
from beancount_stripe.stripe_api import StripeGateway
from beancount_stripe.sync.report import (
    API_BASE_ENV,
    DEFAULT_RETRIES,
    RETRIES_ENV,
)


def gateway_for(
    client: ClientConfig,
    *,
    api_base: str | None = None,
    rate_limit: float | None = None,
    max_retries: int | None = None,
    backoff: float = 0.5,
) -> StripeGateway:
    """A gateway for ``client`` with its key read from its configured source.

    ``rate_limit=0`` disables the client-side limit (benchmarks). Without it, the client's
    ``rate_limit:``, else Stripe's read limits with room for the client's other integrations:
    80 requests/s for live keys (Stripe allows 100), 20 for test keys (25). ``max_retries``
    defaults to ``$BEANCOUNT_STRIPE_RETRIES``, else 6.
    """
    if max_retries is None:
        max_retries = retries_from_env()
    base = api_base or os.environ.get(API_BASE_ENV) or client.api_base
    key = resolve_key(client)
    if rate_limit is None:
        rate_limit = client.rate_limit
    if rate_limit is None:
        rate_limit = default_rate_limit(key)
    return StripeGateway(
        key,
        client_id=client.id,
        api_base=base,
        stripe_account=client.stripe_account if client.connect else None,
        rate_limit=rate_limit,
        max_retries=max_retries,
        backoff=backoff,
        minimise=privacy.minimiser_for(client),
    )


def default_rate_limit(key: str) -> float:
    """Stripe's read limit for the key's mode, with room for the client's other integrations."""
    return 80.0 if "_live_" in key else 20.0


def retries_from_env() -> int:
    """``$BEANCOUNT_STRIPE_RETRIES`` (0–20), else the default: how often a request is retried."""
    text = os.environ.get(RETRIES_ENV, "").strip()
    if not text:
        return DEFAULT_RETRIES
    if not text.isdigit() or int(text) > 20:
        raise ConfigError(
            f"${RETRIES_ENV} is {text!r}, not a whole number from 0 to 20",
            where="environment",
            fix=f"unset it (default {DEFAULT_RETRIES}) or set it to e.g. 2",
        )
    return int(text)


def verify_account(gateway: StripeGateway, client: ClientConfig) -> dict[str, Any]:
    """Refuse unless the key opens exactly the configured account (and platform, if given)."""
    if client.connect and client.platform_account:
        platform = gateway.account(as_connected=False)
        if platform.get("id") != client.platform_account:
            raise StripeAccessError(
                f"the platform key opens {platform.get('id')}, but the configuration expects "
                f"platform {client.platform_account}; nothing was written",
                where=f"client {client.id}",
                fix="configure the right key source for this client, or correct `platform_account`",
            )
    acct = gateway.account()
    if acct.get("id") != client.stripe_account:
        raise StripeAccessError(
            f"the key opens Stripe account {acct.get('id')}, but client {client.id} expects "
            f"{client.stripe_account}; refusing to book another account's money into these "
            "books. Nothing was written",
            where=f"client {client.id}",
            fix="give this client its own key (check the env var / file / keyring entry), or "
            "correct `stripe_account` if the account id in the config is wrong",
        )
    return acct
