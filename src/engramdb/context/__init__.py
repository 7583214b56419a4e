"""Context packing: hits → a token-budgeted, deduplicated, ordered and cited prompt block."""

from __future__ import annotations

from engramdb.context.budget import (
    TokenCounter,
    estimate_tokens,
    select_counter,
    tiktoken_counter,
)
from engramdb.context.pack import ORDERS, Block, Citation, Context, Order, order_edges, pack

__all__ = [
    "ORDERS",
    "Block",
    "Citation",
    "Context",
    "Order",
    "TokenCounter",
    "estimate_tokens",
    "order_edges",
    "pack",
    "select_counter",
    "tiktoken_counter",
]
