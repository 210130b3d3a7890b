"""The tools around the rules: explain, coverage (`rules test`), `rules suggest`, `recategorize`.

Each works on one client's archive (the raw balance transactions) and ledger, and returns plain
data plus a text rendering for the CLI, which stays a thin shell. Nothing here talks to Stripe.
One module per tool; this package re-exports what callers use.
"""

from beancount_stripe.categorize.explain import (
    ANY_TYPE,
    BOOKING_TABLE,
    Coverage,
    RuleCount,
    coverage,
    explain,
    find_transaction,
    format_coverage,
    read_archive,
    where,
)
from beancount_stripe.categorize.recategorize import (
    Recategorized,
    format_recategorized,
    recategorize,
    rule_summary,
)
from beancount_stripe.categorize.suggest import (
    Example,
    PartySuggestion,
    Suggestion,
    Suggestions,
    _features,
    _q,
    format_suggestions,
    learn,
    learn_parties,
    ledger_examples,
    load_ledger,
    suggest,
)

__all__ = [
    "ANY_TYPE",
    "BOOKING_TABLE",
    "Coverage",
    "Example",
    "PartySuggestion",
    "Recategorized",
    "RuleCount",
    "Suggestion",
    "Suggestions",
    "_features",
    "_q",
    "coverage",
    "explain",
    "find_transaction",
    "format_coverage",
    "format_recategorized",
    "format_suggestions",
    "learn",
    "learn_parties",
    "ledger_examples",
    "load_ledger",
    "read_archive",
    "recategorize",
    "rule_summary",
    "suggest",
    "where",
]
