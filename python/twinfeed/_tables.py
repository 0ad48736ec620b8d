"""Terminal tables that fit the terminal (80 columns when not on one).

A table that does not fit is not squeezed (rich would cut headers and numbers to "slippag…"):
columns of free text (reasons) wrap onto more lines, down to :data:`WRAP_MIN` characters;
if that is not enough, whole columns are left out, in an order each table documents (least
useful first), and the caption names what was left out. Numbers, names and times never wrap
or get cut. Titles never wrap: the table is at least as wide as its title when the terminal
allows.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

__all__ = ["WRAP_MIN", "fitted_table", "table_width"]

#: Narrowest a wrapping (free-text) column is made before columns are left out.
WRAP_MIN = 20


def table_width(widths: Sequence[int]) -> int:
    """Characters a rich table with the default box and padding takes for these column
    contents: each column is padded by one space on each side, with a rule between columns
    and at both edges."""
    return sum(w + 2 for w in widths) + len(widths) + 1


def fitted_table(
    title: str,
    columns: Sequence[tuple[str, str]],
    rows: Sequence[Sequence[str]],
    *,
    width: int,
    drop_order: Sequence[str] = (),
    wrap: Sequence[str] = (),
) -> Any:
    """A ``rich.table.Table`` of ``columns`` (``(name, justify)``) and ``rows`` of strings
    that fits ``width``: columns named in ``wrap`` may wrap (to :data:`WRAP_MIN`); then
    columns named in ``drop_order`` are left out, first ones first, until it fits (the caption
    says which)."""
    from rich.table import Table

    names = [name for name, _ in columns]
    content = [max([len(name), *(len(row[i]) for row in rows)]) for i, name in enumerate(names)]
    needed = [
        min(w, max(WRAP_MIN, len(n))) if n in wrap else w
        for n, w in zip(names, content, strict=True)
    ]
    keep = list(range(len(names)))
    dropped: list[str] = []
    for name in drop_order:
        if table_width([needed[i] for i in keep]) <= width:
            break
        if name in names and names.index(name) in keep:
            keep.remove(names.index(name))
            dropped.append(name)
    caption = f"left out to fit {width} columns: {', '.join(dropped)}" if dropped else None
    table = Table(title=title, caption=caption, min_width=min(len(title), width))
    for i in keep:
        if names[i] in wrap:
            table.add_column(names[i], justify=columns[i][1])  # type: ignore[arg-type]
        else:
            table.add_column(
                names[i],
                justify=columns[i][1],  # type: ignore[arg-type]
                no_wrap=True,
                min_width=content[i],
            )
    for row in rows:
        table.add_row(*(row[i] for i in keep))
    return table
