"""check_data(): everything about a run's data that can be refused before a training job exists.

    from appliance.data.preflight import check_data
    check_data(cfg.data, model_dir, cfg.stage)   # raises AirlockError (DataError for bad records); returns the data

Called by `airlock train --from-llamafactory` (and meant for appliance.train.preflight) so a config mistake never
leaves a failed job behind: the dataset and its dataset_info.json entries exist, every record converts, no column
would be left out that data.ignore_columns does not name, interleave_probs match the datasets, and the chat
template resolves (with `model_dir`: the model has one, or data.chat_template gives one) and, for tool-calling
records, renders tools. Stage pt reads documents
(appliance/data/pretrain.py) and renders no chat template, so it needs none; stage kto reads KTO's label. It reads
the whole dataset once, as `airlock data check` does, and loads no tokenizer.
"""

from ..errors import AirlockError
from .columns import refuse_unused
from .config import DataConfig
from .load import Loaded
from .pretrain import load_for_stage
from .template import require, require_tools, resolve


def check_data(cfg: DataConfig, model_dir=None, stage: str = "sft") -> Loaded:
    loaded = load_for_stage(stage, cfg.path, cfg.format, cfg.dataset, cfg.skip_invalid_records)
    refuse_unused(loaded.unused, cfg.ignore_columns, where=str(cfg.path))
    if cfg.eval_path:
        held = load_for_stage(stage, cfg.eval_path, cfg.format, skip=cfg.skip_invalid_records)
        refuse_unused(held.unused, cfg.ignore_columns, where=str(cfg.eval_path))
    datasets = {c.dataset for c in loaded.conversations}
    if cfg.interleave_probs and len(cfg.interleave_probs) != len(datasets):
        raise AirlockError(f"{len(cfg.interleave_probs)} interleave_probs for {len(datasets)} dataset(s)",
                           where="data.interleave_probs", fix="give one probability per dataset, in order")
    if stage == "pt":
        resolve(cfg.chat_template)  # not rendered with, but a template given must exist (the output carries it)
    else:
        require(model_dir, cfg.chat_template)
        if any(c.uses_tools for c in loaded.conversations):  # not mid-training: a template without tools is known now
            require_tools(model_dir, cfg.chat_template)
    return loaded
