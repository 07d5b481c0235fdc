"""DataTable helpers the screens share: refill a table keeping the cursor where it was, read the selected row's key."""

from textual.widgets import DataTable


def replace_rows(table: DataTable, rows: list[tuple]) -> None:
    """Show `rows` (each keyed by its first cell), the cursor staying on the same line where it can."""
    cursor = table.cursor_row
    table.clear()
    for row in rows:
        table.add_row(*row, key=row[0])
    if rows:
        table.move_cursor(row=min(cursor, len(rows) - 1))


def selected_key(table: DataTable) -> str | None:
    """The key of the row under the cursor, or None for an empty table."""
    if not table.row_count:
        return None
    return str(table.coordinate_to_cell_key((table.cursor_row, 0)).row_key.value)
