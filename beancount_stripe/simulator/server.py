"""A local HTTP stand-in for the parts of the Stripe API this project uses.

Routes, auth, Connect, query parsing, paging, errors and headers follow STRIPE-FACTS §1, §2
and §8, so the official ``stripe`` SDK talks to it exactly as to api.stripe.com (point
``StripeClient(base_addresses={"api": sim.url})`` at it). Latency, a per-key rate limit and
scripted faults make the unhappy paths testable. Stdlib only; loopback only.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import datetime as dt
import json
import socket
import threading
import time
from collections.abc import Callable, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import orjson

from .generator import balance_object
from .index import Query, UnknownCursor
from .protocol import (  # noqa: F401  (re-exported: tests and the package import them here)
    _EXPAND_KEY,
    _LIST_PARAMS,
    _LOG_LIMIT,
    _OBJECT_ROUTES,
    _RANGE,
    _RAW_FAULTS,
    API_VERSION,
    MANUAL_PAYOUT_MESSAGE,
    NO_KEY_MESSAGE,
    OBJECT_PERMISSIONS,
    PERMISSION_IMPLIES,
    RATE_LIMIT_MESSAGE,
    SOURCE_PERMISSION,
    ApiError,
    FaultPlan,
    _fault_error,
    _int,
    _late_params,
    _request_id,
    granted,
    mask_key,
)
from .world import SimAccount, World


class Simulator:
    """The HTTP server; use as a context manager or call ``start()`` / ``stop()``."""

    def __init__(
        self,
        world: World,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        latency: float = 0.0,
        rate_limit: float | None = None,
        faults: FaultPlan | None = None,
        now: Callable[[], int] | None = None,
    ) -> None:
        self.world = world
        self.latency = latency
        self.rate_limit = rate_limit
        self.faults = faults or FaultPlan()
        self.now: Callable[[], int] = now or (lambda: int(time.time()))
        self.requests: list[tuple[str, str, str | None]] = []
        self.request_details: list[dict[str, Any]] = []
        self._count = 0
        self._lock = threading.Lock()
        self._buckets: dict[str, tuple[float, float]] = {}
        server_class = _Server6 if ":" in host else _Server
        self._server = server_class((host, port), _Handler)
        self._server.simulator = self
        self._thread: threading.Thread | None = None

    # lifecycle

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://[{host}]:{port}" if ":" in str(host) else f"http://{host}:{port}"

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def request_count(self) -> int:
        """API requests received so far (admin routes excluded)."""
        return self._count

    def start(self) -> Simulator:
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._server.serve_forever,
                kwargs={"poll_interval": 0.05},
                name="stripe-simulator",
                daemon=True,
            )
            self._thread.start()
        return self

    def serve_forever(self) -> None:
        """Serve in the calling thread until interrupted (used by the CLI)."""
        try:
            self._server.serve_forever(poll_interval=0.2)
        finally:
            self._server.server_close()

    def stop(self) -> None:
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join(timeout=5)
            self._thread = None
        self._server.server_close()

    def __enter__(self) -> Simulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # bookkeeping used by the handler

    def _next_request(self) -> int:
        with self._lock:
            self._count += 1
            return self._count

    def _log(self, method: str, path: str, account: str | None, query: str, status: int) -> None:
        with self._lock:
            if len(self.requests) >= _LOG_LIMIT:  # a long-running demo must not grow forever
                del self.requests[: _LOG_LIMIT // 2]
                del self.request_details[: _LOG_LIMIT // 2]
            self.requests.append((method, path, account))
            self.request_details.append(
                {
                    "method": method,
                    "path": path,
                    "account": account,
                    "query": query,
                    "status": status,
                }
            )

    def _take_token(self, key: str) -> bool:
        """A token bucket of ``rate_limit`` per second, holding at most one second's worth."""
        if not self.rate_limit:
            return True
        rate = float(self.rate_limit)
        capacity = max(1.0, rate)
        with self._lock:
            now = time.monotonic()
            tokens, last = self._buckets.get(key, (capacity, now))
            tokens = min(capacity, tokens + (now - last) * rate)
            if tokens < 1.0:
                self._buckets[key] = (tokens, now)
                return False
            self._buckets[key] = (tokens - 1.0, now)
            return True


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    simulator: Simulator


