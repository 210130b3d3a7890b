"""The only module that talks to Stripe.

It wraps the official SDK's ``StripeClient`` (``base_addresses`` points it at the simulator in tests
and the demo), adds what the SDK lacks (retrying a plain 429 with backoff, a client-side rate limit
shared by concurrent windows), and turns SDK exceptions into the project's typed errors. It returns
plain dicts in Stripe's wire shape so nothing above it depends on the SDK.
"""

from __future__ import annotations

import json
import random
import re
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import stripe

from beancount_stripe import privacy
from beancount_stripe.bt_check import check_bt, json_type
from beancount_stripe.errors import (
    BeancountStripeError,
    ConfigError,
    MissingPermissionError,
    StripeAccessError,
    StripeUnavailableError,
)
from beancount_stripe.transport import NOTHING, ParsingTransport, handoff

PAGE_SIZE = 100
STRIPE_API = "https://api.stripe.com"
#: Where the API base URL can be set, for messages that ask to correct it.
API_BASE_FIX = (
    "check `api_base` in the client's configuration, the --api-base option and the "
    "BEANCOUNT_STRIPE_API_BASE environment variable: leave them unset for Stripe itself "
    f"({STRIPE_API}), or point them at the simulator's URL"
)


@dataclass(frozen=True)
class Permission:
    """One read permission of a restricted key, and the one small request that proves it."""

    name: str  # as Stripe names it in a 403 ("Having the 'rak_…' permission would allow…")
    resource: str  # the row of the Dashboard's "Create restricted key" form, set to Read
    why: str
    probe: str  # GET path of a small request that needs exactly this permission
    params: tuple[tuple[str, Any], ...] = (("limit", 1),)


# Every permission the sync needs, for a restricted key (`rk_…`). README, config/clients.yaml,
# `config check --online` and the simulator tests all use this list. Expanding `data.source`
# needs read access to each kind of object a source can be, besides the source permission.
REQUIRED_PERMISSIONS: tuple[Permission, ...] = (
    Permission(
        "rak_connected_account_read",
        "Account (Connect: Accounts)",
        "check that the key opens the configured account",
        "/v1/account",
        (),
    ),
    Permission(
        "rak_balance_read",
        "Balance",
        "the balance and the balance transactions",
        "/v1/balance",
        (),
    ),
    Permission(
        "rak_balance_transaction_source_read",
        "Balance transaction sources",
        "expand each transaction's source",
        "/v1/balance_transactions",
        (("limit", 1), ("expand", ("data.source",))),
    ),
    Permission("rak_charge_read", "Charges", "payee and payment method of charges", "/v1/charges"),
    Permission("rak_refund_read", "Refunds", "refunds expanded as sources", "/v1/refunds"),
    Permission("rak_dispute_read", "Disputes", "dispute reasons", "/v1/disputes"),
    Permission("rak_payout_read", "Payouts", "payout destinations", "/v1/payouts"),
    Permission("rak_transfer_read", "Transfers", "Connect transfers", "/v1/transfers"),
    Permission(
        "rak_application_fee_read",
        "Application fees",
        "platform fees (Connect)",
        "/v1/application_fees",
    ),
    Permission("rak_top_up_read", "Top-ups", "top-ups of the balance", "/v1/topups"),
)
PERMISSION_NAMES = tuple(p.name for p in REQUIRED_PERMISSIONS)
_MISSING_RE = re.compile(r"Having the '([a-z0-9_]+)' permission")
_KEY_RE = re.compile(r"\b([sr]k_(?:test|live)_)[0-9A-Za-z_]+")


def mask_secrets(text: str) -> str:
    """Replace anything shaped like a Stripe key with its masked form (prefix + last 4)."""

    def repl(m: re.Match[str]) -> str:
        return f"{m.group(1)}…{m.group(0)[-4:]}"

    return _KEY_RE.sub(repl, text)


