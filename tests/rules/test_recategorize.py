"""`recategorize`: new rules reach entries still under review, never entries a person edited."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest
from beancount import loader

from beancount_stripe import categorize, rules
from beancount_stripe.config import ClientConfig
from beancount_stripe.sync import sync_client

from ..conftest import ClientFactory, tree_digest
from .conftest import DEFAULT_RULES, write_rules

NEW_RULES = """\
rules:
  - name: climate
    when: {type: [contribution, climate_order_purchase, climate_order_refund]}
    account: "Expenses:{client}:Climate"
    payee: Stripe Climate
  - name: issuing
    when: {type: {prefix: issuing_}}
    account: "Expenses:{client}:Card-Spend"
"""


@pytest.fixture
def synced(make_client: ClientFactory) -> ClientConfig:
    client = dataclasses.replace(make_client(), shared_rules=(DEFAULT_RULES,))
    sync_client(client)
    return client


def block_of(text: str, txn_id: str) -> str:
    start = text.index(f'stripe_id: "{txn_id}"')
    start = text.rindex("\n\n", 0, start) + 2
    end = text.find("\n\n", start)
    return text[start : end if end > 0 else len(text)]


def review_ids(text: str, pattern: str) -> list[str]:
    """stripe ids of `!` entries whose stripe_type matches ``pattern``."""
    out = []
    for block in text.split("\n\n"):
        if re.match(r"\d{4}-\d\d-\d\d ! ", block) and re.search(
            rf'stripe_type: "{pattern}"', block
        ):
            out.append(re.search(r'stripe_id: "([^"]+)"', block).group(1))  # type: ignore[union-attr]
    return out


def test_recategorize_applies_new_rules_to_untouched_review_entries(
    synced: ClientConfig, tmp_path: Path
) -> None:
    client = synced
    before = client.output.read_text()
    climate = review_ids(before, "(contribution|climate_order_[a-z]+)")
    issuing = review_ids(before, "issuing_[a-z_]+")
    assert len(climate) >= 2 and len(issuing) >= 3
    # a person edits one entry (kept `!`), and strips the fingerprint from another
    edited, stripped = issuing[0], issuing[1]
    old_block = block_of(before, edited)
    text = before.replace(old_block, old_block.replace("\n", "\n  ; checked with the bank\n", 1))
    old_block = block_of(text, stripped)
    text = text.replace(old_block, re.sub(r"\n  stripe_hash: \"\w+\"", "", old_block))
    client.output.write_text(text)
    client = dataclasses.replace(client, rules=(write_rules(tmp_path, NEW_RULES, "new.yaml"),))

    # dry run: the diff, nothing written
    digest = tree_digest(client.output.parent)
    dry = categorize.recategorize(client, dry_run=True)
    assert tree_digest(client.output.parent) == digest
    assert set(dry.changed) == set(climate + issuing[2:])
    assert dry.edited == [edited] and dry.unfingerprinted == [stripped]  # a comment is an edit
    assert "-  Expenses:" in dry.diff and "+  Expenses:" in dry.diff and "Card-Spend" in dry.diff
    report = categorize.format_recategorized(dry, True)
    assert "would rewrite" in report and "no stripe_hash" in report

    # the real run rewrites exactly those entries, atomically, and opens the new accounts
    done = categorize.recategorize(client)
    assert done.written and done.changed == dry.changed
    after = client.output.read_text()
    for txn in climate + issuing[2:]:
        block = block_of(after, txn)
        assert re.match(r"\d{4}-\d\d-\d\d \* ", block) and rules.HASH_KEY not in block
        assert "Climate" in block or "Card-Spend" in block
    assert block_of(after, stripped) == block_of(text, stripped)
    assert "; checked with the bank" in block_of(after, edited)
    assert f"open {client.accounts.uncategorized.replace('Uncategorized', 'Climate')}" in after
    _entries, errors, _ = loader.load_file(str(client.ledger))
    assert errors == []  # the balance assertions still hold, every account is open

    # nothing else changed: outside the rewritten entries and the new `open`s, the same text
    def others(t: str) -> list[str]:
        return [
            b.strip("\n")
            for b in t.split("\n\n")
            if not any(txn in b for txn in done.changed)
            and not any(f"open {acc}" in b for acc in done.opened)
        ]

    assert done.opened and others(after) == others(text)

    # running it again changes nothing, and a sync books nothing new
    again = categorize.recategorize(client)
    assert again.changed == [] and not again.written
    # rewritten entries are no longer under review; the rest are as before
    assert again.candidates == done.candidates - len(done.changed)
    assert again.unchanged == done.unchanged > 0
    assert client.output.read_text() == after
    assert sync_client(client).booked == []


def test_an_edited_review_entry_is_left_alone(synced: ClientConfig, tmp_path: Path) -> None:
    client = synced
    text = client.output.read_text()
    (target,) = review_ids(text, "contribution")[:1]
    block = block_of(text, target)
    text = text.replace(block, block.replace('"Stripe Climate contribution"', '"Donation"', 1))
    client.output.write_text(text)
    client = dataclasses.replace(client, rules=(write_rules(tmp_path, NEW_RULES, "new.yaml"),))
    result = categorize.recategorize(client)
    assert target in result.edited and target not in result.changed
    assert block_of(client.output.read_text(), target) == block_of(text, target)


def test_nothing_to_do_without_new_rules(synced: ClientConfig) -> None:
    digest = tree_digest(synced.output.parent)
    result = categorize.recategorize(synced)
    assert result.candidates > 0 and result.changed == []
    assert result.unchanged == result.candidates
    assert tree_digest(synced.output.parent) == digest
