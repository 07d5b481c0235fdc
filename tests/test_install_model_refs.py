"""A model's refs in the site's shared HF cache follow the release that is current: an install that is refused
after its models went in puts refs/main back (the release that stays resolves its own model), and a rollback
points each model of the release made current at the revision that release carried.

    .venv/bin/python -m pytest tests/test_install_model_refs.py -q
"""

import json

from appliance.hfcache import install_snapshot, read_ref, repo_folder, resolve_model
from installer.install import Undo, _install_models
from installer.layout import Layout
from installer.manifest import ModelEntry
from installer.rollback import restore_model_refs

REPO, OLD, NEW = "site/model", "a" * 40, "b" * 40


class Bundle:
    """What _install_models reads of a manifest: its models."""

    def __init__(self, *models):
        self.models = list(models)


def _model_files(folder, text):
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps({"model_type": "llama", "note": text}))
    return folder


def test_a_refused_install_puts_the_model_ref_back(tmp_path):
    lay = Layout(tmp_path / "home")
    install_snapshot(_model_files(tmp_path / "old", "old"), REPO, OLD, cache=lay.hf_cache)
    stage = tmp_path / "stage"
    _model_files(stage / "files" / "models" / "m", "new")
    undo = Undo()
    _install_models(Bundle(ModelEntry(REPO, NEW, "models/m", "hub", "apache-2.0", (), (), ())), stage, lay, undo)
    assert read_ref(REPO, lay.hf_cache) == NEW
    undo.run()  # the smoke test (or anything after the models) refused the bundle
    assert read_ref(REPO, lay.hf_cache) == OLD
    assert not (repo_folder(REPO, lay.hf_cache) / "snapshots" / NEW).exists()
    assert json.loads((resolve_model(REPO, cache=lay.hf_cache) / "config.json").read_text())["note"] == "old"
    undo = Undo()  # a model the site did not have before: taken back whole, ref included
    _install_models(Bundle(ModelEntry("site/other", NEW, "models/m", "hub", "mit", (), (), ())), stage, lay, undo)
    undo.run()
    assert read_ref("site/other", lay.hf_cache) is None


def test_a_rollback_points_models_at_the_release_made_current(tmp_path):
    lay = Layout(tmp_path / "home")
    install_snapshot(_model_files(tmp_path / "old", "old"), REPO, OLD, cache=lay.hf_cache)
    install_snapshot(_model_files(tmp_path / "new", "new"), REPO, NEW, cache=lay.hf_cache)
    assert read_ref(REPO, lay.hf_cache) == NEW
    restored = restore_model_refs(lay, {"models": [{"repo_id": REPO, "revision": OLD},
                                                   {"repo_id": "site/gone", "revision": OLD}]})
    assert restored == [f"{REPO}@{OLD[:12]}"] and read_ref(REPO, lay.hf_cache) == OLD
