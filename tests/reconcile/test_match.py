"""Bank-line matching: every case of issue 8, on entries parsed by Beancount itself."""

from __future__ import annotations

import datetime
from decimal import Decimal

from beancount import loader
from beancount.core import data

from beancount_stripe.config import PayoutsConfig
from beancount_stripe.reconcile import (
    CANDIDATES_KEY,
    NOTE_KEY,
    MatchSettings,
    business_days,
    cleared_keys,
    match_entries,
)

TRANSIT = "Assets:Acme:Transfers:Stripe"
BANK = "Assets:Acme:Bank:Checking"
HEAD = f"""
2024-01-01 open Assets:Acme:Stripe
2024-01-01 open {TRANSIT}
2024-01-01 open {BANK}
2024-01-01 open Income:Unmatched
"""


def _ts(day: str) -> int:
    d = datetime.date.fromisoformat(day)
    return int(datetime.datetime(d.year, d.month, d.day, tzinfo=datetime.UTC).timestamp())


def payout(po: str, day: str, amount: str, cur: str = "USD", kind: str = "payout") -> str:
    sign = "" if kind == "payout" else "-"
    back = "-" if kind == "payout" else ""
    return f"""
{day} * "Stripe" "Stripe {kind}" ^{po}
  stripe_id: "txn_{kind}_{po}"
  stripe_source: "{po}"
  stripe_type: "{kind}"
  Assets:Acme:Stripe  {back}{amount} {cur}
  {TRANSIT}  {sign}{amount} {cur}
"""


def bank(day: str, amount: str, text: str = "STRIPE TRANSFER", cur: str = "USD") -> str:
    return f"""
{day} * "{text}"
  {BANK}  {amount} {cur}
  Income:Unmatched
"""


def parse(text: str) -> list[data.Directive]:
    entries, errors, _ = loader.load_string(HEAD + text)
    assert not errors, errors
    return entries


def record(po: str, arrival: str, trace: str | None = None, **kw: object) -> dict:
    return {"id": po, "arrival_date": _ts(arrival), "trace_id": trace, **kw}


def settings(records: list[dict], **cfg: object) -> list[MatchSettings]:
    return [
        MatchSettings(
            client="acme",
            transit=TRANSIT,
            payouts=PayoutsConfig(**{"lag_days": 2, "bank_accounts": (BANK,), **cfg}),
            records={r["id"]: r for r in records},
        )
    ]


def split(entries: list[data.Directive]) -> tuple[list, list]:
    """(Stripe side, bank side) of a parsed ledger."""
    txns = [e for e in entries if isinstance(e, data.Transaction)]
    return [e for e in txns if "stripe_id" in e.meta], [
        e for e in txns if "stripe_id" not in e.meta
    ]


def run(stripe_text: str, bank_text: str, records: list[dict], **cfg: object) -> list:
    stripe, lines = split(parse(stripe_text + bank_text))
    return match_entries(lines, stripe + lines, settings(records, **cfg))


def transit_of(entry: data.Transaction) -> Decimal | None:
    for p in entry.postings:
        if p.account == TRANSIT:
            return p.units.number
    return None


def test_a_deposit_on_the_arrival_date_clears_its_payout() -> None:
    out = run(
        payout("po_A", "2024-03-04", "100.00"),
        bank("2024-03-06", "100.00"),
        [record("po_A", "2024-03-06")],
    )
    (e,) = out
    assert e.links == {"po_A"} and e.meta["stripe_payout"] == "po_A"
    assert transit_of(e) == Decimal("-100.00")
    assert [p.account for p in e.postings] == [BANK, TRANSIT]
    assert e.flag == "*"


def test_same_amount_twice_in_the_window_is_flagged_not_guessed() -> None:
    out = run(
        payout("po_A", "2024-03-04", "100.00") + payout("po_B", "2024-03-05", "100.00"),
        bank("2024-03-07", "100.00"),
        [record("po_A", "2024-03-06"), record("po_B", "2024-03-07")],
    )
    (e,) = out
    assert e.flag == "!" and transit_of(e) is None
    assert e.meta[CANDIDATES_KEY] == "po_A po_B"
    assert "po_A, po_B" in e.meta[NOTE_KEY]


