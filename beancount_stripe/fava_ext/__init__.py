"""The Stripe page in Fava: connection, review queue, payouts, Capital, charts, Sync now.

Enable it in a client's ledger::

    2024-01-01 custom "fava-extension" "beancount_stripe.fava_ext"
      "{'config': '../../config/clients.yaml', 'client': 'acme'}"

(one line in the ledger; the options are a Python dict literal, as Fava reads them).

``config`` is relative to the ledger file; ``client`` may be left out when the config has one
client, or one whose ``ledger`` is this file. The page is ``/<ledger-slug>/extension/Stripe/``.

A thin shell: the figures come from ``overview``, ``review`` and ``sync_state``, the sync from
``sync.sync_client``. Every POST carries the page's CSRF token (header ``X-CSRF-Token``) and is
refused under ``fava --read-only`` (Fava answers 401 itself; the buttons are not shown).
"""

from __future__ import annotations

import hmac
import secrets
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from beancount.core import data
from fava.beans.funcs import hash_entry
from fava.core.charts import DateAndBalanceWithBudget
from fava.core.file import get_entry_slice
from fava.core.inventory import SimpleCounterInventory
from fava.ext import FavaExtensionBase, extension_endpoint
from fava.helpers import FavaAPIError
from fava.internal_api import BarChart
from flask import current_app, jsonify, request
from flask.wrappers import Response

from beancount_stripe import (
    archive,
    categorize,
    ledger,
    overview,
    reconcile,
    review,
    rules,
    sync_state,
)
from beancount_stripe.config import ClientConfig, Config, load_config
from beancount_stripe.errors import BeancountStripeError
from beancount_stripe.stripe_api import mask_secrets

QUEUE_ROWS = 200  # rows of the review queue rendered at once
PAYOUT_ROWS = 100


@dataclass
class Snapshot:
    """Everything computed from the loaded entries, kept until Fava reloads the ledger."""

    queue: list[review.QueueItem]
    clearing: dict[str, Decimal]
    transit: dict[str, Decimal]
    payouts: list[overview.PayoutRow]
    months: dict[str, list[overview.Month]]
    accounts: list[str]
    reasons: dict[str, str] = field(default_factory=dict)
    summaries: list[overview.SummaryRow] = field(default_factory=list)  # summary modes


def _json_error(message: str, status: int) -> Response:
    response = jsonify({"ok": False, "error": mask_secrets(message)})
    response.status_code = status
    return response


