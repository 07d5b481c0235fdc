"""Reusable widgets of `airlock tui` (each with its styles beside it)."""
