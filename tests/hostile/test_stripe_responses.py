"""Hostile Stripe responses: what a broken, lying or foreign server answers must end cleanly.

Every case runs the real CLI in a subprocess against either the simulator with an injected fault
(the official SDK over HTTP) or a tiny loopback stub that answers what no simulator would (a
balance transaction without ``created``, a web page where the API should be). Each must exit with
the documented status, name the problem and the fix, print no traceback, change no file and show
no key. Paging that does not advance must stop (exit 4); a malformed balance transaction is an
input error (exit 2) naming it; a base URL that is not Stripe fails at once (exit 2).
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from typing import Any

import pytest

from beancount_stripe.simulator import FaultPlan, Simulator, World

from . import stub
from .conftest import Workspace
from .harness import Run, assert_refused

ACME = "acct_1TestAcme00001"
LIST = "/v1/balance_transactions"
API_BASE_HINTS = ["api_base", "BEANCOUNT_STRIPE_API_BASE"]


def _routes(bts: stub.Answer, balance: stub.Answer | None = None) -> dict[str, Any]:
    """A Stripe-like stub: the right account (created an hour ago), ``bts`` for every page."""
    return {
        "/v1/account": stub.account(ACME, stub.now() - 3600),
        LIST: bts,
        "/v1/balance": balance or stub.balance({"eur": 0}),
    }


def _sync_against(ws: Workspace, url: str, *, retries: int | None = None) -> Run:
    if retries is not None:
        ws.env["BEANCOUNT_STRIPE_RETRIES"] = str(retries)
    return ws.cli("sync", "acme", "--api-base", url)


def _refused(ws: Workspace, result: Run, before: dict[str, str], code: int, *m: str) -> None:
    assert_refused(
        result, code=code, mentions=list(m), before=before, roots=[ws.root], keys=[ws.key]
    )


# -- failure 2: paging that does not advance --------------------------------------------------


def test_a_page_that_repeats_forever_stops_with_exit_4(ws: Workspace, world: World) -> None:
    """The simulator's ``repeat_page`` fault: every list request ignores its cursor."""
    before = ws.snapshot()
    with Simulator(world, faults=FaultPlan.parse("repeat_page@2-100000")) as looping:
        started = time.monotonic()
        result = _sync_against(ws, looping.url)
        pages = sum(1 for _m, path, _a in looping.requests if path == LIST)
    assert time.monotonic() - started < 30
    _refused(ws, result, before, 4, LIST, "cursor does not advance", looping.url)
    assert pages < 100, f"{pages} list requests: paging did not stop"


def test_the_same_page_with_has_more_forever_stops(ws: Workspace) -> None:
    t = stub.now()
    same = stub.page([stub.good_bt(n, t - 600 + n) for n in range(3)], has_more=True)
    before = ws.snapshot()
    with stub.serving(_routes(same)) as server:
        result = _sync_against(ws, server.url)
    _refused(ws, result, before, 4, LIST, "already listed", "txn_1Stub")
    assert server.hits[LIST] <= 4


def test_has_more_with_an_empty_page_stops(ws: Workspace) -> None:
    before = ws.snapshot()
    with stub.serving(_routes(stub.page([], has_more=True))) as server:
        result = _sync_against(ws, server.url)
    _refused(ws, result, before, 4, LIST, "empty", "has_more")


def test_duplicate_ids_in_one_page_are_refused(ws: Workspace) -> None:
    bt = stub.good_bt(1, stub.now() - 600)
    before = ws.snapshot()
    with stub.serving(_routes(stub.page([bt, dict(bt)]))) as server:
        result = _sync_against(ws, server.url)
    _refused(ws, result, before, 4, LIST, bt["id"])


# -- failure 3: a malformed balance transaction -----------------------------------------------


def _drop(key: str) -> Callable[[dict[str, Any]], Any]:
    return lambda bt: {k: v for k, v in bt.items() if k != key}


def _set(key: str, value: Any) -> Callable[[dict[str, Any]], Any]:
    return lambda bt: {**bt, key: value}


TXN = "txn_1Stub00000000000001"  # good_bt(1)

