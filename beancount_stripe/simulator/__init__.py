"""A local Stripe API simulator: deterministic histories, an HTTP server, fault injection.

Tests, the demo and the benchmarks point the official ``stripe`` SDK at it with
``StripeClient(key, base_addresses={"api": simulator.url})``.
"""

from .generator import (
    ALL_TYPES,
    FULL_COVERAGE_SIZE,
    MANDATORY_VARIANTS,
    History,
    balance,
    generate_history,
    load_transactions,
)
from .index import Query, TransactionIndex
from .server import FaultPlan, Simulator, mask_key
from .world import SimAccount, World, default_world, load_world

__all__ = [
    "ALL_TYPES",
    "FULL_COVERAGE_SIZE",
    "MANDATORY_VARIANTS",
    "FaultPlan",
    "History",
    "Query",
    "SimAccount",
    "Simulator",
    "TransactionIndex",
    "World",
    "balance",
    "default_world",
    "generate_history",
    "load_transactions",
    "load_world",
    "mask_key",
]