class Stripe(FavaExtensionBase):
    """Fava extension: one client's Stripe connection and daily review loop."""

    report_title = "Stripe"
    has_js_module = True

    def __init__(self, ledger: Any, config: str | None = None) -> None:
        super().__init__(ledger, config)
        self.csrf_token = secrets.token_urlsafe(32)
        self.setup_error: str | None = None
        self.app_config: Config | None = None
        self.client: ClientConfig | None = None
        self._archive = review.ArchiveCache()
        self._payouts_cache: tuple[Any, dict[str, dict[str, Any]]] | None = None
        self._snapshot: tuple[Any, Snapshot] | None = None
        self._capital: tuple[Any, Any] | None = None
        self._job_lock = threading.Lock()
        self.job: dict[str, Any] = {"state": "idle"}
        self.suggest_min_count = 2  # option 'suggest_min_count', as `rules suggest --min-count`
        self._configure()

    # -- setup ------------------------------------------------------------------------------------

    def _configure(self) -> None:
        options = self.config if isinstance(self.config, Mapping) else {}
        self.suggest_min_count = max(1, int(options.get("suggest_min_count") or 2))
        base = Path(self.ledger.beancount_file_path).resolve().parent
        cfg = options.get("config") or "config/clients.yaml"
        path = Path(str(cfg))
        path = path if path.is_absolute() else base / path
        self._config_path = path
        self._config_mtime = _mtime(path)
        self.setup_error, self.client = None, None
        try:
            self.app_config = load_config(path)
        except BeancountStripeError as e:
            self.setup_error = mask_secrets(str(e))
            return
        wanted = options.get("client")
        me = Path(self.ledger.beancount_file_path).resolve()
        try:
            if wanted:
                self.client = self.app_config.client(str(wanted))
            else:
                mine = [c for c in self.app_config.clients if c.ledger.resolve() == me]
                if not mine and len(self.app_config.clients) == 1:
                    mine = list(self.app_config.clients)
                if not mine:
                    self.setup_error = (
                        f"{path}: no client's `ledger` is {me}; name the client in the "
                        "fava-extension options, e.g. {'config': '…', 'client': 'acme'}"
                    )
                    return
                self.client = mine[0]
        except BeancountStripeError as e:
            self.setup_error = mask_secrets(str(e))

    @property
    def read_only(self) -> bool:
        """Fava's --read-only installs a before_request hook named ``_read_only``."""
        hooks = current_app.before_request_funcs.get(None, [])
        return any(getattr(f, "__name__", "") == "_read_only" for f in hooks)

    # -- what the page shows ---------------------------------------------------------------------

    def _key(self) -> Any:
        return self.ledger.all_entries  # a new list on every load of the ledger

    def after_load_file(self) -> None:
        """Compute the page's figures with Fava's load, so a page render only reads caches.

        A changed configuration file is read again here (Fava keeps one extension instance).
        """
        if _mtime(self._config_path) != self._config_mtime:
            self._configure()
        if self.client is None:
            return
        try:
            snap = self.snapshot()
            self.reasons(snap.queue[:QUEUE_ROWS])
            self.payout_details(snap.payouts[:PAYOUT_ROWS])
            self.capital()
        except Exception:  # the page shows the error when it recomputes; Fava must load
            self._snapshot = None

    def snapshot(self) -> Snapshot:
        """The figures of the loaded ledger (one pass each), computed once per load."""
        key = self._key()
        if self._snapshot is not None and self._snapshot[0] is key:
            return self._snapshot[1]
        assert self.client is not None
        entries = self.ledger.all_entries
        acc = self.client.accounts
        bal = overview.balances(entries, {acc.clearing, acc.transit})
        payouts = overview.payouts(entries, self.client)
        opened = {e.account for e in entries if isinstance(e, data.Open)}
        closed = {e.account for e in entries if isinstance(e, data.Close)}
        snap = Snapshot(
            queue=review.queue(entries, self.client),
            clearing=bal[acc.clearing],
            transit={c: v for c, v in bal[acc.transit].items() if v},
            payouts=payouts,
            months=overview.monthly(entries, self.client),
            accounts=sorted(opened - closed),
            summaries=overview.summaries(entries, self.client),
        )
        self._snapshot = (key, snap)
        return snap

    def reasons(self, items: list[review.QueueItem]) -> dict[str, str]:
        """Why each shown entry is in the queue (cached with the snapshot)."""
        assert self.client is not None
        snap = self.snapshot()
        todo = {i.stripe_id: i.entry.date.strftime("%Y-%m") for i in items}
        todo = {k: v for k, v in todo.items() if k not in snap.reasons}
        if todo:
            try:
                ruleset = rules.ruleset_for(self.client)
            except BeancountStripeError as e:
                return {k: mask_secrets(str(e)) for k in todo}
            bts = self._archive.find(self.client, todo)
            for txn_id in todo:
                bt = bts.get(txn_id)
                snap.reasons[txn_id] = (
                    review.reason(self.client, bt, ruleset)
                    if bt is not None
                    else "not in the archive (run `beancount-stripe fetch`)"
                )
        return snap.reasons

    def payout_details(self, rows: list[overview.PayoutRow]) -> list[overview.PayoutRow]:
        """The shown payouts with Stripe's arrival date and status (from the archive, once)."""
        assert self.client is not None
        todo = [r for r in rows if r.stripe_status is None and r.arrival is None]
        if todo:
            overview.add_recorded_details(todo, self._recorded_payouts(), self.client.timezone)
            todo = [r for r in todo if r.stripe_status is None and r.arrival is None]
        if todo:
            wanted = {r.stripe_ids[0]: r.date.strftime("%Y-%m") for r in todo if r.stripe_ids}
            bts = self._archive.find(self.client, wanted)
            overview.add_stripe_details(todo, bts, self.client.timezone)
            for r in todo:
                if r.stripe_status is None:
                    r.stripe_status = ""  # looked up once; not in the archive
        return rows

    def _recorded_payouts(self) -> dict[str, dict[str, Any]]:
        """``archive/payouts.ndjson`` by payout id, read again only when the file changes."""
        assert self.client is not None
        path = archive.payouts_path(self.client.archive_dir)
        stamp = (path, _mtime(path))
        if self._payouts_cache is None or self._payouts_cache[0] != stamp:
            try:
                records = archive.read_payouts(self.client.archive_dir)
            except BeancountStripeError:
                records = {}
            self._payouts_cache = (stamp, records)
        return self._payouts_cache[1]

    @extension_endpoint("payout", ["GET"])
    def payout(self) -> Response:
        """The balance transactions one payout settled, with the account each is booked to."""
        if self.client is None:
            return _json_error(self.setup_error or "no client configured", 400)
        payout_id = str(request.args.get("id") or "")
        try:
            rows = reconcile.payout_transactions(
                self.client, payout_id, ledger_entries=self.ledger.all_entries
            )
        except BeancountStripeError as e:
            return _json_error(mask_secrets(str(e)), 404)
        return jsonify(
            {
                "ok": True,
                "transactions": [
                    {
                        "id": t.id,
                        "type": t.type,
                        "date": t.created.isoformat(),
                        "amount": f"{t.amount} {t.currency}",
                        "fee": f"{t.fee} {t.currency}",
                        "net": f"{t.net} {t.currency}",
                        "account": t.account or "not booked yet",
                        "description": t.description,
                    }
                    for t in rows
                ],
            }
        )

    def capital(self) -> overview.CapitalView | None:
        assert self.client is not None
        key = self._key()
        if self._capital is None or self._capital[0] is not key:
            try:
                view: Any = overview.capital_view(self.client)
            except BeancountStripeError as e:
                view = mask_secrets(str(e))
            self._capital = (key, view)
        return self._capital[1]

    def last_run(self) -> sync_state.SyncRun | None:
        assert self.client is not None
        return sync_state.last_run(self.client)

    def recent_runs(self) -> list[sync_state.SyncRun]:
        assert self.client is not None
        return list(reversed(sync_state.history(self.client)))[:5]

    def tie_out(self) -> list[dict[str, Any]]:
        """Per currency: the ledger's clearing balance against Stripe's at the last sync."""
        snap = self.snapshot()
        last = self.last_run()
        stripe = {k: Decimal(v) for k, v in (last.stripe_balance if last else {}).items()}
        waiting = {k: Decimal(v) for k, v in (last.waiting if last else {}).items()}
        rows = []
        for cur in sorted(set(snap.clearing) | set(stripe)):
            book = snap.clearing.get(cur, Decimal(0))
            theirs = stripe.get(cur)
            rows.append(
                {
                    "currency": cur,
                    "ledger": book,
                    "stripe": theirs,
                    # summary modes: what waits in the archive is Stripe's, not yet the ledger's
                    "diff": None if theirs is None else book + waiting.get(cur, 0) - theirs,
                }
            )
        return rows

    def charts(self) -> list[BarChart]:
        """Fava bar charts by month: gross volume, fees, refunds + disputes, payouts."""
        out = []
        months = self.snapshot().months
        for label, attr in (
            ("Gross volume", "gross"),
            ("Stripe fees", "fees"),
            ("Refunds and disputes", "refunds_disputes"),
            ("Payouts", "payouts"),
        ):
            points: dict[str, dict[str, Decimal]] = {}
            for cur, rows in months.items():
                for m in rows:
                    both = attr == "refunds_disputes"
                    value = m.refunds + m.disputes if both else getattr(m, attr)
                    points.setdefault(m.month, {})[cur] = value
            data_points = [
                DateAndBalanceWithBudget(
                    date=_month_date(month),
                    balance=SimpleCounterInventory(values),
                    account_balances={},
                    budgets={},
                )
                for month, values in sorted(points.items())
            ][-100:]
            out.append(BarChart(label, data_points))
        return out

    def firm(self) -> list[overview.FirmRow]:
        if self.app_config is None or len(self.app_config.clients) < 2:
            return []
        return overview.firm(self.app_config.clients)

    def ledger_url(self, client: ClientConfig) -> str | None:
        """The Stripe page of ``client`` when this Fava serves its ledger too."""
        try:
            by_slug = current_app.config["LEDGERS"].ledgers_by_slug
        except (KeyError, AttributeError):
            return None
        target = client.ledger.resolve()
        for slug, led in by_slug.items():
            if Path(led.beancount_file_path).resolve() == target:
                root = request.script_root or ""
                return f"{root}/{slug}/extension/Stripe/"
        return None

    def entry_hash(self, entry: data.Transaction) -> str:
        return hash_entry(entry)

    def rules_file(self) -> str | None:
        if self.client is None or not self.client.rules:
            return None
        return str(self.client.rules[0])

    # -- actions ---------------------------------------------------------------------------------

    def _refused(self) -> Response | None:
        """None when the POST may proceed; else the 4xx answer (nothing was changed)."""
        if self.read_only:
            return _json_error("Fava runs read-only: nothing can be changed here", 401)
        sent = request.headers.get("X-CSRF-Token") or request.form.get("csrf_token") or ""
        if not sent or not hmac.compare_digest(sent.encode(), self.csrf_token.encode()):
            return _json_error("missing or wrong CSRF token: reload the page and try again", 403)
        if self.client is None:
            return _json_error(self.setup_error or "no client configured", 400)
        return None

    def _body(self) -> dict[str, Any]:
        body = request.get_json(silent=True)
        if isinstance(body, dict):
            return body
        return dict(request.form)

    @extension_endpoint("sync", ["POST"])
    def sync(self) -> Response:
        """Start a sync of this client in the background (under the client's lock)."""
        refused = self._refused()
        if refused is not None:
            return refused
        assert self.client is not None
        with self._job_lock:
            if self.job.get("state") == "running":
                return _json_error("a sync of this client is already running", 409)
            self.job = {"state": "running", "started": sync_state.now_iso(), "message": ""}
        threading.Thread(
            target=self._run_sync, name=f"stripe-sync-{self.client.id}", daemon=True
        ).start()
        return jsonify({"ok": True, "job": self.job})

    def _run_sync(self) -> None:
        from beancount_stripe.sync import sync_client

        assert self.client is not None
        try:
            report = sync_client(self.client, via="fava")
        except BeancountStripeError as e:
            job = {"state": "error", "message": mask_secrets(str(e))}
        except Exception as e:  # show it on the page, never a traceback
            job = {"state": "error", "message": mask_secrets(f"{type(e).__name__}: {e}")}
        else:
            for path in report.changed_files:
                if path.suffix == ".beancount":
                    self.ledger.watcher.notify(path)
            job = {
                "state": "done",
                "message": f"{report.booked_count} new entr"
                f"{'y' if report.booked_count == 1 else 'ies'}, "
                f"{report.flagged} flagged for review",
                "added": report.booked_count,
                "warnings": [mask_secrets(w) for w in report.warnings],
            }
        with self._job_lock:
            self.job = {**self.job, **job, "finished": sync_state.now_iso()}

    @extension_endpoint("summary", ["GET"])
    def summary(self) -> Response:
        """The balance transactions a summary entry holds (``?ref=LINK_OR_KEY``): the archive's."""
        from beancount_stripe import summary as summary_mode

        assert self.client is not None
        try:
            what, bts = summary_mode.find(self.client, str(request.args.get("ref") or ""))
        except BeancountStripeError as e:
            return _json_error(str(e), 404)
        keys = ("id", "type", "created", "currency", "amount", "fee", "net", "description")
        rows = [{k: bt.get(k) for k in keys} | {"summary": bt.get("_summary")} for bt in bts]
        return jsonify({"ok": True, "what": what, "transactions": rows})

    @extension_endpoint("status", ["GET"])
    def status(self) -> Response:
        with self._job_lock:
            job = dict(self.job)
        return jsonify({"ok": True, "job": job})

    @extension_endpoint("check", ["POST"])
    def check(self) -> Response:
        """Does the key open the configured account? (Only ids go back, never the key.)"""
        refused = self._refused()
        if refused is not None:
            return refused
        assert self.client is not None
        from beancount_stripe.sync import gateway_for, verify_account

        try:
            acct = verify_account(gateway_for(self.client), self.client)
        except BeancountStripeError as e:
            return _json_error(str(e), 502 if e.exit_code == 4 else 400)
        return jsonify(
            {
                "ok": True,
                "message": f"the key from {self.client.key.describe()} opens "
                f"{acct.get('id')}" + (" (Connect)" if self.client.connect else ""),
            }
        )

    def _queued_entry(self, body: Mapping[str, Any]) -> data.Transaction:
        """The `!` Stripe entry named by ``entry_hash`` (a stale hash: the entry changed)."""
        try:
            entry = self.ledger.get_entry(str(body.get("entry_hash") or ""))
        except FavaAPIError:
            raise LookupError(
                "the entry changed or is gone since the page was loaded: reload the page"
            ) from None
        if (
            not isinstance(entry, data.Transaction)
            or entry.flag != "!"
            or not entry.meta.get("stripe_id")
        ):
            raise LookupError("not a Stripe entry awaiting review: reload the page")
        return entry

    def _save(self, entry: data.Transaction, edit: Any) -> Response:
        """Edit one entry's text through Fava, under the client's lock (no sync in between)."""
        assert self.client is not None
        try:
            with ledger.locked(self.client.ledger, timeout=10):
                source, sha = get_entry_slice(entry)
                new = edit(source)
                self.ledger.file.save_entry_slice(hash_entry(entry), new, sha)
        except BeancountStripeError as e:
            return _json_error(str(e), 409)
        except FavaAPIError as e:
            return _json_error(e.message, 409)
        return jsonify({"ok": True, "stripe_id": entry.meta.get("stripe_id")})

    @extension_endpoint("accept", ["POST"])
    def accept(self) -> Response:
        """Flag one entry ``*``, through Fava's source-slice editing (sha256 conflict check)."""
        refused = self._refused()
        if refused is not None:
            return refused
        try:
            entry = self._queued_entry(self._body())
        except LookupError as e:
            return _json_error(str(e), 409)
        return self._save(entry, review.accepted_slice)

    @extension_endpoint("change_account", ["POST"])
    def change_account(self) -> Response:
        """Move one entry's counter-leg to an open account of the ledger (and accept it)."""
        refused = self._refused()
        if refused is not None:
            return refused
        assert self.client is not None
        body = self._body()
        account = str(body.get("account") or "").strip()
        if account not in set(self.snapshot().accounts):
            return _json_error(f"{account!r} is not an open account of this ledger", 400)
        try:
            entry = self._queued_entry(body)
        except LookupError as e:
            return _json_error(str(e), 409)
        old = review.counter_posting(entry, self.client).account
        return self._save(entry, lambda src: review.rebooked_slice(src, old, account))

    @extension_endpoint("explain", ["GET"])
    def explain(self) -> Response:
        """The `rules explain` text of one transaction of this client."""
        if self.client is None:
            return _json_error(self.setup_error or "no client configured", 400)
        txn = str(request.args.get("stripe_id") or "")
        bts = self._archive.find(self.client, {txn: str(request.args.get("month") or "")})
        if txn not in bts:
            return _json_error(f"{txn} is not in the archive of {self.client.id}", 404)
        try:
            text = review.explain(self.client, bts[txn], rules.ruleset_for(self.client))
        except BeancountStripeError as e:
            return _json_error(str(e), 400)
        return jsonify({"ok": True, "text": text})

    @extension_endpoint("suggest", ["GET"])
    def suggest(self) -> Response:
        """Rules `rules suggest` would add that decide this entry, with what they settle."""
        if self.client is None:
            return _json_error(self.setup_error or "no client configured", 400)
        txn = str(request.args.get("stripe_id") or "")
        try:
            found = review.propose_rules(
                self.client,
                txn,
                self.ledger.all_entries,
                self._archive.all(self.client),
                min_count=self.suggest_min_count,
            )
        except BeancountStripeError as e:
            return _json_error(str(e), 400)
        return jsonify(
            {
                "ok": True,
                "rules_file": self.rules_file(),
                "proposals": [
                    {
                        "yaml": p.yaml,
                        "name": p.name,
                        "account": p.account,
                        "settles": len(p.settles),
                        "decides_as_ledger": p.decides_as_ledger,
                        "conflicts": p.conflicts,
                    }
                    for p in found
                ],
            }
        )

    @extension_endpoint("add_rule", ["POST"])
    def add_rule(self) -> Response:
        """Append a proposed rule to the client's rules file, then run ``recategorize``."""
        refused = self._refused()
        if refused is not None:
            return refused
        assert self.client is not None
        body = self._body()
        txn, name = str(body.get("stripe_id") or ""), str(body.get("name") or "")
        try:
            found = review.propose_rules(
                self.client,
                txn,
                self.ledger.all_entries,
                self._archive.all(self.client),
                min_count=self.suggest_min_count,
            )
            chosen = [p for p in found if p.name == name]
            if not chosen:
                return _json_error("that rule is no longer suggested: reload the page", 409)
            review.append_rule(review.own_rules_file(self.client), chosen[0].yaml)
            result = categorize.recategorize(self.client)  # holds the client's lock itself
        except BeancountStripeError as e:
            return _json_error(str(e), 400)
        if result.written:
            self.ledger.watcher.notify(self.client.output)
        return jsonify({"ok": True, "message": categorize.format_recategorized(result, False)})


def _mtime(path: Path) -> int | None:
    try:
        return path.stat().st_mtime_ns
    except OSError:
        return None


def _month_date(month: str) -> Any:
    import datetime

    year, mon = (int(x) for x in month.split("-"))
    return datetime.date(year, mon, 1)
