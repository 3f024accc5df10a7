"""The request event: one record per LLM request, as the core reads it.

Wire names follow the OpenTelemetry GenAI semantic conventions where one exists
(``gen_ai.*``, ``error.type``). In those conventions ``gen_ai.usage.input_tokens``
includes the cache read and cache write tokens, and the event keeps that meaning:
``input_tokens`` is the whole prompt, of which ``cache_read_tokens`` and
``cache_write_tokens`` are parts. Decoders that meet a provider's other convention
normalise it before an ``Event`` is built (see ``detector.decode``).
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

import msgspec

SCHEMA_VERSION = 1

# Finish reasons that mean the model declined to respond. OpenAI reports
# "content_filter", Anthropic "refusal"; both count towards the refusal rate.
REFUSAL_FINISH_REASONS = frozenset({"content_filter", "refusal"})


class Event(msgspec.Struct, frozen=True, gc=False):
    """One LLM request, decoded and validated.

    Token counts are ``None`` when the source did not report them, which is
    different from zero: a streamed request without usage has unknown cost.
    """

    timestamp: datetime
    request_id: str
    tenant: str
    provider: str
    request_model: str
    response_model: str | None = None
    operation: str | None = None
    feature: str = ""
    route: str = ""
    region: str = ""
    input_tokens: int | None = None
    output_tokens: int | None = None
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    finish_reasons: tuple[str, ...] = ()
    error_type: str | None = None
    reported_cost_usd: Decimal | None = None
    ttft_ms: float | None = None
    duration_ms: float | None = None
    max_inter_token_gap_ms: float | None = None

    @property
    def model(self) -> str:
        """The model that served the request, else the one requested."""
        return self.response_model or self.request_model

    @property
    def timestamp_s(self) -> float:
        """The event time in seconds since the Unix epoch."""
        return self.timestamp.timestamp()

    @property
    def has_usage(self) -> bool:
        """Whether the source reported any token count."""
        return self.input_tokens is not None or self.output_tokens is not None

    @property
    def is_error(self) -> bool:
        return self.error_type is not None

    @property
    def is_refusal(self) -> bool:
        return not REFUSAL_FINISH_REASONS.isdisjoint(self.finish_reasons)
