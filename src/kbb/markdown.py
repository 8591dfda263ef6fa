"""Markdown tables with names.

A generated document marks each table with the line `<!-- table: NAME -->`
just before it, so that a reader (`kbb pr`'s templates) asks for a table by
its name, never by its position.
"""

import re

_MARK = re.compile(r"^<!-- table: ([\w.-]+) -->\n((?:\|.*\|\n?)+)", re.MULTILINE)


def table(header, rows, name=None):
    """The lines of a table (and a blank line after it); `header` is a
    string "a | b | c" or a sequence; `name` marks it."""
    if isinstance(header, str):
        header = header.split(" | ")
    lines = [f"<!-- table: {name} -->"] if name else []
    lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return lines + [""]


def tables(text):
    """{name: table text} of the named tables of a document."""
    return {m.group(1): m.group(2).rstrip("\n") for m in _MARK.finditer(text)}


def replace(text, name, lines):
    """`text` with the table named `name` replaced by `lines` (a `table`'s),
    or None when it has no such table.

    >>> replace("<!-- table: t -->\\n| x |\\n|---|\\n\\nb", "t", table("y", [], "t"))
    '<!-- table: t -->\\n| y |\\n|---|\\n\\nb'
    """
    for match in _MARK.finditer(text):
        if match.group(1) == name:
            new = "\n".join(lines[:-1]) + "\n"
            return text[: match.start()] + new + text[match.end() :]
    return None


def header(table_text):
    """The column names of a table."""
    first = table_text.split("\n", 1)[0]
    return [cell.strip() for cell in first.strip().strip("|").split("|")]


def strip_comments(text):
    """`text` without HTML comments (and the blank lines they leave)."""
    text = re.sub(r"<!--.*?-->\n?", "", text, flags=re.DOTALL)
    return re.sub(r"\n{3,}", "\n\n", text)
