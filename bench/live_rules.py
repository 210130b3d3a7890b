"""A plausible firm's rules file whose every rule is *live*: drawn from one transaction of the
history it will run on (its witness), so it matches at least that one.

Used by bench_rules.py and bench_booking.py. The mix follows what firms write: product rules by
description (contains, prefix, equals), order numbers, key customers by id and by email domain,
regexes with captures feeding narration templates, amount bands, ``metadata.*`` conditions and
templates, percentage and fixed-amount splits, additive tag and link rules, rules on refunds,
payouts and fees, and a parties table of 100 entries.
"""

from __future__ import annotations

import datetime
import math
import random
import re
from collections.abc import Mapping, Sequence
from typing import Any

KINDS = (
    ["product"] * 14
    + ["order"] * 6
    + ["customer"] * 8
    + ["email"] * 4
    + ["regex"] * 8
    + ["band"] * 8
    + ["metadata"] * 8
    + ["split"] * 6
    + ["tag"] * 4
    + ["descriptor"] * 4
    + ["refund"] * 4
    + ["payout"] * 3
    + ["fee"] * 3
)


def _source(bt: Mapping[str, Any]) -> Mapping[str, Any]:
    source = bt.get("source")
    return source if isinstance(source, Mapping) else {}


def _charge(bt: Mapping[str, Any]) -> Mapping[str, Any]:
    source = _source(bt)
    if source.get("object") == "charge" or bt.get("type") in ("charge", "payment"):
        return source
    charge = source.get("charge")
    return charge if isinstance(charge, Mapping) else {}


