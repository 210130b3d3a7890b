"""The simulator over real HTTP, driven by the official stripe SDK (and raw HTTP where needed)."""

from __future__ import annotations

import base64
import datetime as dt
import json
import threading
import urllib.error
import urllib.request
from collections import Counter
from typing import Any

import pytest
import stripe
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from beancount_stripe.simulator import (
    FaultPlan,
    SimAccount,
    Simulator,
    World,
    balance,
    generate_history,
)
from beancount_stripe.simulator.server import MANUAL_PAYOUT_MESSAGE, NO_KEY_MESSAGE

from .conftest import (
    ALPHA,
    BETA,
    CHILD,
    KEYS,
    NOW,
    PLATFORM,
    ClientMaker,
    assert_valid_bt,
    assert_valid_list,
    make_world,
    newest_first,
)

PLAIN = {"limit": 100}


def history(world: World, account_id: str) -> list[dict[str, Any]]:
    return world.accounts[account_id].history.transactions


def raw(
    sim: Simulator,
    path: str,
    *,
    key: str | None = None,
    headers: dict[str, str] | None = None,
    method: str = "GET",
) -> tuple[int, dict[str, Any], Any]:
    """A plain HTTP request, for what the SDK hides (headers, exact bodies, missing key)."""
    request = urllib.request.Request(sim.url + path, method=method, headers=headers or {})
    if key is not None:
        request.add_header("Authorization", f"Bearer {key}")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, dict(response.headers), json.loads(response.read())
    except urllib.error.HTTPError as err:
        return err.code, dict(err.headers), json.loads(err.read())


def to_dict(obj: Any) -> Any:
    return json.loads(str(obj))


def sdk_list(client: stripe.StripeClient, params: dict[str, Any], **options: Any) -> list[str]:
    page = client.v1.balance_transactions.list(params=params, options=options or None)
    return [bt.id for bt in page.auto_paging_iter()]


# --- paging -------------------------------------------------------------------------------------


def test_paging_a_full_history_yields_every_bt_once_newest_first(
    sim_world: World, client_for: ClientMaker
) -> None:
    ids = sdk_list(client_for(ALPHA), PLAIN)
    want = [t["id"] for t in newest_first(history(sim_world, ALPHA))]
    assert ids == want
    small = sdk_list(client_for(ALPHA), {"limit": 7})
    assert small == want


def test_default_limit_is_ten_and_has_more(client_for: ClientMaker) -> None:
    page = client_for(ALPHA).v1.balance_transactions.list()
    assert len(page.data) == 10 and page.has_more is True
    assert page.url == "/v1/balance_transactions"


def test_has_more_is_exact_at_the_end_of_the_list(
    sim_world: World, client_for: ClientMaker
) -> None:
    bts = newest_first([t for t in history(sim_world, ALPHA) if t["type"] == "payout"])
    n = len(bts)
    assert 3 < n < 100
    client = client_for(ALPHA)
    exact = client.v1.balance_transactions.list(params={"type": "payout", "limit": n})
    assert len(exact.data) == n and exact.has_more is False
    short = client.v1.balance_transactions.list(params={"type": "payout", "limit": n - 1})
    assert short.has_more is True
    tail = client.v1.balance_transactions.list(
        params={"type": "payout", "limit": 2, "starting_after": bts[-3]["id"]}
    )
    assert [b.id for b in tail.data] == [t["id"] for t in bts[-2:]] and tail.has_more is False
    head = client.v1.balance_transactions.list(
        params={"type": "payout", "limit": 2, "ending_before": bts[2]["id"]}
    )
    assert [b.id for b in head.data] == [t["id"] for t in bts[:2]] and head.has_more is False


def test_ending_before_walks_towards_newer(sim_world: World, client_for: ClientMaker) -> None:
    ordered = newest_first(history(sim_world, ALPHA))
    pivot = ordered[150]["id"]
    client = client_for(ALPHA)
    page = client.v1.balance_transactions.list(params={"limit": 5, "ending_before": pivot})
    assert [bt.id for bt in page.data] == [t["id"] for t in ordered[145:150]]
    assert page.has_more is True
    walked = [bt.id for bt in page.auto_paging_iter()]
    assert walked == [t["id"] for t in reversed(ordered[:150])]


