"""`config check --online`: does each client's key open its account with every permission?

One small request per permission in ``stripe_api.REQUIRED_PERMISSIONS`` (``limit=1`` lists,
the balance, the account), so a restricted key missing one is found before a sync fails
half-way. Never prints the key: errors carry its masked form at most.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from beancount_stripe.config import ClientConfig
from beancount_stripe.errors import BeancountStripeError
from beancount_stripe.stripe_api import REQUIRED_PERMISSIONS


@dataclass
class KeyCheck:
    """What probing one client's key found."""

    client: ClientConfig
    account: str | None = None
    problems: list[BeancountStripeError] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        return max((p.exit_code for p in self.problems), default=0)


def check_key_online(client: ClientConfig, *, api_base: str | None = None) -> KeyCheck:
    """Read the key, check the account it opens, then probe every required permission."""
    from beancount_stripe.sync import gateway_for, verify_account  # sync imports config

    result = KeyCheck(client)
    try:
        gateway = gateway_for(client, api_base=api_base, max_retries=2, backoff=0.2)
        missing = gateway.probe_permissions()
        result.problems.extend(missing[p.name] for p in REQUIRED_PERMISSIONS if p.name in missing)
        unknown = [
            e for name, e in missing.items() if name not in {p.name for p in REQUIRED_PERMISSIONS}
        ]
        result.problems.extend(unknown)
        if "rak_connected_account_read" not in missing:
            result.account = str(verify_account(gateway, client).get("id"))
    except BeancountStripeError as e:  # key refused or unreadable, wrong account, unreachable…
        result.problems.append(e)
    return result
