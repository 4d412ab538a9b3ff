"""Real PDF and DOCX files for the tests, made by the tools people make them with: Debian's
Chromium prints HTML to PDF, LibreOffice converts HTML to DOCX. Hand-made stubs would only test
what their author believed those files hold.

Tests that need them skip, saying why, when chromium or soffice is not installed (`.ci/run`
installs both)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking"]
FACT = "The lighthouse keeper's cat is named Marmalade Quasar."
QUESTION = "What is the lighthouse keeper's cat named?"
FACT_PAGE = 3

_FILLER = (
    "The tower was built from granite blocks hauled up the cliff by mule. Its walls are two metres "
    "thick at the base and narrow towards the gallery. Storms in winter shake the windows of the "
    "watch room, and spray reaches the lantern on the worst nights of the year."
)

MANUAL_HTML = f"""<!doctype html>
<html><head><meta charset="utf-8"><title>Lighthouse manual</title></head><body>
<h1>Lighthouse manual</h1>
{"".join(f"<p>{_FILLER} Paragraph {n} of the history.</p>" for n in range(6))}
<div style="page-break-before: always">
<h2>Fuel and lamp</h2>
<p>The lamp burns paraffin oil carried up from the store below the stairs every evening.</p>
{"".join(f"<p>{_FILLER} Paragraph {n} of the fuel notes.</p>" for n in range(4))}
</div>
<div style="page-break-before: always">
<h2>Animals</h2>
<p>{FACT}</p>
<p>Gulls nest on the rocks below the gallery each spring.</p>
</div>
</body></html>
"""

# A scan: the text is drawn on a canvas, which Chromium prints as an image, with no text layer.
SCAN_HTML = """<!doctype html><html><body><canvas id="c" width="700" height="300"></canvas><script>
const g = document.getElementById("c").getContext("2d");
g.font = "40px serif"; g.fillText("Scanned page: the ferry leaves at noon", 10, 120);
</script></body></html>
"""

HANDBOOK_HTML = """<!doctype html>
<html><head><meta charset="utf-8"><title>Handbook</title></head><body>
<h1>Staff handbook</h1>
<p>Welcome to the harbour office. This handbook explains the daily routine.</p>
<h2>Holidays</h2>
<p>Each harbour clerk receives thirty-one days of paid leave per year.</p>
<h3>Booking leave</h3>
<p>Leave is booked in the blue ledger kept beside the tide tables.</p>
<ul><li>Ask the harbour master first</li><li>Write the dates in ink</li></ul>
<h2>Equipment</h2>
<table><tr><th>Item</th><th>Location</th></tr><tr><td>Foghorn key</td><td>Drawer seven</td></tr></table>
</body></html>
"""


def need(tool: str) -> str:
    found = shutil.which(tool)
    if not found:
        pytest.skip(f"{tool} is not installed (apt-get install chromium libreoffice-writer; .ci/run does)")
    return found


def print_pdf(html: str, out: Path) -> Path:
    """`html` printed to `out` by Debian's Chromium, as a user's "Save as PDF" would."""
    chromium = need("chromium")
    page = out.with_suffix(".html")
    page.write_text(html, encoding="utf-8")
    subprocess.run(
        [chromium, *CHROMIUM_FLAGS, f"--print-to-pdf={out}", "--no-pdf-header-footer", page.as_uri()],
        check=True,
        capture_output=True,
        timeout=120,
    )
    page.unlink()
    assert out.stat().st_size > 0, "chromium wrote an empty PDF"
    return out


def write_docx(html: str, out: Path) -> Path:
    """`html` converted to DOCX by LibreOffice Writer (headings become Heading 1/2/3 styles)."""
    soffice = need("soffice")
    work = out.parent / f".{out.stem}-soffice"
    work.mkdir()
    page = work / f"{out.stem}.html"
    page.write_text(html, encoding="utf-8")
    subprocess.run(
        [
            soffice,
            f"-env:UserInstallation={(work / 'profile').as_uri()}",  # never another run's profile
            "--headless",
            "--infilter=HTML (StarWriter)",  # Writer, not Writer/Web, which cannot write DOCX
            "--convert-to",
            "docx:MS Word 2007 XML",
            "--outdir",
            str(work),
            str(page),
        ],
        check=True,
        capture_output=True,
        timeout=180,
    )
    (work / f"{out.stem}.docx").replace(out)
    shutil.rmtree(work)
    return out


def make_office_corpus(folder: Path) -> Path:
    """A corpus of real files: a 3-page PDF with FACT on page 3, a DOCX with headings, a scan, an
    encrypted PDF, a truncated PDF and DOCX, and a text file."""
    from pypdf import PdfReader, PdfWriter

    folder.mkdir(parents=True, exist_ok=True)
    manual = print_pdf(MANUAL_HTML, folder / "manual.pdf")
    print_pdf(SCAN_HTML, folder / "scan.pdf")
    handbook = write_docx(HANDBOOK_HTML, folder / "handbook.docx")
    raw = manual.read_bytes()
    (folder / "broken.pdf").write_bytes(raw[: len(raw) // 2])  # a download cut off half way
    (folder / "broken.docx").write_bytes(handbook.read_bytes()[:1500])
    locked = PdfWriter(clone_from=PdfReader(manual))
    locked.encrypt("secret")
    with (folder / "locked.pdf").open("wb") as fh:
        locked.write(fh)
    (folder / "notes.txt").write_text("The ferry to the mainland leaves the harbour at seven.\n", encoding="utf-8")
    return folder