def test_both_cursors_are_refused(sim_world: World, client_for: ClientMaker) -> None:
    ordered = newest_first(history(sim_world, ALPHA))
    with pytest.raises(stripe.InvalidRequestError) as info:
        client_for(ALPHA).v1.balance_transactions.list(
            params={"starting_after": ordered[3]["id"], "ending_before": ordered[1]["id"]}
        )
    assert info.value.http_status == 400


def test_unknown_cursor_is_a_400(client_for: ClientMaker) -> None:
    with pytest.raises(stripe.InvalidRequestError) as info:
        client_for(ALPHA).v1.balance_transactions.list(params={"starting_after": "txn_nope"})
    assert info.value.http_status == 400 and info.value.param == "starting_after"


@pytest.mark.parametrize(
    ("limit", "message"),
    [
        (0, "greater than or equal to 1"),
        (101, "less than or equal to 100"),
        ("abc", "Invalid integer: abc"),
    ],
)
def test_limit_errors(client_for: ClientMaker, limit: Any, message: str) -> None:
    with pytest.raises(stripe.InvalidRequestError) as info:
        client_for(ALPHA).v1.balance_transactions.list(params={"limit": limit})
    assert info.value.http_status == 400 and info.value.param == "limit"
    assert message in str(info.value.user_message)


def test_limits_one_and_hundred_are_fine(client_for: ClientMaker) -> None:
    client = client_for(ALPHA)
    assert len(client.v1.balance_transactions.list(params={"limit": 1}).data) == 1
    assert len(client.v1.balance_transactions.list(params={"limit": 100}).data) == 100


# --- filters ------------------------------------------------------------------------------------


def _cluster_and_midnight(bts: list[dict[str, Any]]) -> tuple[int, int]:
    per_second = Counter(t["created"] for t in bts)
    cluster = max(per_second, key=lambda s: (per_second[s], s))
    assert per_second[cluster] >= 3
    midnight = next(t["created"] for t in bts if t["created"] % 86400 == 0)
    return cluster, midnight


@pytest.mark.parametrize("which", ["cluster", "midnight"])
def test_created_filters_at_exact_boundaries(
    sim_world: World, client_for: ClientMaker, which: str
) -> None:
    bts = history(sim_world, ALPHA)
    cluster, midnight = _cluster_and_midnight(bts)
    edge = cluster if which == "cluster" else midnight
    client = client_for(ALPHA)

    def expect(pred) -> list[str]:
        return [t["id"] for t in newest_first(bts) if pred(t["created"])]

    cases = {
        "gte": lambda c: c >= edge,
        "gt": lambda c: c > edge,
        "lt": lambda c: c < edge,
        "lte": lambda c: c <= edge,
    }
    for op, pred in cases.items():
        assert sdk_list(client, {"limit": 100, "created": {op: edge}}) == expect(pred), op
    window = {"gte": edge, "lt": edge + 1}
    same_second = sdk_list(client, {"limit": 2, "created": window})
    assert same_second == expect(lambda c: c == edge)
    assert sdk_list(client, {"limit": 100, "created": edge}) == same_second
    day = {"gte": edge - edge % 86400, "lt": edge - edge % 86400 + 86400}
    assert sdk_list(client, {"limit": 100, "created": day}) == expect(
        lambda c: day["gte"] <= c < day["lt"]
    )


def test_type_currency_and_source_filters(sim_world: World, client_for: ClientMaker) -> None:
    bts = newest_first(history(sim_world, BETA))
    client = client_for(BETA)
    for typ in ("charge", "refund", "payout", "adjustment"):
        assert sdk_list(client, {"limit": 100, "type": typ}) == [
            t["id"] for t in bts if t["type"] == typ
        ]
    for cur in ("jpy", "krw", "usd"):
        assert sdk_list(client, {"limit": 100, "currency": cur}) == [
            t["id"] for t in bts if t["currency"] == cur
        ]
    both = sdk_list(client, {"limit": 3, "currency": "jpy", "type": "charge"})
    assert both == [t["id"] for t in bts if t["currency"] == "jpy" and t["type"] == "charge"]
    refund = next(t for t in bts if t["type"] == "refund")
    assert sdk_list(client, {"source": refund["source"]}) == [refund["id"]]
    dispute = next(t for t in bts if str(t["source"]).startswith("dp_"))
    assert sdk_list(client, {"source": dispute["source"]}) == []  # live Stripe's quirk
    for nothing in ({"type": "no_such_type"}, {"currency": "xyz"}, {"source": "ch_nope"}):
        page = client.v1.balance_transactions.list(params=nothing)
        assert page.data == [] and page.has_more is False


