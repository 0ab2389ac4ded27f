"""`statement.pdf` (fpdf2): the statement as a finance team files it.

Page 1 opens with the account, period and a FINAL / PROVISIONAL badge (with the reasons), then
the summary (opening, movements by type named from the chart of accounts, closing), the
reconciliation with the broker's balance and a running-balance chart; the transactions follow
with their running balance (the table header repeats after every page break), then the
foreign-currency entries, the coverage and the version with its diff. Every page's footer has
"page N of M", the statement's content hash and a CFD risk warning.

Amounts are the same text as in `statement.json` and the CSV (`Decimal`, never a float);
`crosscheck` reads the stated facts back with pypdf. The bytes depend on the statement alone:
the creation date is the period's end and fpdf2 derives the file ID from the content, so
rendering the same statement twice gives the same file.
"""

from __future__ import annotations

from decimal import Decimal, localcontext
from typing import BinaryIO

from fpdf import FPDF

from ledger_etl.statements.document import money, statement_content_hash, type_account_names
from ledger_etl.statements.model import Statement
from ledger_etl.statements.pdf_fonts import Typeface, load_typeface
from ledger_etl.statements.pdf_parts import (
    balance_chart,
    coverage_section,
    foreign_section,
    transactions_table,
    version_section,
)

CFD_WARNING = (
    "Risk warning: CFDs are complex, leveraged products, so a small price move against you can "
    "wipe out your money quickly; trade them only if you understand how they work and can "
    "afford to lose what you put in."
)
MARGIN = 12
BADGE = {"FINAL": (22, 122, 62), "PROVISIONAL": (196, 120, 0)}


def entries(count: int) -> str:
    return f"{count} entry" if count == 1 else f"{count} entries"


class StatementPdf(FPDF):
    def __init__(self, statement: Statement) -> None:
        super().__init__(orientation="portrait", unit="mm", format="A4")
        self.statement = statement
        self.content_hash = statement_content_hash(statement)
        self.face: Typeface = load_typeface(self)
        self.set_margins(MARGIN, MARGIN + 4, MARGIN)
        self.set_auto_page_break(True, margin=24)
        self.set_creation_date(statement.period.end)
        title = f"Statement {statement.account_id} {statement.period.label}"
        self.set_title(self.face.text(title))
        self.set_author("ledger_etl")
        self.set_producer("ledger_etl (fpdf2)")

    def font(self, size: float, bold: bool = False) -> None:
        self.set_font(self.face.family, "B" if bold else "", size)

    def say(self, value: object) -> str:
        return self.face.text(value)

    def header(self) -> None:
        s = self.statement
        self.set_y(7)
        self.font(7)
        self.set_text_color(110)
        line = f"{s.account_id} · {s.period.label} · {s.currency} · {s.status}"
        self.cell(0, 4, self.say(line), align="R")
        self.set_text_color(0)
        self.set_y(MARGIN + 4)

    def footer(self) -> None:
        self.set_y(-21)
        self.set_draw_color(180)
        self.line(MARGIN, self.get_y(), self.w - MARGIN, self.get_y())
        self.font(6.5)
        self.set_text_color(90)
        self.cell(0, 4, f"content sha256 {self.content_hash}", align="L")
        self.cell(0, 4, f"page {self.page_no()} of {{nb}}", align="R", new_x="LMARGIN",
                  new_y="NEXT")  # fmt: skip
        self.multi_cell(0, 3, self.say(CFD_WARNING), align="L")
        self.set_text_color(0)

    def heading(self, text: str) -> None:
        if self.will_page_break(16):
            self.add_page()
        self.ln(3)
        self.font(10.5, bold=True)
        self.cell(0, 6, self.say(text), new_x="LMARGIN", new_y="NEXT")
        self.set_draw_color(0)
        self.line(MARGIN, self.get_y(), self.w - MARGIN, self.get_y())
        self.ln(1.5)

    def amount_row(
        self, label: str, count: int | None, amount: str, bold: bool = False, indent: float = 0
    ) -> None:
        """`label  [count entries]  amount` with the amount right-aligned at the margin."""
        self.font(8.5 if bold else 8, bold)
        self.set_x(MARGIN + indent)
        self.cell(126 - indent, 5, self.say(label))
        self.cell(22, 5, "" if count is None else entries(count), align="R")
        self.cell(0, 5, self.say(amount), align="R", new_x="LMARGIN", new_y="NEXT")

    def pair(self, label: str, value: str, bold: bool = False, width: float = 62) -> None:
        """One `label  value` line of the summary (crosscheck reads these back)."""
        self.font(8.5, bold)
        self.cell(width, 5, self.say(label))
        self.multi_cell(0, 5, self.say(value), new_x="LMARGIN", new_y="NEXT")


