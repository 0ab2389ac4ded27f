"""The long parts of `statement.pdf`: running-balance chart, transactions table, foreign-currency
entries, coverage, version and diff (see `writers_pdf`)."""

from __future__ import annotations

from collections import defaultdict
from decimal import Decimal
from typing import TYPE_CHECKING

from ledger_etl.statements.document import money
from ledger_etl.statements.model import Statement

if TYPE_CHECKING:
    from ledger_etl.statements.writers_pdf import StatementPdf

# (heading, width mm, align); 186 mm between the margins
COLUMNS = (
    ("Posted at (UTC)", 29, "L"),
    ("Reference", 23, "L"),
    ("Type", 31, "L"),
    ("Instrument", 18, "L"),
    ("Amount", 25, "R"),
    ("Balance", 25, "R"),
    ("Ledger account", 35, "L"),
)
ROW = 4.2
CHART_POINTS = 1500  # more entries are thinned to this many points: it is a picture


def balance_chart(pdf: StatementPdf, s: Statement) -> None:
    """The running balance over the period (x: time, y: balance), drawn with lines only."""
    pdf.heading("Running balance")
    x0, width, height = pdf.l_margin + 22, pdf.epw - 22, 38
    if pdf.will_page_break(height + 8):
        pdf.add_page()
    y0 = pdf.get_y() + 1
    points = [(s.period.start, s.opening_balance)]
    points += [(ln.entry.posted_at, ln.running_balance) for ln in s.lines]
    points.append((s.period.end, s.closing_balance))
    step = max(1, len(points) // CHART_POINTS)
    points = [*points[:-1:step], points[-1]]
    low = min(b for _, b in points)
    high = max(b for _, b in points)
    span_t = (s.period.end - s.period.start).total_seconds()
    span_b = high - low or Decimal(1)

    def xy(at, balance: Decimal) -> tuple[float, float]:  # type: ignore[no-untyped-def]
        # Geometry only: positions may be floats, the printed amounts never are.
        fx = (at - s.period.start).total_seconds() / span_t
        fy = float((balance - low) / span_b) if high != low else 0.5
        return x0 + fx * width, y0 + height - fy * height

    pdf.set_draw_color(170)
    pdf.set_line_width(0.2)
    pdf.rect(x0, y0, width, height)
    pdf.font(6.5)
    pdf.set_text_color(90)
    for value, y in ((high, y0), (low, y0 + height - 3)):
        pdf.set_xy(pdf.l_margin, y)
        pdf.cell(21, 3, money(value) or "", align="R")
    pdf.set_xy(x0, y0 + height + 0.5)
    pdf.cell(width / 2, 3, f"{s.period.start:%Y-%m-%d}")
    pdf.cell(width / 2, 3, f"{s.period.end:%Y-%m-%d} (exclusive)", align="R")
    pdf.set_text_color(0)
    pdf.set_draw_color(20, 70, 160)
    pdf.set_line_width(0.35)
    pdf.polyline([xy(at, balance) for at, balance in points])
    pdf.set_line_width(0.2)
    pdf.set_draw_color(0)
    pdf.set_xy(pdf.l_margin, y0 + height + 5)


def _fit(pdf: StatementPdf, text: str, width: float) -> str:
    """`text` cut with "..." to fit `width` (a table cell holds one line)."""
    if pdf.get_string_width(text) <= width:
        return text
    while text and pdf.get_string_width(text + "...") > width:
        text = text[:-1]
    return text + "..."


def _table_head(pdf: StatementPdf, currency: str) -> None:
    pdf.font(7, bold=True)
    pdf.set_fill_color(232)
    for heading, width, align in COLUMNS:
        label = f"{heading} ({currency})" if align == "R" else heading
        pdf.cell(width, ROW + 0.8, pdf.say(_fit(pdf, label, width - 1)), align=align, fill=True)
    pdf.ln()
    pdf.font(7)


def transactions_table(pdf: StatementPdf, s: Statement) -> tuple[Decimal, str]:
    """The entries with their running balance; returns (sum of amounts, last balance text)."""
    from ledger_etl.statements.writers_pdf import entries

    pdf.heading(f"Transactions: {entries(len(s.lines))}")
    names = {t.key: t.name for t in s.totals_by_ledger_account}
    _table_head(pdf, s.currency)
    total = Decimal(0)
    last = money(s.opening_balance) or ""
    for line in s.lines:
        e = line.entry
        note = pdf.say(e.note) if e.note else None
        if pdf.will_page_break(ROW * (2 if note else 1)):
            pdf.add_page()
            _table_head(pdf, s.currency)
        last = money(line.running_balance) or ""
        cells = (
            f"{e.posted_at:%Y-%m-%d %H:%M:%S}",
            e.reference,
            e.transaction_type,
            e.instrument or "",
            money(e.amount) or "",  # widened to cents, never rounded
            last,
            f"{e.ledger_account} {names.get(e.ledger_account, '')}",
        )
        for text, (_, width, align) in zip(cells, COLUMNS, strict=True):
            shown = pdf.say(text)
            if align == "L":  # amounts are never cut: their columns are wide enough
                shown = _fit(pdf, shown, width - 1)
            pdf.cell(width, ROW, shown, align=align)
        pdf.ln()
        if note:
            pdf.set_x(pdf.l_margin + COLUMNS[0][1])
            pdf.set_text_color(90)
            pdf.multi_cell(0, ROW - 0.6, f"Note: {note}", new_x="LMARGIN", new_y="NEXT")
            pdf.set_text_color(0)
        total += e.amount
    return total, last


def foreign_section(pdf: StatementPdf, s: Statement) -> None:
    if not s.foreign_currency_entries:
        return
    pdf.heading(f"Foreign-currency entries, not in any balance: {len(s.foreign_currency_entries)}")
    pdf.font(7.5)
    for f in s.foreign_currency_entries:
        text = (f"{f.posted_at:%Y-%m-%d %H:%M:%S}  {f.reference}  {f.transaction_type}  "
                f"{format(f.amount, 'f')} {f.currency}: {f.reason}")  # fmt: skip
        pdf.multi_cell(0, 4, pdf.say(text), new_x="LMARGIN", new_y="NEXT")


def coverage_section(pdf: StatementPdf, s: Statement) -> None:
    pdf.heading("Coverage")
    by_endpoint = defaultdict(list)
    for f in s.coverage.fetches:
        by_endpoint[f.endpoint].append(f)
    pdf.font(8)
    if not by_endpoint:
        pdf.pair("Windows fetched", "none recorded")
    for endpoint, fetches in sorted(by_endpoint.items()):
        first = min(f.window_start for f in fetches)
        end = max(f.window_end for f in fetches)
        rows = sum(f.row_count for f in fetches)
        pdf.pair(f"Windows fetched: {endpoint}",
                 f"{len(fetches)} windows from {first:%Y-%m-%d %H:%M} to {end:%Y-%m-%d %H:%M} "
                 f"UTC, {rows} rows")  # fmt: skip
    if not s.coverage.gaps:
        pdf.pair("Gaps", "none: the period is covered")
    for g in s.coverage.gaps:
        pdf.pair(f"Gap: {g.endpoint}", f"{g.start:%Y-%m-%d %H:%M:%S} to {g.end:%Y-%m-%d %H:%M:%S}")


def version_section(pdf: StatementPdf, s: Statement) -> None:
    pdf.heading("Version")
    pdf.pair("Version", str(s.version) if s.version is not None else "(unpublished)")
    d = s.diff
    if d is None:
        pdf.pair("Supersedes", "nothing: the first version of this month")
        return
    pdf.pair(
        "Supersedes", f"v{d.previous_version} (content sha256 {d.previous_content_hash[:16]}...)"
    )
    pdf.pair("Opening balance change", f"{money(d.opening_delta)} {s.currency}")
    pdf.pair("Closing balance change", f"{money(d.closing_delta)} {s.currency}")
    for label, refs in (("Entries added", d.added), ("Entries removed", d.removed),
                        ("Entries changed", tuple(c.reference for c in d.changed))):  # fmt: skip
        shown = ", ".join(refs[:30]) + (f" and {len(refs) - 30} more" if len(refs) > 30 else "")
        pdf.pair(f"{label}: {len(refs)}", shown or "-")
    for c in d.changed[:30]:
        fields = "; ".join(f"{name}: {before!s} -> {after!s}" for name, before, after in c.fields)
        pdf.pair(f"  {c.reference}", fields)
