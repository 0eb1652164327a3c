"""Text types for every field that reaches an e-mail, a header, a calendar or a web page.

Each is a `str` whose JSON-schema pattern says exactly what is accepted, so the published
documents, the validation and any generated client agree:

  * `Annotated[str, line_field(n)]` (`line(n)` where no type checker reads it): one line of at
    most n characters: no control character at all (no CR, LF, tab), no Unicode line or
    paragraph separator, no bidirectional override, no non-character; it neither starts nor ends
    with whitespace (refused, not trimmed: what is accepted is what is stored and sent). Names, titles, venues, subjects.
  * `Annotated[str, paragraph_field(n)]` (or `paragraph(n)`): free text of at most n characters:
    line breaks and tabs allowed, every other control character refused; CRLF and CR are stored as LF. Agendas, reasons, notes.
  * `WebUrl`: an absolute http:// or https:// URL with a host name, no whitespace, quotes, angle
    brackets, backslashes or control characters (no `javascript:`, no `data:`, nothing that can
    leave an href attribute or a calendar line).

Escaping still happens at each output (HTML autoescape, RFC 5545 TEXT escaping and folding, RFC
2047 headers); these types make sure what is escaped is something a person meant to write.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import AfterValidator, Field
from pydantic.fields import FieldInfo

# Characters no text field accepts: C0 and C1 controls, DEL, the Unicode line/paragraph separators,
# bidirectional embedding/override/isolate controls, and the non-characters U+FFFE/U+FFFF. Lone
# surrogates cannot be written in a pattern; the strict JSON layer refuses them (shared.platform.http).
_NEVER = "\\x00-\\x1f\\x7f-\\x9f\\u2028\\u2029\\u202a-\\u202e\\u2066-\\u2069\\ufffe\\uffff"
_PARAGRAPH_NEVER = "\\x00-\\x08\\x0b\\x0c\\x0e-\\x1f\\x7f-\\x9f\\u2028\\u2029\\u202a-\\u202e\\u2066-\\u2069\\ufffe\\uffff"
_EDGE = f"[^\\s{_NEVER}]"  # a first or last character: visible
LINE_PATTERN = f"^({_EDGE}([^{_NEVER}]*{_EDGE})?)$"
LINE_OR_EMPTY_PATTERN = f"^({_EDGE}([^{_NEVER}]*{_EDGE})?)?$"
PARAGRAPH_PATTERN = f"^[^{_PARAGRAPH_NEVER}]*$"
_URL_SAFE = "[^\\s\"'<>\\\\^`{|}" + _NEVER + "]"
URL_PATTERN = f"^https?://[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?(:[0-9]{{1,5}})?([/?#]{_URL_SAFE}*)?$"


def line_field(max_length: int, *, min_length: int = 1, description: str | None = None) -> FieldInfo:
    """The rules of single-line text of at most `max_length` characters (`min_length=0` allows ""),
    for `Annotated[str, line_field(n)]`: a spelling type checkers read as `str`."""
    info: FieldInfo = Field(
        min_length=min_length, max_length=max_length, pattern=LINE_PATTERN if min_length else LINE_OR_EMPTY_PATTERN,
        description=description)
    return info


def _unix_line_ends(value: str) -> str:
    return value.replace("\r\n", "\n").replace("\r", "\n")


def paragraph_field(max_length: int, *, min_length: int = 0, description: str | None = None) -> FieldInfo:
    """The rules of multi-line text of at most `max_length` characters, stored with LF line ends."""
    info: FieldInfo = Field(min_length=min_length, max_length=max_length, pattern=PARAGRAPH_PATTERN,
                            description=description)
    info.metadata.append(AfterValidator(_unix_line_ends))  # after the pattern, as Annotated[..., Field, After] ran
    return info


def line(max_length: int, *, min_length: int = 1, description: str | None = None) -> Any:
    """`Annotated[str, line_field(...)]` built at run time (a type checker cannot read a call in an annotation)."""
    return Annotated[str, line_field(max_length, min_length=min_length, description=description)]


def paragraph(max_length: int, *, min_length: int = 0, description: str | None = None) -> Any:
    """`Annotated[str, paragraph_field(...)]` built at run time."""
    return Annotated[str, paragraph_field(max_length, min_length=min_length, description=description)]


WebUrl = Annotated[str, Field(max_length=1000, pattern=URL_PATTERN,
                              description="Absolute http:// or https:// URL")]
