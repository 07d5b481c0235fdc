"""The foundation: CLI start-up stays light, configs validate with suggestions, the offline guard bites."""

import json
import socket
import subprocess
import sys
from dataclasses import dataclass, field
from typing import Literal

import pytest

from appliance import schema
from appliance.errors import AirlockError
from conftest import airlock_argv


def test_help_does_not_import_the_training_stack():
    code = ("import sys; from appliance.cli import build_parser; build_parser().format_help(); "
            "heavy = [m for m in ('torch', 'transformers', 'peft', 'trl', 'datasets', 'llama_cpp', 'textual') "
            "if m in sys.modules]; print(','.join(heavy))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "", f"airlock --help imported {out}"


def test_help_runs_and_lists_commands():
    proc = subprocess.run(airlock_argv("--help"), capture_output=True, text=True)
    assert proc.returncode == 0
    assert "setup" in proc.stdout


@dataclass
class Example:
    name: str
    rate: float = 1e-4
    steps: int = 10
    mode: Literal["lora", "full"] = "lora"
    targets: list[str] = field(default_factory=list)
    flag: bool = False


def test_schema_suggests_nearest_key():
    with pytest.raises(AirlockError) as err:
        schema.build(Example, {"name": "x", "rat": 0.1})
    assert "unknown key 'rat'" in err.value.render() and "did you mean 'rate'" in err.value.render()


def test_schema_coerces_yaml_quirks_and_rejects_bad_values():
    cfg = schema.build(Example, {"name": "x", "rate": "2e-4", "targets": "q_proj, v_proj", "flag": "yes"})
    assert cfg.rate == 2e-4 and cfg.targets == ["q_proj", "v_proj"] and cfg.flag is True
    with pytest.raises(AirlockError, match="not one of"):
        schema.build(Example, {"name": "x", "mode": "qlora-ish"})
    with pytest.raises(AirlockError, match="whole number"):
        schema.build(Example, {"name": "x", "steps": 2.5})
    with pytest.raises(AirlockError, match="missing required"):
        schema.build(Example, {})


def test_overrides_are_typed_and_nested():
    assert schema.parse_overrides(["a.b=3", "c=true", "d=2e-4", "e=[1, 2]"]) == {
        "a": {"b": 3}, "c": True, "d": 2e-4, "e": [1, 2]}


def test_guard_blocks_and_logs_connections(tmp_path):
    log = tmp_path / "guard.log"
    code = (
        "import socket\nfrom appliance.offline import install_guard\ninstall_guard()\n"
        "try:\n    socket.create_connection(('198.51.100.1', 443), timeout=1)\nexcept Exception as e:\n"
        "    print(type(e).__name__)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**__import__("os").environ, "AIRLOCK_NET_GUARD_LOG": str(log)}).stdout
    assert "OfflineViolation" in out
    assert "BLOCKED" in log.read_text() and "198.51.100.1" in log.read_text()


def test_errors_exit_nonzero_without_traceback(tmp_path):
    proc = subprocess.run(airlock_argv("setup", "--bogus"), capture_output=True, text=True)
    assert proc.returncode != 0 and "Traceback" not in proc.stderr


def test_catalog_has_default_and_valid_cards():
    from appliance.catalog import default_card, load_catalog

    cards = load_catalog()
    assert default_card().embedded is not None
    for card in cards.values():
        assert card.lora_targets and card.license and card.repo_id.count("/") == 1
