"""The sources and docs cite only files that are in the repository, and only sections that docs/METHOD.md has."""

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CITING = [
    *sorted((REPO / "dydet").rglob("*.py")),
    *sorted((REPO / "tests").rglob("*.py")),
    *sorted((REPO / "benchmarks").glob("*.py")),
    *sorted((REPO / "docs").glob("*.md")),
    REPO / "README.md",
]
# Documents, not the Markdown files dydet writes (speed.md): upper-case names (METHOD.md) or paths under docs/ or cfg/
MARKDOWN = re.compile(r"(?<![\w/.-])((?:[\w.-]+/)*[A-Z][A-Z_]*\.md|(?:docs|cfg|dydet)/[\w./-]+\.md)\b")
SECTION = re.compile(r'METHOD\.md\)?,\s*"([^"]+)"')


def test_every_cited_markdown_file_exists():
    missing = []
    for file in CITING:
        for name in MARKDOWN.findall(file.read_text(encoding="utf-8")):
            candidates = (REPO / name, file.parent / name, REPO / "docs" / name)
            if not any(c.is_file() for c in candidates):
                missing.append(f"{file.relative_to(REPO)} cites {name}")
    assert not missing, "\n".join(missing)


def test_cited_method_sections_exist():
    headings = re.findall(r"^#+ (.+)$", (REPO / "docs" / "METHOD.md").read_text(encoding="utf-8"), flags=re.MULTILINE)
    cited = {(f, s) for f in CITING for s in SECTION.findall(" ".join(f.read_text(encoding="utf-8").split()))}
    assert cited, "nothing cites docs/METHOD.md's sections"
    bad = [f"{f.relative_to(REPO)}: '{s}'" for f, s in sorted(cited) if not any(h.startswith(s) for h in headings)]
    assert not bad, f"no such section in docs/METHOD.md: {bad}"