def test_payout_filter_returns_what_the_payout_paid_out(
    sim_world: World, client_for: ClientMaker
) -> None:
    h = sim_world.accounts[ALPHA].history
    client = client_for(ALPHA)
    automatic = [p for p, o in h.objects.items() if o.get("object") == "payout" and o["automatic"]]
    assert len(automatic) > 5
    for po_id in automatic[:5]:
        ids = sdk_list(client, {"limit": 100, "payout": po_id, "expand": ["data.source"]})
        assert sorted(ids) == sorted(h.payout_members[po_id])
        page = client.v1.balance_transactions.list(params={"payout": po_id, "limit": 100})
        rows = [to_dict(bt) for bt in page.data]
        own = [r for r in rows if r["type"] == "payout" and r["source"] == po_id]
        assert len(own) == 1
        others = sum(r["net"] for r in rows if r is not own[0])
        assert others == h.objects[po_id]["amount"] == -own[0]["amount"]
    manual = next(
        p for p, o in h.objects.items() if o.get("object") == "payout" and not o["automatic"]
    )
    with pytest.raises(stripe.InvalidRequestError) as info:
        client.v1.balance_transactions.list(params={"payout": manual})
    assert info.value.http_status == 400
    assert info.value.user_message == MANUAL_PAYOUT_MESSAGE
    with pytest.raises(stripe.InvalidRequestError):
        client.v1.balance_transactions.list(params={"payout": "po_nope"})


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
def test_random_windows_and_limits_return_exactly_the_matching_set(
    sim_world: World, client_for: ClientMaker, data: st.DataObject
) -> None:
    bts = history(sim_world, ALPHA)
    instants = sorted({t["created"] for t in bts})
    pick = st.sampled_from(instants).flatmap(lambda c: st.sampled_from([c - 1, c, c + 1]))
    created: dict[str, int] = {}
    for op in data.draw(st.sets(st.sampled_from(["gt", "gte", "lt", "lte"]), max_size=2)):
        created[op] = data.draw(pick)
    limit = data.draw(st.integers(4, 100))
    params: dict[str, Any] = {"limit": limit}
    if created:
        params["created"] = created
    typ = data.draw(st.sampled_from([None, "charge", "payout", "refund"]))
    cur = data.draw(st.sampled_from([None, "usd", "eur"]))
    if typ:
        params["type"] = typ
    if cur:
        params["currency"] = cur

    def keep(t: dict[str, Any]) -> bool:
        c = t["created"]
        return (
            ("gt" not in created or c > created["gt"])
            and ("gte" not in created or c >= created["gte"])
            and ("lt" not in created or c < created["lt"])
            and ("lte" not in created or c <= created["lte"])
            and (typ is None or t["type"] == typ)
            and (cur is None or t["currency"] == cur)
        )

    want = [t["id"] for t in newest_first(bts) if keep(t)]
    assert sdk_list(client_for(ALPHA), params) == want


# --- expand and retrieve ------------------------------------------------------------------------


def test_expand_source_in_sdk_and_bracket_forms(served: Simulator, sim_world: World) -> None:
    h = sim_world.accounts[ALPHA].history
    for form in ("expand[]=data.source", "expand[0]=data.source"):
        status, _, body = raw(served, f"/v1/balance_transactions?limit=50&{form}", key=KEYS[ALPHA])
        assert status == 200
        assert_valid_list(body)
        for bt in body["data"]:
            original = next(t for t in h.transactions if t["id"] == bt["id"])
            if original["source"] is None:
                assert bt["source"] is None
            elif original["source"] in h.objects:
                assert bt["source"]["id"] == original["source"]
                assert bt["source"]["object"] == h.objects[original["source"]]["object"]
    status, _, body = raw(
        served,
        "/v1/balance_transactions?limit=100&type=charge&expand[]=data.source.customer",
        key=KEYS[ALPHA],
    )
    customers = [bt["source"]["customer"] for bt in body["data"] if bt["source"]["customer"]]
    assert customers and all(c["object"] == "customer" and c["email"] for c in customers)
    status, _, body = raw(served, "/v1/balance_transactions?expand[]=data.nope", key=KEYS[ALPHA])
    assert status == 400 and "cannot be expanded" in body["error"]["message"]


