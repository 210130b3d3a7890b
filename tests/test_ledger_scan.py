"""The ledger scan reads files a block at a time: the result must not depend on the blocks.

A block ends just after a newline, so no line is cut; these tests scan the same ledger with
blocks of a few characters and with the default size, and compare with ``str.splitlines``.
"""

from __future__ import annotations

import functools
from pathlib import Path

import pytest

from beancount_stripe import ledger
from beancount_stripe.errors import LedgerError

TEXT = (
    ";; header\u2028split here\r\n"
    'include "other.beancount"\r\n'
    "2024-01-01 open Assets:Stripe\n"
    "2024-01-01 commodity EUR\n"
    '2024-01-02 * "Café Zürich"\n'
    '  stripe_id: "txn_1"\n'
    "  Assets:Stripe  1.00 EUR\n"
    "  Income:Sales\n"
    "\n"
    '2024-01-03 * "Capital"\x0c\n'
    '  capital_kind: "paydown"\n'
    '  stripe_id: "txn_2"\n'
    "\n"
    "  Assets:Stripe  -2.50 EUR\r\n"
    "  Liabilities:Loan  2.50 EUR\n"
    "2024-01-04 balance Assets:Stripe  -1.50 EUR\n"
    '2024-01-05 * "summary"\n'
    '  stripe_summary: "day-2024-01-05-eur"\n'
    "  Assets:Stripe  0.00 EUR"
)


def _state(path: Path) -> dict[str, object]:
    state = ledger.scan(path)
    out = {k: getattr(state, k) for k in state.__dataclass_fields__}
    out["capital_entries"] = [vars(e) for e in state.capital_entries]
    return out


@pytest.mark.parametrize("size", [1, 2, 3, 7, 64])
def test_scan_is_the_same_whatever_the_block_size(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, size: int
) -> None:
    main = tmp_path / "main.beancount"
    main.write_text(TEXT, encoding="utf-8", newline="")
    (tmp_path / "other.beancount").write_text('2023-12-31 * "x"\n  stripe_id: "txn_0"\n')
    whole = _state(main)
    assert set(whole["stripe_ids"]) == {"txn_0", "txn_1", "txn_2"}  # type: ignore[arg-type]
    assert len(whole["capital_entries"]) == 1  # type: ignore[arg-type]
    monkeypatch.setattr(ledger, "text_blocks", functools.partial(ledger.text_blocks, size=size))
    assert _state(main) == whole
    assert ledger.files(main) == whole["files"]
    blocks = list(ledger.text_blocks(main))
    assert "".join(blocks) == main.read_text(encoding="utf-8")
    assert [line for b in blocks for line in b.splitlines()] == main.read_text().splitlines()


def test_an_undated_stripe_id_names_its_entry_line(tmp_path: Path) -> None:
    main = tmp_path / "main.beancount"
    main.write_text(
        '2024-01-01 open Assets:Stripe\n\n2024-13-45 * "bad"\n  x: 1\n  stripe_id: "txn_1"\n'
    )
    with pytest.raises(LedgerError) as error:
        ledger.scan(main)
    assert error.value.where == f"{main}:3"
    assert "'2024-13-45 * \"bad\"'" in str(error.value)