def test_lag_over_a_weekend_and_a_bank_holiday() -> None:
    # Arrival Friday 2024-05-24; Monday 05-27 is a bank holiday; the bank posts Tuesday 05-28.
    stripe = payout("po_A", "2024-05-22", "55.10")
    line = bank("2024-05-28", "55.10")
    records = [record("po_A", "2024-05-24")]
    assert run(stripe, line, records, lag_days=1)[0].flag == "!"  # too late without the holiday
    (e,) = run(stripe, line, records, lag_days=1, holidays=(datetime.date(2024, 5, 27),))
    assert e.links == {"po_A"} and e.flag == "*"
    assert business_days(datetime.date(2024, 5, 24), 1, [datetime.date(2024, 5, 27)]) == (
        datetime.date(2024, 5, 28)
    )


def test_failed_payout_and_its_return_both_clear() -> None:
    stripe = payout("po_F", "2024-03-04", "360.69") + payout(
        "po_F", "2024-03-08", "360.69", kind="payout_failure"
    )
    lines = bank("2024-03-06", "360.69") + bank("2024-03-08", "-360.69", "STRIPE RETURN")
    out = run(stripe, lines, [record("po_F", "2024-03-06", status="failed")])
    assert [transit_of(e) for e in out] == [Decimal("-360.69"), Decimal("360.69")]
    assert all(e.links == {"po_F"} for e in out)


def test_a_manual_payout_matches_like_any_other() -> None:
    (e,) = run(
        payout("po_M", "2024-03-04", "42.00"),
        bank("2024-03-04", "42.00", "INSTANT PAYOUT"),
        [record("po_M", "2024-03-04", automatic=False, transactions=None)],
    )
    assert e.links == {"po_M"}


def test_trace_id_picks_the_payout_and_the_other_line_gets_the_other() -> None:
    stripe = payout("po_A", "2024-03-04", "100.00") + payout("po_B", "2024-03-04", "100.00")
    lines = bank("2024-03-06", "100.00", "STRIPE 777000111") + bank("2024-03-06", "100.00")
    out = run(
        stripe, lines, [record("po_A", "2024-03-06"), record("po_B", "2024-03-06", "777000111")]
    )
    assert [e.links for e in out] == [{"po_B"}, {"po_A"}]


def test_a_line_without_trace_id_matches_on_amount_and_date() -> None:
    (e,) = run(
        payout("po_A", "2024-03-04", "10.00"),
        bank("2024-03-07", "10.00", "DEPOSIT"),
        [record("po_A", "2024-03-06", "999")],
    )
    assert e.links == {"po_A"}


def test_a_deposit_with_no_payout() -> None:
    text = payout("po_A", "2024-03-04", "10.00") + bank("2024-03-06", "77.00", "CUSTOMER CHEQUE")
    stripe, lines = split(parse(text + bank("2024-03-06", "88.00", "STRIPE")))
    out = match_entries(lines, stripe + lines, settings([record("po_A", "2024-03-06")]))
    assert out[0] is lines[0], "a line that is not Stripe's is left exactly as it was"
    assert out[1].flag == "!" and "no Stripe payout" in out[1].meta[NOTE_KEY]


def test_a_payout_paid_in_two_bank_lines_is_flagged_not_matched() -> None:
    out = run(
        payout("po_A", "2024-03-04", "100.00"),
        bank("2024-03-06", "60.00") + bank("2024-03-07", "40.00"),
        [record("po_A", "2024-03-06")],
    )
    assert all(e.flag == "!" and transit_of(e) is None for e in out)
    assert all(e.meta[CANDIDATES_KEY] == "po_A" for e in out)
    assert "two bank lines" in out[0].meta[NOTE_KEY]