def test_sdk_expand_and_retrieve(sim_world: World, client_for: ClientMaker) -> None:
    client = client_for(ALPHA)
    page = client.v1.balance_transactions.list(
        params={"type": "charge", "limit": 5, "expand": ["data.source"]}
    )
    charge = page.data[0].source
    assert charge.object == "charge" and charge.billing_details.email
    bt = client.v1.balance_transactions.retrieve(page.data[0].id, params={"expand": ["source"]})
    assert bt.source.id == charge.id
    assert_valid_bt(to_dict(bt))
    plain = client.v1.balance_transactions.retrieve(page.data[0].id)
    assert plain.source == charge.id
    assert client.v1.charges.retrieve(charge.id).amount == charge.amount
    payout_bt = next(t for t in history(sim_world, ALPHA) if t["type"] == "payout")
    payout = client.v1.payouts.retrieve(payout_bt["source"])
    assert payout.balance_transaction == payout_bt["id"] and payout.object == "payout"


def test_retrieve_unknown_ids_are_404(served: Simulator, client_for: ClientMaker) -> None:
    client = client_for(ALPHA)
    with pytest.raises(stripe.InvalidRequestError) as info:
        client.v1.balance_transactions.retrieve("txn_nope")
    err = info.value
    assert err.http_status == 404 and err.code == "resource_missing" and err.param == "id"
    assert err.user_message == "No such balance transaction: 'txn_nope'"
    with pytest.raises(stripe.InvalidRequestError) as info:
        client.v1.charges.retrieve("ch_nope")
    assert info.value.http_status == 404
    other = history(make_world(), BETA)[0]["id"]  # another account's BT is not visible
    with pytest.raises(stripe.InvalidRequestError):
        client.v1.balance_transactions.retrieve(other)
    status, _, body = raw(served, "/v1/balance/history/txn_nope", key=KEYS[ALPHA])
    assert status == 404 and body["error"]["code"] == "resource_missing"


def test_legacy_alias_and_unknown_routes(served: Simulator, sim_world: World) -> None:
    status, _, body = raw(served, "/v1/balance/history?limit=3", key=KEYS[ALPHA])
    assert status == 200 and body["url"] == "/v1/balance_transactions"
    assert [b["id"] for b in body["data"]] == [
        t["id"] for t in newest_first(history(sim_world, ALPHA))[:3]
    ]
    status, _, body = raw(served, "/v1/nothing_here", key=KEYS[ALPHA])
    assert status == 404
    assert body["error"]["message"].startswith("Unrecognized request URL (GET: /v1/nothing_here)")
    assert body["error"]["type"] == "invalid_request_error"
    status, _, body = raw(served, "/v1/balance_transactions?bogus=1", key=KEYS[ALPHA])
    assert status == 400 and body["error"]["param"] == "bogus"


# --- auth and Connect ---------------------------------------------------------------------------


def test_missing_and_bad_keys_are_401(served: Simulator, client_for: ClientMaker) -> None:
    status, headers, body = raw(served, "/v1/balance")
    assert status == 401
    assert body == {"error": {"message": NO_KEY_MESSAGE, "type": "invalid_request_error"}}
    assert headers["Request-Id"].startswith("req_")
    with pytest.raises(stripe.AuthenticationError) as info:
        client_for("sk_test_not_a_known_key_9876").v1.balance.retrieve()
    assert info.value.http_status == 401
    assert info.value.user_message == "Invalid API Key provided: sk_test_****9876"
    assert "not_a_known" not in str(info.value)
    with pytest.raises(stripe.AuthenticationError):
        stripe.StripeClient("", base_addresses={"api": served.url}).v1.balance.retrieve()


def test_basic_auth_is_accepted(served: Simulator) -> None:
    token = base64.b64encode(f"{KEYS[BETA]}:".encode()).decode()
    status, _, body = raw(served, "/v1/account", headers={"Authorization": f"Basic {token}"})
    assert status == 200 and body["id"] == BETA


def test_connect_through_the_platform_key(sim_world: World, client_for: ClientMaker) -> None:
    platform = client_for(PLATFORM)
    assert platform.v1.accounts.retrieve_current().id == PLATFORM
    child = platform.v1.accounts.retrieve_current(options={"stripe_account": CHILD})
    assert child.id == CHILD
    ids = sdk_list(platform, PLAIN, stripe_account=CHILD)
    assert ids == [t["id"] for t in newest_first(history(sim_world, CHILD))]
    own = sdk_list(platform, PLAIN, stripe_account=PLATFORM)
    assert own == [t["id"] for t in newest_first(history(sim_world, PLATFORM))]


