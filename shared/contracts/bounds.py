"""Numeric and id types every contract uses: strict in JSON, and storable by PostgreSQL as sent.

- Money and counts are JSON integers only: `"1000"`, `1000.0` and `true` are refused (pydantic's
  lax mode would turn each into 1000), and they fit a PostgreSQL `bigint`.
- Ids chosen by senders are short printable ASCII strings: they key btree indexes (a 6,000-character
  id is over PostgreSQL's index row limit) and appear in logs and dead letters.
- No text anywhere in a payload carries NUL or a lone surrogate (PostgreSQL text cannot store
  either); `EventPayload` checks that for every string (shared.contracts.registry).
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, StrictInt, StringConstraints

BIGINT_MAX = 2**63 - 1
ID_MAX_LENGTH = 100
# Printable ASCII without spaces: safe in a URL, a log line, a Kafka header and an index.
ID_PATTERN = r"^[\x21-\x7e]+$"

Rupiah = Annotated[StrictInt, Field(ge=0, le=BIGINT_MAX)]
"""Whole Rupiah, a JSON integer from 0 to 2^63-1."""

Count = Annotated[StrictInt, Field(ge=0, le=BIGINT_MAX)]
"""A count (workers), a JSON integer from 0 to 2^63-1."""

PositiveCount = Annotated[StrictInt, Field(ge=1, le=BIGINT_MAX)]

Months = Annotated[StrictInt, Field(ge=1, le=12)]

FiscalYear = Annotated[StrictInt, Field(ge=2000, le=2100)]
"""A budget year, a JSON integer."""

Revision = Annotated[StrictInt, Field(ge=1, le=2**31 - 1)]

SenderId = Annotated[str, StringConstraints(min_length=1, max_length=ID_MAX_LENGTH, pattern=ID_PATTERN)]
"""An id chosen by the sender (submission_id, report_id): 1-100 printable ASCII characters, no spaces."""