def test_two_deposits_for_one_payout_are_both_flagged() -> None:
    out = run(
        payout("po_A", "2024-03-04", "100.00"),
        bank("2024-03-06", "100.00") + bank("2024-03-07", "100.00"),
        [record("po_A", "2024-03-06")],
    )
    assert all(e.flag == "!" and e.meta[CANDIDATES_KEY] == "po_A" for e in out)


def test_a_bank_line_in_another_currency_is_flagged_with_the_reason() -> None:
    (e,) = run(
        payout("po_E", "2024-03-04", "90.00", "EUR"),
        bank("2024-03-06", "97.74", "STRIPE 424242424242", cur="USD"),
        [record("po_E", "2024-03-06", "424242424242")],
    )
    assert e.flag == "!" and e.meta[CANDIDATES_KEY] == "po_E"
    assert "USD" in e.meta[NOTE_KEY] and "EUR" in e.meta[NOTE_KEY]


def test_canceled_payouts_are_not_candidates() -> None:
    stripe = payout("po_C", "2024-03-04", "5.00") + payout(
        "po_C", "2024-03-04", "5.00", kind="payout_cancel"
    )
    (e,) = run(stripe, bank("2024-03-06", "5.00", "DEPOSIT"), [record("po_C", "2024-03-06")])
    assert not e.links and e.flag == "*"


def test_pure_and_idempotent() -> None:
    stripe_text = payout("po_A", "2024-03-04", "100.00") + payout("po_B", "2024-03-11", "7.00")
    lines_text = bank("2024-03-06", "100.00") + bank("2024-03-13", "7.00")
    stripe, lines = split(parse(stripe_text + lines_text))
    cfg = settings([record("po_A", "2024-03-06"), record("po_B", "2024-03-13")])
    first = match_entries(lines, stripe + lines, cfg)
    again = match_entries(lines, stripe + lines, cfg)
    assert first == again and lines == split(parse(stripe_text + lines_text))[1]
    assert [e.links for e in first] == [{"po_A"}, {"po_B"}]
    # Import the same statement again into a ledger that has the matched entries.
    _s, fresh = split(parse(lines_text))
    second = match_entries(fresh, stripe + first + fresh, cfg)
    assert all(not e.links for e in second), "nothing is matched twice"
    assert cleared_keys(first, TRANSIT) == {("po_A", -1), ("po_B", -1)}


def test_the_hook_takes_beangulp_and_fava_shapes(tmp_path) -> None:
    import inspect

    from beancount_stripe import archive
    from beancount_stripe.reconcile import PayoutHook, payout_hook

    cfg = tmp_path / "clients.yaml"
    cfg.write_text(
        f"""clients:
  - id: acme
    name: Acme
    stripe_account: acct_1Acme
    key: env:UNUSED
    ledger: books/ledger.beancount
    accounts: {{transit: "{TRANSIT}"}}
    payouts: {{lag_days: 2, bank_accounts: [{BANK}]}}
""",
        encoding="utf-8",
    )
    archive.write_payouts(
        tmp_path / "books" / "archive", "acme", "acct_1Acme", {"po_A": record("po_A", "2024-03-06")}
    )
    stripe, lines = split(
        parse(payout("po_A", "2024-03-04", "100.00") + bank("2024-03-06", "100.00"))
    )
    hook = payout_hook(cfg)
    assert "Importer" in str(inspect.get_annotations(hook)), "Fava passes the account then"
    (beangulp_out,) = hook([("bank.csv", lines, BANK, None)], stripe)
    assert beangulp_out[2] == BANK and beangulp_out[1][0].links == {"po_A"}
    (fava_out,) = PayoutHook(cfg)([("bank.csv", lines)], stripe)
    assert len(fava_out) == 2 and fava_out[1][0].links == {"po_A"}
    (other,) = hook([("other.csv", lines, "Assets:Elsewhere", None)], stripe)
    assert other[1] == lines, "entries of an account no client lists are left alone"