@pytest.mark.parametrize(
    ("key_of", "target"),
    [(ALPHA, BETA), (PLATFORM, ALPHA), (ALPHA, CHILD), (PLATFORM, "acct_1DoesNotExist00")],
)
def test_foreign_stripe_account_is_403(client_for: ClientMaker, key_of: str, target: str) -> None:
    with pytest.raises(stripe.PermissionError) as info:
        client_for(key_of).v1.balance_transactions.list(options={"stripe_account": target})
    err = info.value
    assert err.http_status == 403 and err.error.code == "account_invalid"
    assert f"does not have access to account '{target}'" in err.user_message
    assert KEYS[key_of] not in err.user_message and "****" in err.user_message


def test_requests_are_logged_with_the_acting_account(
    served: Simulator, client_for: ClientMaker
) -> None:
    before = served.request_count
    client_for(PLATFORM).v1.balance.retrieve(options={"stripe_account": CHILD})
    assert served.request_count == before + 1
    assert ("GET", "/v1/balance", CHILD) in served.requests


# --- balance and headers ------------------------------------------------------------------------


@pytest.mark.parametrize("account", [ALPHA, BETA, CHILD])
def test_balance_endpoint_matches_the_history(
    sim_world: World, served: Simulator, account: str
) -> None:
    key = KEYS.get(account, KEYS[PLATFORM])
    status, headers, body = raw(served, "/v1/balance", key=key, headers={"Stripe-Account": account})
    assert status == 200 and headers["Content-Type"] == "application/json"
    assert body == balance(sim_world.accounts[account].history, NOW)
    totals: Counter[str] = Counter()
    for t in history(sim_world, account):
        totals[t["currency"]] += t["net"]
    pending = {p["currency"]: p["amount"] for p in body["pending"]}
    for item in body["available"]:
        assert item["amount"] + pending[item["currency"]] == totals[item["currency"]]


