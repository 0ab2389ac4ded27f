"""The typeface of `statement.pdf`, and text made safe for it.

DejaVu Sans (Debian's fonts-dejavu-core, and the same files elsewhere) covers Latin, Greek,
Cyrillic and many symbols; it is embedded as a subset. Without it the PDF falls back to the
core Helvetica, which knows Latin-1 only. Either way a character the font cannot draw (an
emoji, CJK without a CJK font, a lone surrogate) is printed as "?" and counted, and the
statement then says so: the exact text is always in `statement.json`. Nothing in an account
name or a note can make rendering fail.
"""

from __future__ import annotations

import functools
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path

from fpdf import FPDF

# Where distributions install DejaVu: Debian/Ubuntu, Fedora, Arch, Alpine.
DEJAVU_DIRS = (
    Path("/usr/share/fonts/truetype/dejavu"),
    Path("/usr/share/fonts/dejavu-sans-fonts"),
    Path("/usr/share/fonts/TTF"),
    Path("/usr/share/fonts/dejavu"),
)
REGULAR, BOLD = "DejaVuSans.ttf", "DejaVuSans-Bold.ttf"
LATIN_1 = frozenset(range(0x20, 0x7F)) | frozenset(range(0xA0, 0x100))
MISSING = "?"


def dejavu_dir() -> Path | None:
    for folder in DEJAVU_DIRS:
        if (folder / REGULAR).is_file() and (folder / BOLD).is_file():
            return folder
    return None


@functools.lru_cache(maxsize=4)
def _covered(path: Path) -> frozenset[int]:
    from fontTools.ttLib import TTFont  # fpdf2's own dependency

    with TTFont(path, lazy=True) as font:
        return frozenset(font.getBestCmap())


@dataclass
class Typeface:
    """The family the PDF draws with and the characters it can draw."""

    family: str
    covered: frozenset[int]
    replaced: int = 0  # characters printed as MISSING so far
    examples: list[str] = field(default_factory=list)

    @property
    def embedded(self) -> bool:
        return self.family != "Helvetica"

    def text(self, value: object) -> str:
        """`value` as one printable line: control characters become spaces, characters the
        font lacks become MISSING (counted)."""
        out = []
        for char in str(value):
            if unicodedata.category(char) == "Cc":
                out.append(" ")
            elif ord(char) in self.covered:
                out.append(char)
            else:
                self.replaced += 1
                if len(self.examples) < 3:
                    self.examples.append(f"U+{ord(char):04X}")
                out.append(MISSING)
        return "".join(out)


def load_typeface(pdf: FPDF) -> Typeface:
    """Register DejaVu Sans with `pdf` when it is installed, else use the core Helvetica."""
    folder = dejavu_dir()
    if folder is None:
        return Typeface("Helvetica", LATIN_1)
    pdf.add_font("DejaVu", "", str(folder / REGULAR))
    pdf.add_font("DejaVu", "B", str(folder / BOLD))
    covered = _covered(folder / REGULAR) & _covered(folder / BOLD)
    # Lone surrogates and private-use code points are never text, whatever a font maps.
    printable = frozenset(c for c in covered if c >= 0x20 and not 0xD800 <= c <= 0xF8FF)
    return Typeface("DejaVu", printable)