class _Server6(_Server):
    address_family = socket.AF_INET6


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "stripe-simulator"
    disable_nagle_algorithm = True  # headers and body go out at once, no 40 ms delayed-ACK stall
    timeout = 60
    server: _Server

    def version_string(self) -> str:
        return self.server_version

    def log_message(self, format: str, *args: Any) -> None:
        return  # tests and the CLI stay quiet; the request log is on the Simulator

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    def do_PATCH(self) -> None:
        self._dispatch("PATCH")

    # plumbing

    def _dispatch(self, method: str) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        parts = urlsplit(self.path)
        path, query = parts.path, parts.query
        sim = self.server.simulator
        if path.startswith("/_simulator/"):
            self._admin(method, path, query)
            return
        n = sim._next_request()
        if sim.latency > 0:
            time.sleep(sim.latency)
        fault = sim.faults.fault_for(n)
        account_id: str | None = None
        status = 200
        try:
            if fault == "drop":
                sim._log(method, path, None, query, 0)
                self._drop()
                return
            if fault in _RAW_FAULTS:
                status, content_type, payload = _RAW_FAULTS[fault]
                sim._log(method, path, None, query, status)
                self._send_raw(status, content_type, payload)
                return
            if fault is not None and fault != "repeat_page":
                raise _fault_error(fault)
            key_account, key = self._authenticate()
            account = self._acting_account(key_account, key)
            account_id = account.id
            # One bucket per key and account acted on (each connected account has its own).
            if not sim._take_token(f"{key}|{account.id}"):
                raise ApiError(429, RATE_LIMIT_MESSAGE, code="rate_limit")
            permissions = sim.world.permissions_of(key)
            api = _Api(
                sim,
                account,
                key_account,
                key,
                permissions,
                repeat_page=fault == "repeat_page",
            )
            body = api.route(method, path, query)
        except ApiError as err:
            status = err.status
            sim._log(method, path, account_id, query, status)
            self._send(status, {"error": err.body}, err.headers, n)
            return
        sim._log(method, path, account_id, query, status)
        self._send(status, body, {}, n)

    def _authenticate(self) -> tuple[SimAccount, str]:
        header = self.headers.get("Authorization", "").strip()
        key = ""
        scheme, _, value = header.partition(" ")
        if scheme.lower() == "bearer":
            key = value.strip()
        elif scheme.lower() == "basic":
            try:
                key = base64.b64decode(value.strip()).decode("utf-8").partition(":")[0]
            except (binascii.Error, UnicodeDecodeError):
                key = ""
        if not key:
            raise ApiError(401, NO_KEY_MESSAGE)
        account = self.server.simulator.world.account_for_key(key)
        if account is None:
            raise ApiError(401, f"Invalid API Key provided: {mask_key(key)}")
        return account, key

    def _acting_account(self, key_account: SimAccount, key: str) -> SimAccount:
        target = self.headers.get("Stripe-Account")
        if not target:
            return key_account
        target = target.strip()
        world = self.server.simulator.world
        account = world.account(target)
        if account is None or not world.may_act_for(key_account, target):
            raise ApiError(
                403,
                f"The provided key '{mask_key(key)}' does not have access to account "
                f"'{target}' (or that account does not exist). Application access may have been "
                "revoked.",
                code="account_invalid",
            )
        return account

    def _send(self, status: int, body: Any, headers: dict[str, str], n: int) -> None:
        try:  # Stripe's own layout (2-space indent); orjson: a tenth of json's time per page
            payload = orjson.dumps(body, option=orjson.OPT_INDENT_2) + b"\n"
        except TypeError:  # what orjson refuses (e.g. ints beyond 64 bits), json writes
            payload = (json.dumps(body, indent=2) + "\n").encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.send_header("Request-Id", _request_id(n))
        self.send_header("Stripe-Version", self.headers.get("Stripe-Version") or API_VERSION)
        self.send_header("Cache-Control", "no-cache, no-store")
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(payload)

    def _send_raw(self, status: int, content_type: str, payload: bytes) -> None:
        """A response that is not Stripe's JSON (what a wrong base URL answers)."""
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def _drop(self) -> None:
        """Close the connection without any response, like a network failure."""
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)

    # admin routes (no auth; loopback only)

    def _admin(self, method: str, path: str, query: str) -> None:
        sim = self.server.simulator
        params = dict(parse_qsl(query, keep_blank_values=True))
        try:
            if method == "GET" and path == "/_simulator/health":
                body: Any = {
                    "status": "ok",
                    "accounts": sorted(sim.world.accounts),
                    "requests": sim.request_count,
                }
            elif method == "POST" and path == "/_simulator/advance":
                body = self._advance(params)
            elif method == "POST" and path == "/_simulator/late":
                body = self._late(params)
            elif method == "POST" and path == "/_simulator/reveal":
                body = self._reveal(params)
            else:
                raise ApiError(404, f"Unrecognized simulator URL ({method}: {path})")
        except ApiError as err:
            self._send(err.status, {"error": err.body}, {}, 0)
            return
        self._send(200, body, {}, 0)

    def _late(self, params: dict[str, str]) -> dict[str, Any]:
        """Back-date a transaction into a month clients may have fetched completely already."""
        sim = self.server.simulator
        account_id = params.get("account", "")
        if sim.world.account(account_id) is None:
            raise ApiError(404, f"No such account: '{account_id}'", param="account")
        created, amount, cur = _late_params(params)
        listed = params.get("listed", "true").lower() not in ("0", "false", "no")
        bt = sim.world.add_late(account_id, created, amount, cur, listed=listed)
        return {"account": account_id, "id": bt["id"], "created": created, "listed": listed}

    def _reveal(self, params: dict[str, str]) -> dict[str, Any]:
        sim = self.server.simulator
        account_id = params.get("account", "")
        if sim.world.account(account_id) is None:
            raise ApiError(404, f"No such account: '{account_id}'", param="account")
        return {"account": account_id, "ids": [bt["id"] for bt in sim.world.reveal(account_id)]}

    def _advance(self, params: dict[str, str]) -> dict[str, Any]:
        sim = self.server.simulator
        account_id = params.get("account", "")
        account = sim.world.account(account_id)
        if account is None:
            raise ApiError(404, f"No such account: '{account_id}'", param="account")
        count = _int(params.get("count", "1"), "count")
        if not 0 <= count <= 100_000:
            raise ApiError(400, "count must be between 0 and 100000", param="count")
        now = sim.now()
        newest = account.index.newest_created()
        until = None
        if "until" in params:
            until = dt.datetime.fromtimestamp(_int(params["until"], "until"), dt.UTC)
        elif newest is None or now > newest:
            until = dt.datetime.fromtimestamp(now, dt.UTC)
        try:
            new = sim.world.add_activity(account_id, count, until)
        except ValueError as exc:
            raise ApiError(400, str(exc), param="until") from None
        return {
            "account": account_id,
            "added": len(new),
            "ids": [bt["id"] for bt in new],
            "newest_created": account.index.newest_created(),
        }


