"""The offline installer as one file: a zipapp of the `installer` and `appliance` packages (source only), run by
install.sh with the unpacked env's Python: `python airlock-installer.pyz install BUNDLE ...`."""

import zipfile
from pathlib import Path

from appliance.paths import CHECKOUT

MAIN = "import sys\nfrom installer.__main__ import main\nsys.exit(main())\n"


def build_pyz(out: Path) -> Path:
    """Deterministic (fixed timestamps, sorted) so the same sources give the same bytes."""
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zf:
        def add(name: str, data: bytes):
            info = zipfile.ZipInfo(name, date_time=(2020, 1, 1, 0, 0, 0))
            info.compress_type, info.external_attr = zipfile.ZIP_DEFLATED, 0o644 << 16
            zf.writestr(info, data)

        add("__main__.py", MAIN.encode())
        for package in ("installer", "appliance"):
            for path in sorted((CHECKOUT / package).rglob("*.py")):
                if "__pycache__" not in path.parts:
                    add(str(path.relative_to(CHECKOUT)), path.read_bytes())
    return out