def write_pdf(statement: Statement, handle: BinaryIO) -> dict[str, object]:
    pdf = StatementPdf(statement)
    pdf.add_page()
    _title(pdf, statement)
    _summary(pdf, statement)
    _reconciliation(pdf, statement)
    balance_chart(pdf, statement)
    with localcontext() as ctx:
        ctx.prec = 60
        total, last = transactions_table(pdf, statement)
    foreign_section(pdf, statement)
    coverage_section(pdf, statement)
    version_section(pdf, statement)
    if pdf.face.replaced:
        pdf.heading("Characters not shown")
        pdf.font(8)
        pdf.multi_cell(0, 4, f"{pdf.face.replaced} character(s) this PDF's font cannot draw "
                       f"({', '.join(pdf.face.examples)}, ...) are printed as '?'; statement.json "
                       "holds the exact text.")  # fmt: skip
    handle.write(bytes(pdf.output()))
    return {"rows": len(statement.lines), "amount_sum": format(total, "f"), "closing_balance": last}


def _title(pdf: StatementPdf, s: Statement) -> None:
    pdf.font(16, bold=True)
    pdf.cell(0, 9, pdf.say(f"Monthly statement {s.period.label}"), new_x="LMARGIN", new_y="NEXT")
    end = s.period.end
    pdf.pair("Account", s.account_id)
    pdf.pair("Account name", s.account_name or "(none)")
    pdf.pair("Currency", s.currency)
    pdf.pair("Period (UTC)", f"{s.period.start:%Y-%m-%d %H:%M} to {end:%Y-%m-%d %H:%M} (exclusive)")
    pdf.font(8.5)
    pdf.cell(62, 7, "Status")
    colour = BADGE.get(s.status, (120, 120, 120))
    pdf.set_fill_color(*colour)
    pdf.set_text_color(255)
    pdf.font(10, bold=True)
    pdf.cell(pdf.get_string_width(s.status) + 8, 7, pdf.say(s.status), fill=True, align="C",
             new_x="LMARGIN", new_y="NEXT")  # fmt: skip
    pdf.set_text_color(0)
    if s.status_reasons:
        pdf.font(8)
        pdf.set_text_color(*colour)
        for reason in s.status_reasons:
            pdf.set_x(MARGIN + 62)
            pdf.multi_cell(0, 4, pdf.say(f"- {reason}"), new_x="LMARGIN", new_y="NEXT")
        pdf.set_text_color(0)


def _summary(pdf: StatementPdf, s: Statement) -> None:
    """Opening, the movements by type (named from the chart of accounts), closing; then the
    same movements by ledger account. Amounts share one right-aligned column."""
    c = s.currency
    pdf.heading("Summary")
    pdf.amount_row("Opening balance", None, f"{money(s.opening_balance)} {c}", bold=True)
    names = type_account_names(s)
    for t in s.totals_by_type:
        label = f"{t.key} - {names.get(t.key, t.name)}"
        pdf.amount_row(label, t.count, f"{money(t.amount)} {c}", indent=4)
    pdf.amount_row("Movement", len(s.lines), f"{money(s.movement)} {c}", bold=True)
    pdf.amount_row("Closing balance", None, f"{money(s.closing_balance)} {c}", bold=True)
    pdf.ln(1.5)
    pdf.font(8, bold=True)
    pdf.cell(0, 5, "By ledger account", new_x="LMARGIN", new_y="NEXT")
    for t in s.totals_by_ledger_account:
        pdf.amount_row(f"{t.key} {t.name}", t.count, f"{money(t.amount)} {c}", indent=4)


def _reconciliation(pdf: StatementPdf, s: Statement) -> None:
    r = s.reconciliation
    c = s.currency

    def amount(value: Decimal | None) -> str:
        return "-" if value is None else f"{money(value)} {c}"

    pdf.heading("Reconciliation with the broker's balance")
    pdf.pair("Result", r.status, bold=True)
    observed = "-" if r.observed_at is None else f"{r.observed_at:%Y-%m-%d %H:%M:%S} UTC"
    pdf.pair("Broker balance observed at", observed)
    pdf.pair("Broker balance", amount(r.observed_balance))
    pdf.pair("Ledger movement since the period end", amount(r.movement_between))
    pdf.pair("Implied closing balance", amount(r.implied_closing))
    pdf.pair("Difference", amount(r.difference))
    if r.reason:
        pdf.pair("Note", r.reason)