def _yaml(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _major(bt: Mapping[str, Any]) -> float:
    exp = 0 if bt["currency"] in ("jpy", "krw") else 3 if bt["currency"] in ("bhd", "kwd") else 2
    return bt["amount"] / 10**exp


def client_rules(n: int, bts: Sequence[Mapping[str, Any]], rng: random.Random) -> tuple[str, list]:
    """(rules file text, the witness transaction of each rule in order)."""
    charges = [
        bt
        for bt in bts
        if bt["type"] in ("charge", "payment") and isinstance(bt["description"], str)
    ]
    by_type: dict[str, list[Mapping[str, Any]]] = {}
    for bt in bts:
        by_type.setdefault(bt["type"], []).append(bt)
    with_customer = [bt for bt in charges if isinstance(_charge(bt).get("customer"), str)]
    with_order = [bt for bt in charges if (_charge(bt).get("metadata") or {}).get("order_id")]
    ordered = [bt for bt in charges if bt["description"].startswith("Order #")]
    lines = ["parties:"]
    customers = sorted({_charge(bt)["customer"] for bt in with_customer})
    names = sorted(
        {
            _charge(bt)["billing_details"]["name"]
            for bt in charges
            if (_charge(bt).get("billing_details") or {}).get("name")
        }
    )
    for i, ident in enumerate(rng.sample(customers, min(50, len(customers)))):
        lines.append(f'  - {{payee: "Party {i}", ids: [{ident}]}}')
    for i, name in enumerate(rng.sample(names, min(50, len(names))), start=50):
        lines.append(f"  - {{payee: 'Party {i}', names: [{_yaml(name)}]}}")
    lines.append("rules:")
    witnesses: list[Mapping[str, Any]] = []
    for i in range(n):
        kind = KINDS[i % len(KINDS)]
        if kind == "order" and not ordered:
            kind = "product"
        bt = rng.choice(charges)
        desc = bt["description"]
        if kind == "product":
            product = desc.split(": ", 1)[-1]
            op = rng.choice(["contains", "contains", "prefix", "equals"])
            if op == "prefix":
                needle = desc[: max(4, len(desc) // 2)]
            elif op == "equals":
                needle = desc
            else:
                needle = (
                    product[: rng.randrange(4, len(product) + 1)] if len(product) > 4 else product
                )
            cur = bt["currency"]
            when = f"{{type: [charge, payment], currency: {cur}, "
            when += f"description: {{{op}: {_yaml(needle)}}}}}"
            action = f'account: "Income:{{client}}:Products:P{i}"'
        elif kind == "order":
            bt = rng.choice(ordered)
            number = bt["description"].split(":", 1)[0]
            when = f"{{type: {bt['type']}, description: {{contains: {_yaml(number + ':')}}}}}"
            action = (
                f'account: "Income:{{client}}:Orders:O{i}"\n    narration: "{{description}} #{i}"'
            )
        elif kind == "customer":
            bt = rng.choice(with_customer)
            when = f"{{customer.id: {_charge(bt)['customer']}, currency: {bt['currency']}}}"
            action = (
                f'account: "Income:{{client}}:Key:K{i}"\n    payee: "Key {i} ({{customer.name}})"'
            )
        elif kind == "email":
            email = (_charge(bt).get("billing_details") or {}).get("email") or ""
            if "@" not in email:
                bt = next(b for b in charges if "@" in str(_charge(b).get("billing_details")))
                email = _charge(bt)["billing_details"]["email"]
            local = email.split("@")[0]
            when = f"{{type: {bt['type']}, customer.email: {{prefix: {_yaml(local)}}}}}"
            action = f"tags: [email-{i}]\n    meta: {{buyer: '{{customer.email}}'}}"
        elif kind == "regex":
            if ordered and rng.random() < 0.6:
                bt = rng.choice(ordered)
                product = bt["description"].split(": ", 1)[1]
                word = re.escape(product.split()[0])
                pattern = f"^Order #(\\d+): ({word}[^(]*)"
            else:
                word = re.escape(bt["description"].split()[0])
                pattern = f"^({word})\\b(.*)$"
            when = f"{{type: [charge, payment], description: {{regex: {_yaml(pattern)}}}}}"
            action = f'narration: "{{2}} - order {{1}} ({i})"'
        elif kind == "band":
            lo = math.floor(_major(bt))
            when = (
                f"{{type: {bt['type']}, currency: {bt['currency']}, "
                f"amount: {{between: [{lo}, {lo + 1}]}}}}"
            )
            action = f'meta: {{band: "b{i}"}}'
        elif kind == "metadata":
            bt = rng.choice(with_order) if with_order else bt
            order = (_charge(bt).get("metadata") or {}).get("order_id", "x")
            if rng.random() < 0.5:
                when = f"{{type: {bt['type']}, metadata.order_id: {_yaml(str(order))}}}"
            else:
                head = _yaml(str(order)[:3])
                when = f"{{metadata.order_id: {{prefix: {head}}}, currency: {bt['currency']}}}"
            action = (
                'meta: {order: "{metadata.order_id}"}\n    links: ["order-{metadata.order_id}"]'
            )
        elif kind == "split":
            product = desc.split(": ", 1)[-1]
            cur = bt["currency"]
            when = f"{{type: [charge, payment], currency: {cur}, "
            when += f"description: {{contains: {_yaml(product)}}}}}"
            second = "amount: 1" if rng.random() < 0.5 else "percent: 10"
            action = (
                "split:\n"
                f'      - {{account: "Income:{{client}}:Split:S{i}", percent: 80}}\n'
                f'      - {{account: "Liabilities:{{client}}:Split:T{i}", {second}}}\n'
                f'      - {{account: "Income:{{client}}:Split:R{i}"}}'
            )
        elif kind == "tag":
            pm = (_charge(bt).get("payment_method_details") or {}).get("type") or "card"
            day = datetime.date.fromtimestamp(bt["created"])  # a campaign of a few weeks
            since, until = day - datetime.timedelta(days=12), day + datetime.timedelta(days=12)
            when = f"{{payment_method: {pm}, currency: {bt['currency']}, "
            when += f"created: {{between: [{since}, {until}]}}}}"
            action = f'tags: ["t{i}-{{payment_method}}"]'
        elif kind == "descriptor":
            name = (_charge(bt).get("billing_details") or {}).get("name")
            if not name:
                bt = next(
                    b for b in charges if (_charge(b).get("billing_details") or {}).get("name")
                )
                name = _charge(bt)["billing_details"]["name"]
            last = _yaml(name.split()[-1])
            when = f"{{type: {bt['type']}, currency: {bt['currency']}, "
            when += f"customer.name: {{suffix: {last}}}}}"
            action = f'payee: "{{customer.name}} ({i})"'
        elif kind == "refund":
            bt = rng.choice(by_type.get("refund") or charges)
            text = bt["description"] or "REFUND"
            when = f"{{type: {bt['type']}, description: {{contains: {_yaml(text[-12:])}}}}}"
            action = f'account: "Income:{{client}}:Refunds:R{i}"'
        elif kind == "payout":
            bt = rng.choice(by_type.get("payout") or charges)
            when = (
                f"{{type: {bt['type']}, currency: {bt['currency']}, amount: {{lte: {_major(bt)}}}}}"
            )
            action = f'account: "Assets:{{client}}:Bank:B{i}"'
        else:
            fees = [b for b in by_type.get("stripe_fee", []) if b["description"]]
            bt = rng.choice(fees or charges)
            text = bt["description"] or "Stripe"
            when = f"{{type: {bt['type']}, description: {{prefix: {_yaml(text[:8])}}}}}"
            action = f'account: "Expenses:{{client}}:Stripe:F{i}"'
        lines.append(f"  - name: r{i} {kind}\n    when: {when}\n    {action}")
        witnesses.append(bt)
    return "\n".join(lines) + "\n", witnesses


def live_count(
    ruleset: Any,
    rules_module: Any,
    booking_module: Any,
    client: Any,
    witnesses: Sequence[Mapping[str, Any]],
    bts: Sequence[Mapping[str, Any]],
) -> int:
    """How many rules of ``ruleset`` match at least one transaction: client rules are tested on
    their witness, the shared defaults on one transaction of each type in the history."""
    live = 0
    dead = []
    own = [r for r in ruleset.rules if r.name.startswith("r")][: len(witnesses)]
    for rule, bt in zip(own, witnesses, strict=True):
        facts = rules_module.Facts(bt, booking_module.book(bt, client), ruleset)
        ok = bool(rule.when.test(facts))
        live += ok
        if not ok:
            dead.append(rule.name)
    samples: dict[str, Mapping[str, Any]] = {}
    for bt in bts:
        samples.setdefault((bt["type"], bt["reporting_category"]), bt)
    for rule in ruleset.rules:
        if rule in own:
            continue
        for bt in samples.values():
            if rule.when.test(rules_module.Facts(bt, booking_module.book(bt, client), ruleset)):
                live += 1
                break
        else:
            dead.append(rule.name)
    if dead:
        print("  rules that match nothing: " + ", ".join(dead))
    return live