def test_status_follows_the_clock_and_future_bts_are_hidden() -> None:
    world = make_world()
    bts = history(world, ALPHA)
    middle = bts[len(bts) // 2]["created"]
    with Simulator(world, now=lambda: middle) as sim:
        client = stripe.StripeClient(KEYS[ALPHA], base_addresses={"api": sim.url})
        rows = [
            to_dict(b) for b in client.v1.balance_transactions.list(params=PLAIN).auto_paging_iter()
        ]
        assert [r["id"] for r in rows] == [
            t["id"] for t in newest_first(bts) if t["created"] <= middle
        ]
        for r in rows:
            assert r["status"] == ("available" if r["available_on"] <= middle else "pending")
        assert any(r["status"] == "pending" for r in rows)
        later = next(t for t in bts if t["created"] > middle)
        with pytest.raises(stripe.InvalidRequestError):
            client.v1.balance_transactions.retrieve(later["id"])


def test_responses_validate_against_the_schema(served: Simulator) -> None:
    for account in (ALPHA, BETA, CHILD):
        key = KEYS.get(account, KEYS[PLATFORM])
        for query in ("limit=100", "limit=100&expand[]=data.source", "limit=100&type=adjustment"):
            status, headers, body = raw(
                served,
                f"/v1/balance_transactions?{query}",
                key=key,
                headers={"Stripe-Account": account},
            )
            assert status == 200 and headers["Request-Id"].startswith("req_")
            assert_valid_list(body)


# --- faults, rate limits, latency ---------------------------------------------------------------


def faulty(plan: str, **kw: Any) -> Simulator:
    return Simulator(make_world(), faults=FaultPlan.parse(plan), **kw)


def test_fault_plan_parsing() -> None:
    plan = FaultPlan.parse("429@3,500@5,drop@7,429lock@9,409@10-11,rate=0.5,seed=4,kinds=503")
    assert plan.at == {3: "429", 5: "500", 7: "drop", 9: "429lock", 10: "409", 11: "409"}
    assert plan.fault_for(1) in (None, "503")
    drawn = [plan.fault_for(n) for n in range(100, 200)]
    assert drawn == [
        FaultPlan.parse("rate=0.5,seed=4,kinds=503").fault_for(n) for n in range(100, 200)
    ]
    assert 20 < drawn.count("503") < 80
    for bad in ("boom@1", "500@0", "500", "rate=2", "speed=1"):
        with pytest.raises(ValueError):
            FaultPlan.parse(bad)


def test_plain_429_is_a_rate_limit_error_and_not_retried() -> None:
    with faulty("429@1") as sim:
        client = stripe.StripeClient(
            KEYS[ALPHA], base_addresses={"api": sim.url}, max_network_retries=2
        )
        with pytest.raises(stripe.RateLimitError) as info:
            client.v1.balance.retrieve()
        assert info.value.http_status == 429 and info.value.error.code == "rate_limit"
        assert "Stripe-Should-Retry" not in (info.value.headers or {})
        assert sim.request_count == 1
        assert client.v1.balance.retrieve().object == "balance"


def test_500_and_lock_timeout_are_retried_by_the_sdk() -> None:
    with faulty("500@1,429lock@2,409@3") as sim:
        retrying = stripe.StripeClient(
            KEYS[ALPHA], base_addresses={"api": sim.url}, max_network_retries=3
        )
        assert retrying.v1.accounts.retrieve_current().id == ALPHA
        assert sim.request_count == 4
    with faulty("500@1") as sim:
        once = stripe.StripeClient(KEYS[ALPHA], base_addresses={"api": sim.url})
        with pytest.raises(stripe.APIError) as info:
            once.v1.balance.retrieve()
        assert info.value.http_status == 500
    with faulty("429lock@1") as sim:
        status, headers, body = raw(sim, "/v1/balance", key=KEYS[ALPHA])
        assert status == 429 and headers["Stripe-Should-Retry"] == "true"
        assert body["error"]["code"] == "lock_timeout"


def test_dropped_connection_is_an_api_connection_error() -> None:
    with faulty("drop@1") as sim:
        client = stripe.StripeClient(KEYS[ALPHA], base_addresses={"api": sim.url})
        with pytest.raises(stripe.APIConnectionError):
            client.v1.balance.retrieve()
        assert client.v1.balance.retrieve().object == "balance"
        assert sim.request_count == 2


def test_rate_limit_per_key() -> None:
    with Simulator(make_world(), rate_limit=2.0) as sim:
        statuses = [raw(sim, "/v1/balance", key=KEYS[ALPHA])[0] for _ in range(8)]
        assert statuses[:2] == [200, 200] and 429 in statuses
        assert raw(sim, "/v1/balance", key=KEYS[BETA])[0] == 200  # another key, another bucket
        status, headers, body = raw(sim, "/v1/balance", key=KEYS[ALPHA])
        assert status == 429 and "Stripe-Should-Retry" not in headers
        assert body["error"]["code"] == "rate_limit" and body["error"]["message"].startswith(
            "Request rate limit exceeded"
        )


def test_latency_is_applied_per_request() -> None:
    import time

    with Simulator(make_world(), latency=0.05) as sim:
        started = time.monotonic()
        raw(sim, "/v1/balance", key=KEYS[ALPHA])
        assert time.monotonic() - started >= 0.05


# --- admin routes and concurrency ---------------------------------------------------------------


def test_advance_adds_newer_activity_visible_to_the_next_list() -> None:
    world = make_world()
    with Simulator(world) as sim:
        client = stripe.StripeClient(KEYS[ALPHA], base_addresses={"api": sim.url})
        before = sdk_list(client, PLAIN)
        status, _, body = raw(sim, f"/_simulator/advance?account={ALPHA}&count=25", method="POST")
        assert status == 200 and body["added"] == 25
        after = sdk_list(client, PLAIN)
        added = history(world, ALPHA)[-25:]
        assert [t["id"] for t in added] == body["ids"]
        assert after == [t["id"] for t in newest_first(added)] + before
        status, _, health = raw(sim, "/_simulator/health")
        assert status == 200 and health["status"] == "ok" and ALPHA in health["accounts"]
        status, _, body = raw(sim, "/_simulator/advance?account=acct_nope&count=1", method="POST")
        assert status == 404


def test_concurrent_activity_and_paging_stay_consistent() -> None:
    world = make_world()
    with Simulator(world) as sim:
        errors: list[BaseException] = []

        def add() -> None:
            try:
                for _ in range(10):
                    world.add_activity(ALPHA, 5)
            except BaseException as exc:  # pragma: no cover - reported below
                errors.append(exc)

        writer = threading.Thread(target=add)
        writer.start()
        client = stripe.StripeClient(KEYS[ALPHA], base_addresses={"api": sim.url})
        for _ in range(3):
            ids = sdk_list(client, {"limit": 100, "created": {"lte": NOW}})
            assert len(ids) == len(set(ids))
        writer.join()
        assert not errors
        assert sdk_list(client, PLAIN) == [t["id"] for t in newest_first(history(world, ALPHA))]


# --- scale ----------------------------------------------------------------------------------------


def test_a_100k_history_pages_from_the_index() -> None:
    big = generate_history(
        account_id="acct_1SimTestBig00005",
        seed=99,
        size=100_000,
        start=dt.date(2024, 1, 1),
        end=dt.date(2025, 12, 31),
        currencies=("usd", "eur", "jpy"),
    )
    account = SimAccount(
        id="acct_1SimTestBig00005", name="Big", history=big, key="sk_test_big_0001"
    )
    bts = newest_first(big.transactions)
    with Simulator(World([account])) as sim:
        client = stripe.StripeClient("sk_test_big_0001", base_addresses={"api": sim.url})
        page = client.v1.balance_transactions.list(params={"limit": 100})
        assert [b.id for b in page.data] == [t["id"] for t in bts[:100]]
        lo = bts[len(bts) // 2]["created"] - 86400 * 3
        window = {"gte": lo, "lt": lo + 86400}
        want = [t["id"] for t in bts if lo <= t["created"] < lo + 86400]
        assert 50 < len(want) < 500
        assert sdk_list(client, {"limit": 100, "created": window}) == want
        deep = client.v1.balance_transactions.list(
            params={"limit": 100, "starting_after": bts[90_000]["id"]}
        )
        assert [b.id for b in deep.data] == [t["id"] for t in bts[90_001:90_101]]
        assert sim.request_count < 10


def test_unhappy_fault_kinds_are_only_drawn_when_asked() -> None:
    plan = FaultPlan.parse("repeat_page@2-4,401@5,403@6,404html@7,html@8,badjson@9")
    assert plan.at[3] == "repeat_page" and plan.at[9] == "badjson"
    drawn = {FaultPlan.parse("rate=1,seed=3").fault_for(n) for n in range(1, 300)}
    assert drawn <= {"429", "429lock", "500", "503", "409", "drop"}


def test_repeat_page_ignores_the_cursor_and_claims_more() -> None:
    with faulty("repeat_page@2") as sim:
        first = raw(sim, "/v1/balance_transactions?limit=3", key=KEYS[ALPHA])
        cursor = first[2]["data"][-1]["id"]
        again = raw(
            sim, f"/v1/balance_transactions?limit=3&starting_after={cursor}", key=KEYS[ALPHA]
        )
        moved = raw(
            sim, f"/v1/balance_transactions?limit=3&starting_after={cursor}", key=KEYS[ALPHA]
        )
    assert again[0] == 200 and again[2]["has_more"] is True
    assert [b["id"] for b in again[2]["data"]] == [b["id"] for b in first[2]["data"]]
    assert cursor not in [b["id"] for b in moved[2]["data"]]  # request 3: served normally


def test_html_faults_answer_like_a_server_that_is_not_stripe() -> None:
    with faulty("404html@1,html@2") as sim:
        for status in (404, 200):
            request = urllib.request.Request(sim.url + "/v1/account")
            try:
                with urllib.request.urlopen(request, timeout=10) as response:
                    got, kind = response.status, response.headers["Content-Type"]
            except urllib.error.HTTPError as err:
                got, kind = err.code, err.headers["Content-Type"]
            assert (got, kind) == (status, "text/html")


def test_rate_limit_holds_under_concurrent_load() -> None:
    """Hammered from many threads, the simulator admits no more than the limit (plus the
    one-second bucket) and answers the rest with Stripe's 429."""
    import time
    from concurrent.futures import ThreadPoolExecutor

    rate = 10.0
    with Simulator(make_world(), rate_limit=rate) as sim:
        started = time.monotonic()

        def hammer(_: int) -> list[int]:
            out = []
            while time.monotonic() - started < 1.5:
                out.append(raw(sim, "/v1/balance", key=KEYS[ALPHA])[0])
            return out

        with ThreadPoolExecutor(6) as pool:
            statuses = [s for chunk in pool.map(hammer, range(6)) for s in chunk]
        elapsed = time.monotonic() - started
    ok = statuses.count(200)
    assert set(statuses) == {200, 429}
    assert ok <= rate * elapsed + rate + 1
    assert ok >= rate  # the bucket starts full
