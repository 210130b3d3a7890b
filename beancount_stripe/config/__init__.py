"""YAML → validated, typed client configs; errors name file, line and key path.

One module per concern: ``model`` (the typed configuration), ``report`` (reading YAML with its
lines, reporting problems), ``fields`` (checks of each field and section), ``loader``
(assembling clients: ``load_config``, ``check_config``), ``keys`` (where an API key comes from).
This package re-exports their public names.
"""

from beancount_stripe.config.fields import (
    CAPITAL_KEYS,
    LOAN_KEYS,
    _account_reason,
    _scan_literal_keys,
)
from beancount_stripe.config.keys import (
    _key_shape_problem,
    resolve_key,
)
from beancount_stripe.config.loader import (
    check_config,
    load_config,
)
from beancount_stripe.config.model import (
    BOOKING_MODES,
    CAPITAL_FIELDS,
    DEFAULT_ACCOUNTS,
    Accounts,
    BookingConfig,
    CapitalConfig,
    ClientConfig,
    Config,
    KeySource,
    LoanConfig,
    PayoutsConfig,
    camel_case,
    make_accounts,
    zone,
)

# the YAML-with-lines toolkit the rules loader shares
from beancount_stripe.config.report import (
    ACCOUNT_ROOTS,
    CLIENT_KEYS,
    DEFAULT_KEYRING_SERVICE,
    DEFAULTS_KEYS,
    LITERAL_KEY_RE,
    REQUIRED_CLIENT_KEYS,
    TOP_LEVEL_KEYS,
    InvalidConfigError,
    Problem,
    _did_you_mean,
    _join,
    _parse,
    _Report,
    _type_name,
    mask_key,
)

__all__ = [
    "ACCOUNT_ROOTS",
    "BOOKING_MODES",
    "CAPITAL_FIELDS",
    "CAPITAL_KEYS",
    "CLIENT_KEYS",
    "DEFAULTS_KEYS",
    "DEFAULT_ACCOUNTS",
    "DEFAULT_KEYRING_SERVICE",
    "LITERAL_KEY_RE",
    "LOAN_KEYS",
    "REQUIRED_CLIENT_KEYS",
    "TOP_LEVEL_KEYS",
    "Accounts",
    "BookingConfig",
    "CapitalConfig",
    "ClientConfig",
    "Config",
    "InvalidConfigError",
    "KeySource",
    "LoanConfig",
    "PayoutsConfig",
    "Problem",
    "_Report",
    "_account_reason",
    "_did_you_mean",
    "_join",
    "_key_shape_problem",
    "_parse",
    "_scan_literal_keys",
    "_type_name",
    "camel_case",
    "check_config",
    "load_config",
    "make_accounts",
    "mask_key",
    "resolve_key",
    "zone",
]
