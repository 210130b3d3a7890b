"""The rule engine: a firm's own rules refine the entries ``booking`` produces.

``booking.book`` turns a balance transaction (BT) into an entry with the booking table's
counter-account; ``apply_rules`` then refines that entry (smart_importer's model: hooks refine
after extraction). A rules file holds ``rules:`` (conditions → actions) and ``parties:`` (many raw
identities → one canonical payee). Precedence: a client's files before the shared files, each file
in the order written, and for every *decision* (counter-account or split, payee, narration, flag,
each metadata key) the first rule that matches and sets it wins; tags and links add up.

Everything here is pure: files are read and validated once (errors name file, line, key path and
rule), conditions compile into closures over precompiled regexes, and rules are indexed by the BT
``type`` they require, so hundreds of rules over a whole history stay cheap.

The package, by concern: ``fields`` (what a rule can read, ``Facts``), ``model`` (the language's
keys and operators, compiled rules), ``conditions`` (operators compiled to closures), ``actions``
and ``compiler`` (reading and validating rules files), ``index`` (per-field indexes that offer a
BT only the rules that can match it), ``compiled`` (one type's indexes generated as one Python
function), ``ruleset`` (a client's rules, indexed), ``engine`` (applying rules, fingerprints,
explanations). Callers import this package only.
"""

from __future__ import annotations

from beancount_stripe.rules.compiler import (
    check_rules,
    load_rules,
)
from beancount_stripe.rules.engine import (
    Explanation,
    NearMiss,
    apply_rules,
    book_with_rules,
    entry_hash,
    near_misses,
    needs_review,
    refine,
    split_amounts,
)
from beancount_stripe.rules.fields import (
    ANY,
    DATE,
    FIELDS,
    NUMBER,
    TEXT,
    Facts,
    Getter,
    charge_of,
    field_spec,
)
from beancount_stripe.rules.model import (
    ACTION_KEYS,
    COMBINATORS,
    FILE_KEYS,
    FLAGS,
    HASH_KEY,
    OPERATORS,
    PARTY_KEYS,
    RESERVED_META,
    RULE_KEYS,
    Cond,
    Leg,
    Party,
    Pred,
    Rule,
    RuleFile,
    Template,
)
from beancount_stripe.rules.ruleset import (
    Ruleset,
    rule_paths,
    ruleset_for,
)

__all__ = [
    "ACTION_KEYS",
    "ANY",
    "COMBINATORS",
    "DATE",
    "FIELDS",
    "FILE_KEYS",
    "FLAGS",
    "HASH_KEY",
    "NUMBER",
    "OPERATORS",
    "PARTY_KEYS",
    "RESERVED_META",
    "RULE_KEYS",
    "TEXT",
    "Cond",
    "Explanation",
    "Facts",
    "Getter",
    "Leg",
    "NearMiss",
    "Party",
    "Pred",
    "Rule",
    "RuleFile",
    "Ruleset",
    "Template",
    "apply_rules",
    "book_with_rules",
    "charge_of",
    "check_rules",
    "entry_hash",
    "field_spec",
    "load_rules",
    "near_misses",
    "needs_review",
    "refine",
    "rule_paths",
    "ruleset_for",
    "split_amounts",
]