MALFORMED: dict[str, tuple[Callable[[dict[str, Any]], Any], list[str]]] = {
    "no created": (_drop("created"), [TXN, "`created`"]),
    "no net": (_drop("net"), [TXN, "`net`"]),
    "no currency": (_drop("currency"), [TXN, "`currency`"]),
    "no type": (_drop("type"), [TXN, "`type`"]),
    "no id": (_drop("id"), ["#1", "`id`", "page 1"]),
    "amount is a string": (_set("amount", "10.01"), [TXN, "`amount`", "a string"]),
    "amount is a float": (_set("amount", 1001.5), [TXN, "`amount`", "fraction"]),
    "net is null": (_set("net", None), [TXN, "`net`", "null"]),
    "fee is a boolean": (_set("fee", True), [TXN, "`fee`", "boolean"]),
    "created is absurd": (_set("created", 10**13), [TXN, "`created`", "plausible"]),
    "net is not amount minus fee": (_set("net", 5), [TXN, "`net`", "minus"]),
    "unknown currency": (_set("currency", "xyz"), [TXN, "xyz", "ISO 4217"]),
    "object is a charge": (_set("object", "charge"), [TXN, "charge"]),
    "source is a number": (_set("source", 42), [TXN, "`source`"]),
    "not an object": (lambda bt: "txn_1Stub00000000000001", ["#1", "a string"]),
    "null": (lambda bt: None, ["#1", "null"]),
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_a_malformed_balance_transaction_is_named_and_nothing_written(
    ws: Workspace, case: str
) -> None:
    mutate, mentions = MALFORMED[case]
    t = stub.now() - 600
    data = [stub.good_bt(0, t + 1), mutate(stub.good_bt(1, t)), stub.good_bt(2, t - 1)]
    before = ws.snapshot()
    with stub.serving(_routes(stub.page(data))) as server:
        result = _sync_against(ws, server.url)
    _refused(ws, result, before, 2, *mentions)


def test_a_malformed_transaction_leaves_a_synced_ledger_untouched(synced: Workspace) -> None:
    bt = {k: v for k, v in stub.good_bt(7, stub.now() - 600).items() if k != "created"}
    before = synced.snapshot()
    with stub.serving(_routes(stub.page([bt]))) as server:
        result = _sync_against(synced, server.url)
    _refused(synced, result, before, 2, bt["id"], "`created`")


# -- malformed pages ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("answer", "mentions"),
    [
        (stub.as_json({"object": "list", "has_more": False, "data": {"a": 1}}), ["`data`"]),
        (stub.as_json({"object": "list", "has_more": False}), ["no `data`"]),
        (stub.as_json([1, 2, 3]), ["an array"]),
        (stub.page([], has_more="yes"), ["has_more"]),
        (stub.Answer(200, "application/json", b'{"object": "list", "data": ['), ["not JSON"]),
    ],
    ids=["data-object", "data-missing", "body-array", "has_more-string", "truncated-json"],
)
def test_a_page_that_is_not_a_stripe_list_is_refused(
    ws: Workspace, answer: stub.Answer, mentions: list[str]
) -> None:
    before = ws.snapshot()
    with stub.serving(_routes(answer)) as server:
        result = _sync_against(ws, server.url)
    _refused(ws, result, before, 2, LIST, "does not look like the Stripe API", *mentions)


def test_an_invalid_json_body_from_the_simulator_is_refused(ws: Workspace, world: World) -> None:
    before = ws.snapshot()
    with Simulator(world, faults=FaultPlan.parse("badjson@2")) as broken:
        result = _sync_against(ws, broken.url)
    _refused(ws, result, before, 2, "not JSON", broken.url, *API_BASE_HINTS)


def test_a_malformed_balance_is_refused(ws: Workspace) -> None:
    bad = stub.as_json({"object": "balance", "available": "lots", "pending": []})
    before = ws.snapshot()
    with stub.serving(_routes(stub.page([]), balance=bad)) as server:
        result = _sync_against(ws, server.url)
    _refused(ws, result, before, 2, "/v1/balance", "`available`")


# -- failure 13: a base URL that is not Stripe -------------------------------------------------


def test_a_404_web_page_fails_fast_as_a_configuration_error(ws: Workspace) -> None:
    before = ws.snapshot()
    with stub.serving({}) as server:  # every path: 404 text/html
        started = time.monotonic()
        result = _sync_against(ws, server.url)
    assert time.monotonic() - started < 10, "a 404 page must not be retried as an outage"
    _refused(ws, result, before, 2, server.url + "/v1/account", "404", *API_BASE_HINTS)
    assert server.hits["/v1/account"] == 1


def test_a_200_web_page_fails_fast_as_a_configuration_error(ws: Workspace) -> None:
    before = ws.snapshot()
    with stub.serving({"/v1/account": stub.html(200)}) as server:
        result = _sync_against(ws, server.url)
    _refused(ws, result, before, 2, "/v1/account", "not JSON", *API_BASE_HINTS)
    assert server.hits["/v1/account"] == 1


