"""The province dashboard's pictures, drawn as SVG on the server (nothing to load, nothing to run).

Pure: figures in, SVG text out. Every text is XML-escaped; sizes are fixed viewBoxes that scale to
the screen (phone or desktop) through CSS width: 100%.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from html import escape

from shared.platform.formatting import format_number
from shared.platform.wita import as_wita

NAVY, GOLD, GREEN, GREY = "#0b3d6e", "#c9a227", "#1f7a3a", "#d6dbe1"


def bars(regions: Sequence[dict]) -> str:
    """Per region: committed workers (navy) and realized workers (green) on one scale."""
    width, row, left = 640, 34, 170
    top = max([1, *(max(r["committed_workers"], r["realized_workers"]) for r in regions)])
    height = row * len(regions) + 40
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" role="img" '
             f'aria-label="Pekerja dikomitmenkan dan terealisasi per daerah" style="width:100%;height:auto">']
    for i, region in enumerate(regions):
        y = 10 + i * row
        committed = (width - left - 70) * region["committed_workers"] / top
        realized = (width - left - 70) * region["realized_workers"] / top
        parts.append(f'<text x="{left - 8}" y="{y + 15}" text-anchor="end" font-size="13" fill="#1b1f24">'
                     f'{escape(region["region_name"])}</text>')
        parts.append(f'<rect x="{left}" y="{y + 2}" width="{committed:.1f}" height="14" fill="{NAVY}" rx="2"/>')
        parts.append(f'<rect x="{left}" y="{y + 18}" width="{realized:.1f}" height="8" fill="{GREEN}" rx="2"/>')
        parts.append(f'<text x="{left + committed + 6:.1f}" y="{y + 14}" font-size="12" fill="#1b1f24">'
                     f'{format_number(region["committed_workers"])}</text>')
    legend_y = height - 14
    parts.append(f'<rect x="{left}" y="{legend_y - 10}" width="12" height="12" fill="{NAVY}"/>'
                 f'<text x="{left + 18}" y="{legend_y}" font-size="12">Dikomitmenkan</text>'
                 f'<rect x="{left + 130}" y="{legend_y - 10}" width="12" height="12" fill="{GREEN}"/>'
                 f'<text x="{left + 148}" y="{legend_y}" font-size="12">Terealisasi</text>')
    parts.append("</svg>")
    return "".join(parts)


def gauge(percent: Decimal | float, target: Decimal | float, label: str) -> str:
    """A horizontal progress gauge from 0 to 100 % with the target marked."""
    pct, tgt = max(0.0, min(100.0, float(percent))), max(0.0, min(100.0, float(target)))
    width, left, span = 640, 20, 600
    return (f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} 90" role="img" '
            f'aria-label="{escape(label)}: {pct:.2f} persen, target {tgt:.2f} persen" style="width:100%;height:auto">'
            f'<rect x="{left}" y="30" width="{span}" height="24" fill="{GREY}" rx="12"/>'
            f'<rect x="{left}" y="30" width="{span * pct / 100:.1f}" height="24" fill="{NAVY}" rx="12"/>'
            f'<line x1="{left + span * tgt / 100:.1f}" y1="22" x2="{left + span * tgt / 100:.1f}" y2="62" '
            f'stroke="{GOLD}" stroke-width="4"/>'
            f'<text x="{left}" y="18" font-size="14" font-weight="bold" fill="{NAVY}">{escape(label)}: '
            f'{_pct(pct)}</text>'
            f'<text x="{left + span * tgt / 100:.1f}" y="80" text-anchor="middle" font-size="12" fill="#5b6470">'
            f'target {_pct(tgt)}</text></svg>')


def timeline(moments: Sequence[tuple[datetime, str]], start: datetime, end: datetime) -> str:
    """Submissions over time: one dot per submission between `start` and `end` (WITA dates below)."""
    width, left, span = 640, 20, 600
    total = max((end - start).total_seconds(), 1.0)
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} 80" role="img" '
             f'aria-label="Lini masa penyampaian komitmen ({len(moments)} penyampaian)" style="width:100%;height:auto">'
             f'<line x1="{left}" y1="36" x2="{left + span}" y2="36" stroke="{GREY}" stroke-width="4"/>']
    for moment, region in moments:
        x = left + span * min(max((moment - start).total_seconds() / total, 0.0), 1.0)
        parts.append(f'<circle cx="{x:.1f}" cy="36" r="7" fill="{NAVY}" stroke="#fff" stroke-width="2">'
                     f'<title>{escape(region)}, {as_wita(moment):%d/%m %H.%M} WITA</title></circle>')
    parts.append(f'<text x="{left}" y="70" font-size="12" fill="#5b6470">{as_wita(start):%d/%m/%Y}</text>'
                 f'<text x="{left + span}" y="70" font-size="12" text-anchor="end" fill="#5b6470">'
                 f'{as_wita(end):%d/%m/%Y}</text></svg>')
    return "".join(parts)


def _pct(value: float) -> str:
    return f"{value:.2f}".replace(".", ",") + "%"
