"""What the simulator says besides data: Stripe's messages and error shapes, the routes and
parameters it accepts, restricted-key permissions, and scripted or random faults (``FaultPlan``).

``server`` serves requests with these; keeping them apart keeps the server about serving."""

from __future__ import annotations

import base64
import hashlib
import random
import re
from dataclasses import dataclass, field
from typing import Any

API_VERSION = "2026-09-30.endive"


NO_KEY_MESSAGE = (
    "You did not provide an API key. You need to provide your API key in the Authorization "
    "header, using Bearer auth (e.g. 'Authorization: Bearer YOUR_SECRET_KEY'). See "
    "https://stripe.com/docs/api#authentication for details, or we can help at "
    "https://support.stripe.com/."
)


MANUAL_PAYOUT_MESSAGE = (
    "Balance transaction history can only be filtered on automatic transfers, not manual."
)


RATE_LIMIT_MESSAGE = (
    "Request rate limit exceeded. You can learn more about rate limits here "
    "https://stripe.com/docs/rate-limits."
)


LOCK_TIMEOUT_MESSAGE = (
    "This object cannot be accessed right now because another API request or Stripe process "
    "is currently accessing it. If you see this error intermittently, retry the request. If you "
    "see this error frequently and are making multiple concurrent requests to a single object, "
    "make your requests serially or at a lower rate. See https://stripe.com/docs/rate-limits "
    "for more information."
)


API_ERROR_MESSAGE = (
    "Sorry, something went wrong. We've already been notified of the problem, but if you need "
    "any help, you can reach out to support.stripe.com/contact."
)


#: Faults a random ``rate=`` plan draws from by default: transient, retried by a client.
RANDOM_FAULT_KINDS = ("429", "429lock", "500", "503", "409", "drop")


#: Every fault kind. Beyond the transient ones: ``401`` (a key revoked mid-sync), ``403`` (Connect
#: access revoked), ``404html`` / ``html`` / ``badjson`` (a server that is not Stripe: a 404 web
#: page, a 200 web page, a 200 body that is not JSON), and ``repeat_page``: a balance-transaction
#: list request answered as if it had no cursor, with ``has_more: true`` (a page that repeats
#: forever; other requests are served normally).
FAULT_KINDS = (*RANDOM_FAULT_KINDS, "401", "403", "404html", "html", "badjson", "repeat_page")


_RAW_FAULTS = {
    "404html": (404, "text/html", b"<html><body><h1>404 Not Found</h1></body></html>\n"),
    "html": (200, "text/html", b"<!doctype html><html><body>Welcome!</body></html>\n"),
    "badjson": (200, "application/json", b'{"object": "list", "data": [\n'),
}


_FAULT_ALIASES = {"lock": "429lock", "lock_timeout": "429lock", "429_lock": "429lock"}


#: Object routes beyond balance transactions: path segment -> (object name, error noun).
_OBJECT_ROUTES: dict[str, tuple[str, str]] = {
    "charges": ("charge", "charge"),
    "payouts": ("payout", "payout"),
    "refunds": ("refund", "refund"),
    "disputes": ("dispute", "dispute"),
    "customers": ("customer", "customer"),
    "transfers": ("transfer", "transfer"),
    "topups": ("topup", "topup"),
    "application_fees": ("application_fee", "application fee"),
}


# Restricted keys (STRIPE-FACTS §2.3; docs.stripe.com/keys/permissions-reference and the
# Stripe Apps permissions reference): the permission each endpoint or expanded object needs,
# and what a permission implies. Objects not listed (Issuing, Climate, Treasury, Capital…) are
# not checked beyond `rak_balance_transaction_source_read` when expanded.
OBJECT_PERMISSIONS: dict[str, str] = {
    "charge": "rak_charge_read",
    "refund": "rak_refund_read",
    "dispute": "rak_dispute_read",
    "payout": "rak_payout_read",
    "transfer": "rak_transfer_read",
    "transfer_reversal": "rak_transfer_read",
    "application_fee": "rak_application_fee_read",
    "fee_refund": "rak_application_fee_read",
    "topup": "rak_top_up_read",
    "customer": "rak_customer_read",
}


SOURCE_PERMISSION = "rak_balance_transaction_source_read"


PERMISSION_IMPLIES: dict[str, tuple[str, ...]] = {
    SOURCE_PERMISSION: ("rak_application_fee_read", "rak_balance_read", "rak_transfer_read"),
    "rak_transfer_read": ("rak_payout_read",),
}


def granted(permissions: frozenset[str]) -> frozenset[str]:
    """``permissions`` with everything they imply (a write permission implies its read)."""
    out = set(permissions)
    todo = list(permissions)
    while todo:
        perm = todo.pop()
        more = list(PERMISSION_IMPLIES.get(perm, ()))
        if perm.endswith("_write"):
            more.append(perm[: -len("_write")] + "_read")
        for m in more:
            if m not in out:
                out.add(m)
                todo.append(m)
    return frozenset(out)


_LIST_PARAMS = {
    "created",
    "currency",
    "ending_before",
    "limit",
    "payout",
    "source",
    "starting_after",
    "type",
}


_RANGE = {"gt", "gte", "lt", "lte"}


_EXPAND_KEY = re.compile(r"^expand(\[\d*\])?$")


_LOG_LIMIT = 200_000


