"""Conversation: the one in-memory shape every dataset format is turned into before rendering."""

from dataclasses import dataclass, field

ROLES = ("system", "user", "assistant")


@dataclass
class Conversation:
    """messages: [{"role": "system"|"user"|"assistant", "content": str}, ...]; source: "file:line" or "file:record N".

    Tool-calling records (appliance/data/tools.py) add assistant messages with `tool_calls`, role "tool" messages
    (a tool's result) and `tools`, the function schemas the chat template renders (None: the record has none).

    Preference (ranking) records keep the prompt in `messages` (ending with a user turn) and the two candidate
    replies in `chosen`/`rejected`; `for_sft()` gives the conversation with the chosen reply as the answer.
    `dataset` is the dataset_info.json key it was read under ("" for a plain file): max_samples and mixing work
    per dataset. `kto_tag` is KTO's label of the final answer (True = desirable), read only for stage kto.
    """

    messages: list[dict] = field(default_factory=list)
    source: str = ""
    chosen: str | None = None
    rejected: str | None = None
    dataset: str = ""
    kto_tag: bool | None = None
    tools: list[dict] | None = None

    def for_sft(self) -> list[dict]:
        if self.chosen is not None and (not self.messages or self.messages[-1]["role"] != "assistant"):
            return self.messages + [{"role": "assistant", "content": self.chosen}]
        return self.messages

    @property
    def uses_tools(self) -> bool:
        """Whether rendering needs a template that knows tools (definitions, calls or results)."""
        return bool(self.tools) or any(m["role"] == "tool" or m.get("tool_calls") for m in self.messages)

    @property
    def turns(self) -> int:
        return sum(1 for m in self.for_sft() if m["role"] != "system")
