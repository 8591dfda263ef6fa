"""Counts of an optimized HLO module, from its text: every instruction of
every computation (fused ones included) is one record (opcode, elements of
its largest output array); names and layouts are not costs.
"""

import re

_INSTRUCTION = re.compile(r"^\s*(?:ROOT\s+)?%?[\w.\-]+\s*=\s*(.+?)\s+([a-z][\w\-]*)\(")
_ARRAY = re.compile(r"\b[a-z]+\d*\[([\d,]*)\]")


def _elements(shape):
    sizes = []
    for dims in _ARRAY.findall(shape):
        count = 1
        for d in filter(None, dims.split(",")):
            count *= int(d)
        sizes.append(count)
    return max(sizes, default=0)


def count(text):
    records = []
    for line in text.splitlines():
        match = _INSTRUCTION.match(line)
        if match and not line.lstrip().startswith(("HloModule", "//")):
            shape, opcode = match.groups()
            records.append((opcode, _elements(shape)))
    return {
        "records": records,
        "instructions": len(records),
        "fusions": sum(1 for op, _ in records if op == "fusion"),
    }