@dataclass
class FaultPlan:
    """Which API requests fail, and how.

    ``at`` maps 1-based request numbers (counted over all API requests) to a fault kind;
    ``rate`` adds random faults drawn per request number from ``seed`` (so the same plan
    fails the same requests whatever the thread timing).
    """

    at: dict[int, str] = field(default_factory=dict)
    rate: float = 0.0
    seed: int = 0
    kinds: tuple[str, ...] = RANDOM_FAULT_KINDS

    @classmethod
    def parse(cls, spec: str) -> FaultPlan:
        """Parse ``"429@3,500@5,drop@7,429lock@9"`` and/or ``"rate=0.1,seed=4,kinds=500|drop"``.

        ``KIND@A-B`` fails every request from A to B.
        """
        plan = cls()
        for raw in spec.split(","):
            token = raw.strip()
            if not token:
                continue
            if "@" in token:
                kind, _, where = token.partition("@")
                kind = _kind(kind)
                lo, _, hi = where.partition("-")
                try:
                    first, last = int(lo), int(hi or lo)
                except ValueError:
                    raise ValueError(f"bad fault position in {token!r}") from None
                if first < 1 or last < first:
                    raise ValueError(f"bad fault position in {token!r}")
                for n in range(first, last + 1):
                    plan.at[n] = kind
            elif "=" in token:
                name, _, value = token.partition("=")
                name = name.strip()
                try:
                    if name == "rate":
                        plan.rate = float(value)
                        if not 0.0 <= plan.rate <= 1.0:
                            raise ValueError
                    elif name == "seed":
                        plan.seed = int(value)
                    elif name == "kinds":
                        plan.kinds = tuple(_kind(k) for k in value.split("|") if k.strip())
                    else:
                        raise KeyError(name)
                except ValueError:
                    raise ValueError(f"bad value in fault option {token!r}") from None
                except KeyError:
                    raise ValueError(f"unknown fault option {name!r}") from None
            else:
                raise ValueError(f"cannot read fault {token!r} (use KIND@N or rate=P)")
        return plan

    def fault_for(self, n: int) -> str | None:
        """The fault for API request number ``n``, if any."""
        if n in self.at:
            return self.at[n]
        if self.rate > 0 and self.kinds:
            rng = random.Random(f"{self.seed}|{n}")
            if rng.random() < self.rate:
                return rng.choice(self.kinds)
        return None


def _kind(text: str) -> str:
    kind = _FAULT_ALIASES.get(text.strip().lower(), text.strip().lower())
    if kind not in FAULT_KINDS:
        raise ValueError(f"unknown fault kind {text!r} (one of {', '.join(FAULT_KINDS)})")
    return kind


class ApiError(Exception):
    """An error response in Stripe's JSON shape."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type: str = "invalid_request_error",
        code: str | None = None,
        param: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.body: dict[str, Any] = {"message": message, "type": type}
        if code is not None:
            self.body["code"] = code
            self.body["doc_url"] = f"https://stripe.com/docs/error-codes/{code.replace('_', '-')}"
        if param is not None:
            self.body["param"] = param
        self.headers = headers or {}


def mask_key(key: str) -> str:
    """Stripe's masked form of a key: its prefix, asterisks and the last four characters."""
    match = re.match(r"^((?:sk|rk|pk)_(?:test|live)_)", key)
    prefix = match.group(1) if match else ""
    return f"{prefix}****{key[-4:]}" if len(key) > len(prefix) + 4 else f"{prefix}****"


def _invalid_integer(value: str, param: str) -> ApiError:
    return ApiError(400, f"Invalid integer: {value}", param=param)


def _int(value: str, param: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise _invalid_integer(value, param) from None


def _late_params(params: dict[str, str]) -> tuple[int, int, str]:
    """(created, amount, currency) of a ``/_simulator/late`` request."""
    created = _int(params.get("created", ""), "created")
    amount = _int(params.get("amount", ""), "amount")
    cur = params.get("currency", "usd").lower()
    if not re.fullmatch(r"[a-z]{3}", cur):
        raise ApiError(400, f"Invalid currency: {cur}", param="currency")
    return created, amount, cur


def _request_id(n: int) -> str:
    digest = hashlib.blake2b(f"req|{n}".encode(), digest_size=12).digest()
    return "req_" + base64.b64encode(digest).decode().translate(str.maketrans("+/", "xQ"))[:14]


def _fault_error(kind: str) -> ApiError:
    if kind == "429":
        return ApiError(429, RATE_LIMIT_MESSAGE, code="rate_limit")
    if kind == "429lock":
        return ApiError(
            429, LOCK_TIMEOUT_MESSAGE, code="lock_timeout", headers={"Stripe-Should-Retry": "true"}
        )
    if kind == "409":
        return ApiError(
            409,
            "There was a conflict with another request for this object. Please retry.",
            code="lock_timeout",
        )
    if kind == "503":
        return ApiError(503, "The server is temporarily unavailable.", type="api_error")
    if kind == "401":
        return ApiError(401, "Invalid API Key provided: sk_test_****oked")
    if kind == "403":
        return ApiError(
            403,
            "The provided key does not have access to this account (or that account does not "
            "exist). Application access may have been revoked.",
            code="account_invalid",
        )
    return ApiError(500, API_ERROR_MESSAGE, type="api_error")