class _Api:
    """One authenticated request against one account (``account`` is the acting account)."""

    def __init__(
        self,
        sim: Simulator,
        account: SimAccount,
        key_account: SimAccount,
        key: str = "",
        permissions: frozenset[str] | None = None,
        *,
        repeat_page: bool = False,
    ) -> None:
        self.sim = sim
        self.account = account
        self.key_account = key_account
        self.now = sim.now()
        self.repeat_page = repeat_page  # the ``repeat_page`` fault: ignore the cursor
        self.key = key
        self.granted = None if permissions is None else granted(permissions)

    def _require(self, permission: str | None) -> None:
        """403 as Stripe answers a restricted key without ``permission`` (the key masked)."""
        if permission is None or self.granted is None or permission in self.granted:
            return
        raise ApiError(
            403,
            f"The provided key '{mask_key(self.key)}' does not have the required permissions "
            f"for this endpoint on account '{self.account.id}'. Having the '{permission}' "
            "permission would allow this request to continue.",
        )

    def _require_expands(self, expands: list[str]) -> None:
        if any("source" in p.split(".") for p in expands):
            self._require(SOURCE_PERMISSION)

    def route(self, method: str, path: str, query: str) -> Any:
        params = parse_qsl(query, keep_blank_values=True)
        segments = [s for s in path.split("/") if s]
        if method == "GET" and segments[:1] == ["v1"]:
            rest = segments[1:]
            if rest == ["account"]:
                self._require("rak_connected_account_read")
                return self._plain(params, self.account.account_object())
            if rest == ["balance"]:
                self._require("rak_balance_read")
                return self._plain(params, self._balance())
            if rest and (rest[0] == "balance_transactions" or rest[:2] == ["balance", "history"]):
                self._require("rak_balance_read")
            if rest in (["balance_transactions"], ["balance", "history"]):
                return self._list(params)
            if len(rest) == 2 and rest[0] == "balance_transactions":
                return self._retrieve_bt(rest[1], params)
            if len(rest) == 3 and rest[:2] == ["balance", "history"]:
                return self._retrieve_bt(rest[2], params)
            if rest == ["accounts"] and not self._header_account():
                self._require("rak_connected_account_read")
                return self._connected_accounts(params)
            if len(rest) == 1 and rest[0] in _OBJECT_ROUTES:
                self._require(OBJECT_PERMISSIONS.get(_OBJECT_ROUTES[rest[0]][0]))
                return self._list_objects(rest[0], params)
            if len(rest) == 2 and rest[0] in _OBJECT_ROUTES:
                self._require(OBJECT_PERMISSIONS.get(_OBJECT_ROUTES[rest[0]][0]))
                return self._retrieve_object(rest[0], rest[1], params)
        raise ApiError(
            404,
            f"Unrecognized request URL ({method}: {path}). Please see https://stripe.com/docs or "
            "we can help at https://support.stripe.com/.",
        )

    def _header_account(self) -> bool:
        return self.account is not self.key_account

    # params

    def _expands(self, params: list[tuple[str, str]], allowed: set[str]) -> list[str]:
        """Collect ``expand[]`` / ``expand[N]`` values; reject any other parameter."""
        expands = []
        for name, value in params:
            if _EXPAND_KEY.match(name):
                expands.append(value)
            elif name not in allowed and name.split("[", 1)[0] not in allowed:
                raise ApiError(400, f"Received unknown parameter: {name}", param=name)
        return expands

    def _plain(self, params: list[tuple[str, str]], obj: dict[str, Any]) -> dict[str, Any]:
        expands = self._expands(params, set())
        return self._expand_paths(dict(obj), expands)

    # objects

    def _lookup(self, object_id: str) -> dict[str, Any] | None:
        found = self.account.history.objects.get(object_id)
        if found is not None:
            return found
        bt = self.account.index.get(object_id)
        return self._render_bt(bt) if bt is not None else None

    def _expand_paths(self, obj: dict[str, Any], expands: list[str]) -> dict[str, Any]:
        for path in expands:
            parts = path.split(".")
            if len(parts) > 4 or not all(parts):
                raise ApiError(400, f"This property cannot be expanded ({path}).")
            self._expand(obj, parts, path, top=True)
        return obj

    def _expand(self, obj: dict[str, Any], parts: list[str], path: str, top: bool) -> None:
        name = parts[0]
        if name not in obj:
            if top:
                raise ApiError(400, f"This property cannot be expanded ({path}).")
            return  # polymorphic sources: not every source type has every field
        value = obj[name]
        if isinstance(value, str):
            target = self._lookup(value)
            if target is None:
                return
            self._require(OBJECT_PERMISSIONS.get(str(target.get("object"))))
            value = dict(target)
        elif value is not None and not isinstance(value, dict | list):
            if top:
                raise ApiError(400, f"This property cannot be expanded ({path}).")
            return
        if isinstance(value, dict) and len(parts) > 1:
            value = dict(value)
            self._expand(value, parts[1:], path, top=False)
        obj[name] = value

    def _render_bt(self, bt: dict[str, Any]) -> dict[str, Any]:
        out = dict(bt)
        out["status"] = "available" if bt["available_on"] <= self.now else "pending"
        return out

    def _retrieve_bt(self, bt_id: str, params: list[tuple[str, str]]) -> dict[str, Any]:
        expands = self._expands(params, set())
        with self.account.lock:
            bt = self.account.index.get(bt_id)
        if bt is None or bt["created"] > self.now:
            raise ApiError(
                404,
                f"No such balance transaction: '{bt_id}'",
                code="resource_missing",
                param="id",
            )
        for path in expands:
            if path.split(".")[0] not in ("source", "fee_details"):
                raise ApiError(400, f"This property cannot be expanded ({path}).")
        self._require_expands(expands)
        return self._expand_paths(self._render_bt(bt), expands)

    def _retrieve_object(
        self, segment: str, object_id: str, params: list[tuple[str, str]]
    ) -> dict[str, Any]:
        expands = self._expands(params, set())
        kind, noun = _OBJECT_ROUTES[segment]
        obj = self.account.history.objects.get(object_id)
        if obj is None or obj.get("object") != kind or obj.get("created", 0) > self.now:
            raise ApiError(
                404, f"No such {noun}: '{object_id}'", code="resource_missing", param="id"
            )
        return self._expand_paths(dict(obj), expands)

    def _list_objects(self, segment: str, params: list[tuple[str, str]]) -> dict[str, Any]:
        """``GET /v1/charges`` and the like: newest first, ``limit`` and ``starting_after``."""
        expands = self._expands(params, {"limit", "starting_after"})
        values = dict(params)
        limit = _int(values.get("limit", "10"), "limit")
        if not 1 <= limit <= 100:
            raise ApiError(400, "This value must be between 1 and 100.", param="limit")
        kind = _OBJECT_ROUTES[segment][0]
        rows = sorted(
            (
                o
                for o in self.account.history.objects.values()
                if o.get("object") == kind and o.get("created", 0) <= self.now
            ),
            key=lambda o: (-int(o.get("created", 0)), str(o["id"])),
        )
        after = values.get("starting_after")
        if after:
            ids = [o["id"] for o in rows]
            if after not in ids:
                raise ApiError(
                    400,
                    f"No such {kind}: '{after}'",
                    code="resource_missing",
                    param="starting_after",
                )
            rows = rows[ids.index(after) + 1 :]
        page = [self._expand_paths(dict(o), expands) for o in rows[:limit]]
        return {
            "object": "list",
            "url": f"/v1/{segment}",
            "has_more": len(rows) > limit,
            "data": page,
        }

    def _balance(self) -> dict[str, Any]:
        with self.account.lock:
            available, pending = self.account.index.balance_sums(self.now)
            currencies = self.account.index.currencies()
            for cur, extra in self.account.unlisted_balance.items():
                available[cur] = available.get(cur, 0) + extra
        return balance_object(currencies, available, pending)

    def _connected_accounts(self, params: list[tuple[str, str]]) -> dict[str, Any]:
        self._expands(params, {"limit", "starting_after", "ending_before", "created"})
        data = [self.sim.world.accounts[a].account_object() for a in sorted(self.account.connected)]
        return {"object": "list", "url": "/v1/accounts", "has_more": False, "data": data}

    # the list endpoint

    def _list(self, params: list[tuple[str, str]]) -> dict[str, Any]:
        expands = self._expands(params, _LIST_PARAMS)
        for path in expands:
            parts = path.split(".")
            if len(parts) < 2 or parts[0] != "data" or parts[1] not in ("source", "fee_details"):
                raise ApiError(400, f"This property cannot be expanded ({path}).")
        self._require_expands(expands)
        values: dict[str, str] = {}
        gte: int | None = None
        lte: int | None = None
        for name, value in params:
            if _EXPAND_KEY.match(name):
                continue
            if name == "created" or name.startswith("created["):
                op = name[8:-1] if name.startswith("created[") and name.endswith("]") else None
                if name != "created" and op not in _RANGE:
                    raise ApiError(400, f"Received unknown parameter: {name}", param=name)
                number = _int(value, name)
                low, high = {
                    None: (number, number),
                    "gt": (number + 1, None),
                    "gte": (number, None),
                    "lt": (None, number - 1),
                    "lte": (None, number),
                }[op]
                if low is not None:
                    gte = low if gte is None else max(gte, low)
                if high is not None:
                    lte = high if lte is None else min(lte, high)
                continue
            values[name] = value
        limit = 10
        if "limit" in values:
            limit = _int(values["limit"], "limit")
            if limit < 1:
                raise ApiError(400, "This value must be greater than or equal to 1.", param="limit")
            if limit > 100:
                raise ApiError(400, "This value must be less than or equal to 100.", param="limit")
        starting_after = values.get("starting_after") or None
        ending_before = values.get("ending_before") or None
        if self.repeat_page:
            starting_after = ending_before = None
        if starting_after and ending_before:
            raise ApiError(
                400,
                "You may only specify one of these parameters: ending_before, starting_after.",
            )
        members = None
        payout = values.get("payout") or None
        if payout is not None:
            members = self._payout_members(payout)
        source = values.get("source") or None
        envelope: dict[str, Any] = {"object": "list", "data": [], "has_more": False}
        envelope["url"] = "/v1/balance_transactions"
        if source is not None and source.startswith("dp_"):
            return envelope  # live Stripe returns nothing for a dispute id (STRIPE-FACTS §1.4)
        query = Query(
            gte=gte,
            lte=lte,
            type=values.get("type") or None,
            currency=(values.get("currency") or "").lower() or None,
            source=source,
            members=members,
            starting_after=starting_after,
            ending_before=ending_before,
            limit=limit,
        )
        try:
            with self.account.lock:
                rows, has_more = self.account.index.query(query, now=self.now)
        except UnknownCursor as exc:
            raise ApiError(
                400,
                f"No such balance transaction: '{exc.value}'",
                code="resource_missing",
                param=exc.param,
            ) from None
        data = []
        relative = [p.split(".", 1)[1] for p in expands]
        for bt in rows:
            data.append(self._expand_paths(self._render_bt(bt), relative))
        envelope["data"] = data
        envelope["has_more"] = has_more or (self.repeat_page and bool(data))
        return envelope

    def _payout_members(self, payout_id: str) -> Sequence[str]:
        payout = self.account.history.objects.get(payout_id)
        if payout is None or payout.get("object") != "payout" or payout["created"] > self.now:
            raise ApiError(
                400, f"No such payout: '{payout_id}'", code="resource_missing", param="payout"
            )
        if not payout.get("automatic"):
            raise ApiError(400, MANUAL_PAYOUT_MESSAGE, param="payout")
        return self.account.history.payout_members.get(payout_id, [])
