"""One module per screen of `airlock tui`; each is a Textual Screen used as an app mode."""
