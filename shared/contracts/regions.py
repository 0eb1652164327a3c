"""Reference data: the ten regencies/cities of NTB, keyed by Kemendagri code."""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from importlib import resources
from typing import Annotated

import yaml
from pydantic import AfterValidator

PROVINCE_CODE = "52"


@dataclass(frozen=True, slots=True)
class Region:
    code: str
    name: str
    population: int


@functools.cache
def regions() -> dict[str, Region]:
    raw = yaml.safe_load(resources.files("shared.contracts.reference").joinpath("regions.yaml").read_text("utf-8"))
    return {item["code"]: Region(**item) for item in raw["regions"]}


_SIPD = re.compile(r"^(\d{2})(\d{2})$")


def normalize_region_code(value: str) -> str:
    """Accept `52.01` or SIPD's `5201`; return the dotted Kemendagri code or raise ValueError."""
    text = value.strip()
    if match := _SIPD.match(text):
        text = f"{match[1]}.{match[2]}"
    if text not in regions():
        known = ", ".join(regions())
        raise ValueError(f"unknown region code {value!r}; expected one of {known}")
    return text


RegionCode = Annotated[str, AfterValidator(normalize_region_code)]
