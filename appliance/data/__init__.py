"""The data layer: load Alpaca/ShareGPT datasets, validate every record, clean, render with the chat template.

    airlock data check FILE|DIR [--model NAME] [--json]      # the report (appliance.data.check.check)

Public API (the contract other parts use):
    DataConfig, load_conversations(path, format, dataset) -> Loaded, Conversation, DataError,
    render(conversation, tokenizer, train_on) -> (input_ids, labels), prepare(cfg, tokenizer, stage) -> Prepared.
Stage pt reads documents rather than conversations: appliance.data.pretrain.
"""

from .config import DataConfig
from .conversation import Conversation
from .load import Loaded, load_conversations, scan
from .prepare import Prepared, prepare
from .problems import DataError, Problem
from .render import IGNORE, render, segments

__all__ = ["DataConfig", "Conversation", "Loaded", "load_conversations", "scan", "Prepared", "prepare",
           "DataError", "Problem", "IGNORE", "render", "segments"]