def test_the_simulators_404_page_fault_is_a_configuration_error(
    ws: Workspace, world: World
) -> None:
    before = ws.snapshot()
    with Simulator(world, faults=FaultPlan.parse("404html@1")) as foreign:
        result = _sync_against(ws, foreign.url)
        assert foreign.request_count == 1
    _refused(ws, result, before, 2, "does not look like the Stripe API", *API_BASE_HINTS)


def test_a_base_url_with_a_path_gets_stripes_own_404_and_fails_fast(
    ws: Workspace, sim: Simulator
) -> None:
    before = ws.snapshot()
    result = _sync_against(ws, sim.url + "/api")
    _refused(ws, result, before, 2, sim.url + "/api/v1/account", "404", *API_BASE_HINTS)


def test_json_that_is_not_an_account_is_a_configuration_error(ws: Workspace) -> None:
    before = ws.snapshot()
    with stub.serving({"/v1/account": stub.as_json({"status": "ok"})}) as server:
        result = _sync_against(ws, server.url)
    _refused(ws, result, before, 2, "/v1/account", "not a Stripe account", *API_BASE_HINTS)


# -- outages: retried, then exit 4 ---------------------------------------------------------------


def test_a_500_storm_ends_in_exit_4_after_the_configured_retries(ws: Workspace) -> None:
    boom = stub.as_json({"error": {"type": "api_error", "message": "Sorry"}}, 500)
    before = ws.snapshot()
    with stub.serving(_routes(boom)) as server:
        result = _sync_against(ws, server.url, retries=1)
    _refused(ws, result, before, 4, LIST, "after 1 retries", "try again later")
    assert 2 <= server.hits[LIST] <= 8  # 2 attempts of at most 3 SDK tries, per month window


def test_a_502_web_page_from_a_proxy_is_an_outage_not_a_configuration_error(
    ws: Workspace,
) -> None:
    before = ws.snapshot()
    with stub.serving(_routes(stub.html(502))) as server:
        result = _sync_against(ws, server.url, retries=0)
    _refused(ws, result, before, 4, LIST, "try again later")


def test_nothing_listening_is_an_outage(ws: Workspace) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again before the sync: connection refused
    before = ws.snapshot()
    result = _sync_against(ws, f"http://127.0.0.1:{port}", retries=0)
    _refused(ws, result, before, 4, "/v1/account", "try again later")


def test_a_bad_retries_setting_is_a_configuration_error(ws: Workspace) -> None:
    before = ws.snapshot()
    ws.env["BEANCOUNT_STRIPE_RETRIES"] = "many"
    result = ws.cli("sync", "acme")
    _refused(ws, result, before, 2, "BEANCOUNT_STRIPE_RETRIES", "many")


# -- access changing under a sync -----------------------------------------------------------------


def test_a_key_revoked_mid_sync_is_exit_3(ws: Workspace, world: World) -> None:
    before = ws.snapshot()
    with Simulator(world, faults=FaultPlan.parse("401@2-100000")) as revoking:
        result = _sync_against(ws, revoking.url)
    _refused(ws, result, before, 3, "401", "key")


CONNECT = """\
defaults:
  timezone: Europe/Berlin
clients:
  - id: acme
    name: Child via platform
    stripe_account: acct_1TestChild0003
    connect: true
    platform_account: acct_1TestPlatform04
    key: env:HOSTILE_ACME_KEY
    ledger: ../books/acme/ledger.beancount
    operating_currency: BHD
"""


def test_connect_access_revoked_mid_sync_is_exit_3(ws: Workspace, world: World) -> None:
    ws.write_config(CONNECT)
    platform_key = world.accounts["acct_1TestPlatform04"].key
    assert platform_key
    ws.env["HOSTILE_ACME_KEY"] = platform_key
    before = ws.snapshot()
    with Simulator(world, faults=FaultPlan.parse("403@3-100000")) as revoking:
        result = _sync_against(ws, revoking.url)
        assert revoking.request_count >= 3  # platform and connected account were checked first
    assert_refused(
        result,
        code=3,
        mentions=["403", "acct_1TestChild0003", "connect"],
        before=before,
        roots=[ws.root],
        keys=[platform_key, ws.key],
    )


def test_a_key_of_another_account_is_refused(ws: Workspace, world: World) -> None:
    other_key = world.accounts["acct_1TestOther0002"].key
    assert other_key
    ws.env["HOSTILE_ACME_KEY"] = other_key
    before = ws.snapshot()
    result = ws.cli("sync", "acme")
    assert_refused(
        result,
        code=3,
        mentions=["acct_1TestOther0002", ACME],
        before=before,
        roots=[ws.root],
        keys=[other_key, ws.key],
    )
