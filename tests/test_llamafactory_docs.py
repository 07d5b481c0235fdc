"""docs/llamafactory.md is generated from the code's own tables (appliance/llamafactory/docs.py): it must equal
what the code says, and every table entry must be on it.

    .venv/bin/python -m pytest tests/test_llamafactory_docs.py -q
    airlock llamafactory docs > docs/llamafactory.md     # after changing a table
"""

from pathlib import Path

from appliance.data.columns import COLUMNS, ENTRY_KEYS, TAGS
from appliance.llamafactory.docs import compatibility_page
from appliance.llamafactory.keys import STATUSES, TRAIN
from appliance.llamafactory.tasks import TASK_KEYS_FLAT
from appliance.llamafactory.templates import FAMILIES, REFUSED

PAGE = Path(__file__).resolve().parent.parent / "docs" / "llamafactory.md"


def test_committed_page_is_the_generated_one():
    assert PAGE.read_text(encoding="utf-8") == compatibility_page(), (
        "docs/llamafactory.md is stale: run `airlock llamafactory docs > docs/llamafactory.md`")


def test_every_key_column_and_template_is_listed_with_a_status():
    page = compatibility_page()
    for name in [*TRAIN, *TASK_KEYS_FLAT, *FAMILIES, *REFUSED, *COLUMNS, *ENTRY_KEYS, *TAGS]:
        assert f"| `{name}` |" in page, name
    rows = [line.split(" | ")[1] for line in page.splitlines() if line.startswith("| `")]
    assert rows and set(rows) <= set(STATUSES)
    assert "/work/" not in page and "/home/" not in page  # no machine paths in a committed file