class RateLimiter:
    """A token bucket shared by all threads of one fetch (Stripe: 25 req/s test, 100 live)."""

    def __init__(self, per_second: float | None) -> None:
        self.per_second = per_second
        self._lock = threading.Lock()
        self._next = 0.0

    def wait(self) -> None:
        if not self.per_second:
            return
        with self._lock:
            now = time.monotonic()
            start = max(now, self._next)
            self._next = start + 1.0 / self.per_second
        delay = start - time.monotonic()
        if delay > 0:
            time.sleep(delay)


class StripeGateway:
    """Read-only access to one Stripe account (directly, or through a Connect platform key)."""

    def __init__(
        self,
        api_key: str,
        *,
        client_id: str,
        api_base: str | None = None,
        stripe_account: str | None = None,
        max_retries: int = 6,
        backoff: float = 0.5,
        rate_limit: float | None = 20.0,
        timeout: float = 80.0,
        sleep: Callable[[float], None] = time.sleep,
        minimise: Callable[[dict[str, Any]], dict[str, Any]] | None = privacy.minimise,
    ) -> None:
        base = {"api": api_base} if api_base else None
        self._client = stripe.StripeClient(
            api_key,
            base_addresses=base,  # type: ignore[arg-type]
            max_network_retries=2,
            http_client=ParsingTransport(
                api_base=api_base or "https://api.stripe.com", timeout=timeout
            ),
        )
        self._key_tail = api_key[-4:]
        self.client_id = client_id
        self.api_base = api_base or "https://api.stripe.com"
        self.stripe_account = stripe_account
        self.max_retries = max_retries
        self.backoff = backoff
        self.limiter = RateLimiter(rate_limit)
        self._sleep = sleep
        self.request_count = 0
        self._count_lock = threading.Lock()
        # Applied to every balance transaction as it arrives, before anything can store it:
        # personal data Stripe expands into the source never reaches the archive (privacy.py).
        self.minimise = minimise

    # -- public calls ---------------------------------------------------------------------------

    def account(self, *, as_connected: bool = True) -> dict[str, Any]:
        """``GET /v1/account``: the account the key opens (the connected one in Connect mode)."""
        opts = self._options() if as_connected else {}
        what = "GET /v1/account"
        acct = self._call(
            lambda: self._client.v1.accounts.retrieve_current(options=opts),  # type: ignore[arg-type]
            what,
        )
        if acct.get("object") != "account" or not isinstance(acct.get("id"), str):
            raise self._not_stripe(what, "a JSON object that is not a Stripe account")
        return acct

    def balance(self) -> dict[str, Any]:
        """``GET /v1/balance``, its ``available`` and ``pending`` amounts checked."""
        what = "GET /v1/balance"
        bal = self._call(
            lambda: self._client.v1.balance.retrieve(options=self._options()),  # type: ignore[arg-type]
            what,
        )
        for part in ("available", "pending"):
            items = bal.get(part)
            if not isinstance(items, list) or not all(
                isinstance(i, dict)
                and type(i.get("amount")) is int
                and isinstance(i.get("currency"), str)
                for i in items
            ):
                raise self._not_stripe(
                    what, f"a balance whose `{part}` is not a list of amounts and currencies"
                )
        return bal

    def balance_transactions(
        self,
        *,
        created_gte: int | None = None,
        created_lt: int | None = None,
        ending_before: str | None = None,
        expand_source: bool = True,
        on_page: Callable[[int], None] | None = None,
    ) -> Iterator[dict[str, Any]]:
        """Every BT in the window, page by page (newest first, or oldest-first with ending_before).

        Pages are requested one at a time so a failed page is retried on its own, never restarted
        from the top (restarting would be correct but wasteful on long histories).
        """
        params: dict[str, Any] = {"limit": PAGE_SIZE}
        created: dict[str, int] = {}
        if created_gte is not None:
            created["gte"] = created_gte
        if created_lt is not None:
            created["lt"] = created_lt
        if created:
            params["created"] = created
        if expand_source:
            params["expand"] = ["data.source"]
        what = "GET /v1/balance_transactions"
        cursor_key, cursor = ("ending_before", ending_before) if ending_before else ("", None)
        seen: set[str] = set()
        page_no = 0
        while True:
            page_params = dict(params)
            if cursor_key and cursor:
                page_params[cursor_key] = cursor
            # raw_request: the SDK's transport, retries and error mapping, but the page comes
            # back as the JSON Stripe sent, without building (then unbuilding) StripeObjects,
            # which cost as much as the paging itself on long histories.
            page = self._call(
                lambda p=page_params: (
                    self._client.raw_request(
                        "get", "/v1/balance_transactions", **p, **self._options()
                    ).data
                ),
                what,
            )
            page_no += 1
            items, has_more = self._page(page, what, page_no)
            self._check_progress(items, has_more, seen, what, page_no, cursor)
            if self.minimise is not None:
                items = [self.minimise(bt) for bt in items]
            if on_page:
                on_page(len(items))
            yield from items
            if not has_more:
                return
            # Newest first either way: with ending_before (walking toward newer items) the next
            # cursor is the newest item of this page, with starting_after the oldest.
            if ending_before:
                cursor_key, cursor = "ending_before", items[0]["id"]
            else:
                cursor_key, cursor = "starting_after", items[-1]["id"]

    def balance_transactions_page(
        self,
        *,
        created_gte: int,
        created_lt: int,
        starting_after: str | None = None,
        seen: set[str] | None = None,
        page_no: int = 1,
    ) -> tuple[list[dict[str, Any]], bool]:
        """One page (newest first) of the BTs created in [gte, lt): (items, has_more).

        The backfill (sync.fetch) schedules pages itself, so it can split a window while paging;
        ``seen`` is the ids its earlier pages of the same window listed (repeats are refused).
        """
        params: dict[str, Any] = {
            "limit": PAGE_SIZE,
            "created": {"gte": created_gte, "lt": created_lt},
            "expand": ["data.source"],
        }
        if starting_after:
            params["starting_after"] = starting_after
        what = "GET /v1/balance_transactions"
        page = self._call(
            lambda: (
                self._client.raw_request(
                    "get", "/v1/balance_transactions", **params, **self._options()
                ).data
            ),
            what,
        )
        items, has_more = self._page(page, what, page_no)
        self._check_progress(
            items, has_more, set() if seen is None else seen, what, page_no, starting_after
        )
        if self.minimise is not None:
            items = [self.minimise(bt) for bt in items]
        return items, has_more

    def _page(
        self, page: dict[str, Any], what: str, page_no: int
    ) -> tuple[list[dict[str, Any]], bool]:
        """A list page's balance transactions, each checked, and its ``has_more``."""
        items = page.get("data")
        has_more = page.get("has_more")
        if page.get("object") != "list" or not isinstance(items, list):
            got = "no `data`" if items is None else f"`data` that is {json_type(items)}"
            raise self._not_stripe(what, f"a JSON object with {got}, not a Stripe list")
        if not isinstance(has_more, bool):
            raise self._not_stripe(what, f"a list whose `has_more` is {json_type(has_more)}")
        where = f"client {self.client_id}: {what} from {self.api_base}, page {page_no}"
        fix = (
            "the server sent a malformed balance transaction and nothing was written; if "
            f"api_base is not Stripe's own URL, correct it ({API_BASE_FIX}); otherwise report it"
        )
        checked = [check_bt(bt, where=where, index=i, fix=fix) for i, bt in enumerate(items)]
        return checked, has_more

    def _check_progress(
        self,
        items: list[dict[str, Any]],
        has_more: bool,
        seen: set[str],
        what: str,
        page_no: int,
        cursor: str | None,
    ) -> None:
        """Refuse a page that repeats ids already listed, or ``has_more`` with nothing in it.

        Cursor paging never returns an id twice; a server that does (the same page again, a
        cursor that does not move) would otherwise be asked for the next page forever.
        """
        repeated = [bt["id"] for bt in items if bt["id"] in seen]
        ids = [bt["id"] for bt in items]
        if not repeated and len(set(ids)) != len(ids):
            repeated = sorted({i for i in ids if ids.count(i) > 1})
        problem = ""
        if repeated:
            moved = f"after cursor {cursor}" if cursor else "on the first page"
            problem = (
                f"page {page_no} ({moved}) repeats {len(repeated)} balance transaction(s) "
                f"already listed, e.g. {repeated[0]}: the cursor does not advance"
            )
        elif has_more and not items:
            problem = f"page {page_no} is empty but says `has_more: true`"
        if problem:
            raise StripeUnavailableError(
                f"{what} at {self.api_base}: {problem}; stopped paging instead of looping",
                where=f"client {self.client_id}",
                fix="nothing was written; try again later. If it persists and api_base is not "
                f"Stripe's own URL, correct it ({API_BASE_FIX})",
            )
        seen.update(ids)

    def probe_permissions(self) -> dict[str, MissingPermissionError]:
        """One small request per required permission; the permissions the key lacks.

        A 401 (revoked or mistyped key) or an outage is raised as usual: nothing can be probed.
        """
        missing: dict[str, MissingPermissionError] = {}
        for perm in REQUIRED_PERMISSIONS:
            params = {k: list(v) if isinstance(v, tuple) else v for k, v in perm.params}
            try:
                self._call(
                    lambda p=perm, q=params: (
                        self._client.raw_request("get", p.probe, **q, **self._options()).data
                    ),
                    f"GET {perm.probe}",
                )
            except MissingPermissionError as e:
                missing.setdefault(e.permission, e)
        return missing

    def payout(self, payout_id: str) -> dict[str, Any]:
        """``GET /v1/payouts/:id``: a payout's current status, arrival date and trace id."""
        return self._call(
            lambda: (
                self._client.raw_request("get", f"/v1/payouts/{payout_id}", **self._options()).data
            ),
            f"GET /v1/payouts/{payout_id}",
        )

    def payout_transactions(
        self, payout_id: str, *, expand_source: bool = False
    ) -> Iterator[dict[str, Any]]:
        """``GET /v1/balance_transactions?payout=po_…``: what an automatic payout settled, paged.

        Stripe answers 400 for a manual payout (it does not itemise those); callers check
        ``payout["automatic"]`` first.
        """
        cursor: str | None = None
        while True:
            params: dict[str, Any] = {"limit": PAGE_SIZE, "payout": payout_id}
            if expand_source:
                params["expand"] = ["data.source"]
            if cursor:
                params["starting_after"] = cursor
            page = self._call(
                lambda p=params: (
                    self._client.raw_request(
                        "get", "/v1/balance_transactions", **p, **self._options()
                    ).data
                ),
                f"GET /v1/balance_transactions?payout={payout_id}",
            )
            items = page.get("data") or []
            yield from items
            if not page.get("has_more") or not items:
                return
            cursor = items[-1]["id"]

    # -- plumbing -------------------------------------------------------------------------------

    def _options(self) -> dict[str, Any]:
        return {"stripe_account": self.stripe_account} if self.stripe_account else {}

    def _url(self, what: str) -> str:
        return self.api_base.rstrip("/") + what.split(" ", 1)[-1]

    def _not_stripe(self, what: str, got: str) -> ConfigError:
        """The error for an answer no Stripe API gives: the base URL points elsewhere."""
        return ConfigError(
            f"{self._url(what)} answered {got}; the base URL {self.api_base} does not look like "
            "the Stripe API. Nothing was written",
            where=f"client {self.client_id}",
            fix=API_BASE_FIX,
        )

    def _call(self, fn: Callable[[], Any], what: str) -> dict[str, Any]:
        """Run one request with rate limiting, retries with jittered backoff, and typed errors."""
        attempt = 0
        while True:
            self.limiter.wait()
            with self._count_lock:  # windows run in many threads
                self.request_count += 1
            try:
                handoff.want, handoff.body = True, NOTHING
                try:
                    result = fn()
                finally:
                    handoff.want, body, handoff.body = False, handoff.body, None
                if body is not NOTHING:
                    result = body  # parsed by the transport; the SDK saw `{}`
                result = result.to_dict() if hasattr(result, "to_dict") else result
                if not isinstance(result, dict):
                    raise self._not_stripe(what, f"HTTP 200 with {json_type(result)} as its body")
                return result
            except stripe.APIError as e:
                # Not JSON, or JSON without Stripe's `error` object, below 500: not Stripe at all
                # (a web page, another API). A 5xx page from a proxy is an outage: retried below.
                status = e.http_status
                body = _json_or_none(e.http_body)
                stripe_shaped = isinstance(body, dict) and isinstance(body.get("error"), dict)
                if status is not None and status < 500 and not stripe_shaped:
                    kind = "a body that is not JSON" if body is None else "non-Stripe JSON"
                    raise self._not_stripe(what, f"HTTP {status} with {kind}") from None
                attempt = self._retry(attempt, what, e)
            except stripe.InvalidRequestError as e:
                if e.http_status == 404:
                    # These endpoints exist on every Stripe account: a 404 means a wrong base URL.
                    raise self._not_stripe(what, f"HTTP 404 ({_msg(e)})") from None
                raise BeancountStripeError(
                    f"Stripe rejected {what}: {_msg(e)}",
                    where=f"client {self.client_id}",
                ) from None
            except stripe.AuthenticationError as e:
                raise StripeAccessError(
                    f"Stripe refused the API key (HTTP 401) on {what}: {_msg(e)}",
                    where=f"client {self.client_id}",
                    fix="check the key source configured for this client (a restricted read-only "
                    "key `rk_…` with the read permissions the README lists is recommended)",
                ) from None
            except stripe.PermissionError as e:
                text = _msg(e)
                missing = _MISSING_RE.search(text)
                if missing:
                    raise _missing_permission(missing.group(1), what, self.client_id) from None
                account = self.stripe_account or "the key's own account"
                raise StripeAccessError(
                    f"the key has no access to {account} (HTTP 403) on {what}: {_msg(e)}",
                    where=f"client {self.client_id}",
                    fix="check `stripe_account` and, in Connect mode, that the platform key is "
                    "connected to that account; or grant the restricted key read access",
                ) from None
            except (stripe.RateLimitError, stripe.APIConnectionError) as e:
                # RateLimitError is a plain 429, which the SDK never retries; APIConnectionError
                # drops and timeouts. APIError (5xx/409 after the SDK's own retries) is above.
                attempt = self._retry(attempt, what, e)
            except stripe.StripeError as e:
                raise BeancountStripeError(
                    f"Stripe rejected {what}: {_msg(e)}",
                    where=f"client {self.client_id}",
                ) from None

    def _retry(self, attempt: int, what: str, error: Exception) -> int:
        """Sleep before the next attempt, or raise once ``max_retries`` are used up."""
        attempt += 1
        if attempt > self.max_retries:
            raise StripeUnavailableError(
                f"{what} kept failing after {self.max_retries} retries: {_msg(error)}",
                where=f"client {self.client_id} ({self.api_base})",
                fix="try again later; the books were not changed, and the next sync resumes "
                "where this one stopped",
            ) from None
        delay = min(self.backoff * 2 ** (attempt - 1), 8.0)
        self._sleep(random.uniform(delay / 2, delay))
        return attempt


def _json_or_none(body: object) -> Any:
    """The parsed JSON of a response body, or None when it is not JSON."""
    if not isinstance(body, str | bytes):
        return None
    try:
        return json.loads(body)
    except ValueError:
        return None


def _missing_permission(name: str, what: str, client_id: str) -> MissingPermissionError:
    perm = next((p for p in REQUIRED_PERMISSIONS if p.name == name), None)
    resource = f"`{perm.resource}`" if perm else f"the resource of `{name}`"
    return MissingPermissionError(
        f"the restricted key lacks the `{name}` permission (HTTP 403 on {what}); nothing was "
        "booked",
        permission=name,
        where=f"client {client_id}",
        fix=f"in the Stripe Dashboard (Developers → API keys), edit the restricted key and set "
        f"{resource} to Read; the sync needs Read on: "
        + ", ".join(p.name for p in REQUIRED_PERMISSIONS)
        + " (`beancount-stripe config check --online` checks them all)",
    )


def _msg(error: Exception) -> str:
    text = getattr(error, "user_message", None) or str(error) or type(error).__name__
    return mask_secrets(str(text))
