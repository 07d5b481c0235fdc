"""sh and Python read the same bytes the same way: each variant of bundle.env and SHA256SUMS below is signed with
the site's key (so only the parsers decide) and must get the same verdict from `sh install.sh --check-only` and
`airlock bundle verify`: both accept it, or both refuse it.

    .venv/bin/python -m pytest tests/test_bundle_parsing.py -q
"""

import subprocess
import sys
from dataclasses import replace

import pytest

import forge
from test_bundle_attacks import recipe, world  # noqa: F401 (fixture)


def _version(v):
    return lambda r: replace(r, version=v)


def _env(change):
    return lambda r: replace(r, edit_env=change)


def _sums(change):
    return lambda r: replace(r, edit_sums=change)


def _line(lines, prefix, new):
    i = next(i for i, line in enumerate(lines) if line.startswith(prefix))
    lines[i] = new(lines[i])


VARIANTS = {
    # accepted by both: normalized PEP 440 versions in every form
    "version_plain": (_version("2.0"), True),
    "version_three_parts": (_version("2024.11.1"), True),
    "version_epoch": (_version("1!2.0"), True),
    "version_pre": (_version("2.0rc1"), True),
    "version_post_dev": (_version("2.0.post1.dev3"), True),
    "version_local": (_version("2.0+site.7"), True),
    # refused by both
    "version_leading_zero": (_version("2.01"), False),
    "version_dash_post": (_version("2.0-1"), False),
    "version_upper": (_version("2.0RC1"), False),
    "version_v_prefix": (_version("v2.0"), False),
    "version_space": (_version("2.0 "), False),
    "env_trailing_space": (_env(lambda e: _line(e, "NAME=", lambda x: x + " ")), False),
    "env_leading_space": (_env(lambda e: _line(e, "NAME=", lambda x: " " + x)), False),
    "env_space_before_equals": (_env(lambda e: _line(e, "NAME=", lambda x: x.replace("=", " =", 1))), False),
    "env_lower_key": (_env(lambda e: _line(e, "NAME=", lambda x: x.lower())), False),
    "env_cr": (_env(lambda e: _line(e, "ENV_MODE=", lambda x: x + "\r")), False),
    "env_vertical_tab": (_env(lambda e: _line(e, "ENV_MODE=", lambda x: x + "\v")), False),
    "env_form_feed": (_env(lambda e: _line(e, "ENV_MODE=", lambda x: x + "\f")), False),
    "env_group_separator": (_env(lambda e: _line(e, "ENV_MODE=", lambda x: x + "\x1d")), False),
    "env_next_line_u0085": (_env(lambda e: _line(e, "ENV_MODE=", lambda x: x + "\x85")), False),
    "env_keys_swapped": (_env(lambda e: e.__setitem__(slice(1, 3), [e[2], e[1]])), False),
    "env_comment_line": (_env(lambda e: e.insert(0, "# comment")), False),
    "env_size_leading_zero": (_env(lambda e: _line(e, "SIZE=", lambda x: x.replace("SIZE=", "SIZE=0"))), False),
    "env_number_plus": (_env(lambda e: _line(e, "PAYLOAD_SIZE=", lambda x: x.replace("=", "=+"))), False),
    "env_bom": (_env(lambda e: e.__setitem__(0, "\ufeff" + e[0])), False),
    "sums_binary_marker": (_sums(lambda s: s.__setitem__(0, s[0].replace("  ", " *"))), False),
    "sums_tab": (_sums(lambda s: s.__setitem__(0, s[0].replace("  ", "\t"))), False),
    "sums_trailing_space": (_sums(lambda s: s.__setitem__(0, s[0] + " ")), False),
    "sums_blank_line": (_sums(lambda s: s.insert(6, "")), False),
    "sums_comment": (_sums(lambda s: s.insert(0, "# SHA256SUMS")), False),
    "sums_bsd_style": (_sums(lambda s: s.__setitem__(0, f"SHA256 (install.sh) = {s[0][:64]}")), False),
    "sums_dot_slash": (_sums(lambda s: s.__setitem__(0, s[0].replace("  ", "  ./"))), False),
}


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_sh_and_python_agree(name, world, tmp_path):
    change, accepted = VARIANTS[name]
    bundle = forge.write(change(recipe(world)), tmp_path / "bundle", world["keys"])
    key = str(world["keys"].public_file)
    sh = subprocess.run(["sh", str(world["genuine"] / "install.sh"), "--bundle", str(bundle), "--check-only",
                         "--target", str(tmp_path / "target"), "--trusted-key", key], capture_output=True, text=True,
                        timeout=60)
    py = subprocess.run([sys.executable, "-m", "appliance", "bundle", "verify", str(bundle), "--trusted-key", key],
                        capture_output=True, text=True, timeout=60)
    assert (sh.returncode == 0, py.returncode == 0) == (accepted, accepted), \
        f"sh: {sh.returncode} {sh.stderr}\npython: {py.returncode} {py.stderr}"
    assert "Traceback" not in sh.stderr + py.stderr
