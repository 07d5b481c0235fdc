"""Run llama.cpp's converters with facts supplied by Airlock instead of guessed (or left out) by the converter.

    python -m appliance.offline converter_shim.py [--pre NAME] [--add-bos 0|1] [--add-eos 0|1] [--special -] \\
        [--metadata FILE.json] -- CONVERTER_DIR/convert_hf_to_gguf.py MODEL_DIR [CONVERTER ARGS...]

--pre NAME: the converter names a tokenizer's BPE pre-tokenizer (how text is split before merges) by hashing the
tokens of a probe string and looking the hash up in a table; a tokenizer it has never seen stops the conversion.
Here the lookup returns NAME instead. The caller must then prove the choice right by comparing tokenizations
(appliance.export.pretokenizer.compare); this script alone proves nothing.

--add-bos / --add-eos: whether the model's tokenizer puts BOS/EOS around a text. The converter reads this from
tokenizer files, but files saved by transformers 5 often no longer say it, and llama.cpp then falls back to its own
default per vocabulary type (for sentencepiece: add BOS), so llama.cpp would feed the model a token it never saw
in training. The caller measures the HF tokenizer and passes the answer. With --special - the answer comes later,
as one JSON line ({"bos": true, "eos": false}) on stdin, read only when the vocabulary is written: the caller loads
the HF tokenizer while this converter imports torch and reads the weights, instead of before.

--metadata FILE.json: the `general.*` override appliance.export.metadata writes. The converter's own reader
(gguf-py's Metadata.load, which convert_hf_to_gguf.py feeds from its --metadata option) takes it; the shim hands
it to convert_lora_to_gguf.py too, which has no such option, and adds what the reader skips: "general.license"
(read only from a model card there) and Airlock's own keys (any key outside `general.`, written as strings).

Everything else is the converter's own code, unchanged. It runs in a child, so it imports nothing from appliance.
"""

import json
import runpy
import sys
from pathlib import Path


def main(argv: list[str]) -> None:
    if "--" not in argv:
        sys.exit(__doc__)
    split = argv.index("--")
    options, (converter, *converter_args) = argv[:split], argv[split + 1:]
    pairs = dict(zip(options[::2], options[1::2]))
    converter = Path(converter).resolve()
    # The same import set-up the converter does for itself: its own gguf-py, then its conversion package.
    sys.path.insert(0, str(converter.parent))
    sys.path.insert(1, str(converter.parent / "gguf-py"))
    import gguf
    from conversion.base import TextModel

    if "--pre" in pairs:
        name = pairs["--pre"]
        TextModel.get_vocab_base_pre = lambda self, tokenizer: name

    flags = _special_flags(pairs)
    if flags:
        original = gguf.SpecialVocab.add_to_gguf

        def add_to_gguf(self, writer, *args, **kwargs):
            self.add_special_token.update(flags())
            return original(self, writer, *args, **kwargs)

        gguf.SpecialVocab.add_to_gguf = add_to_gguf
    if "--metadata" in pairs:
        _metadata(gguf, Path(pairs["--metadata"]))
    sys.argv = [str(converter), *converter_args]
    runpy.run_path(str(converter), run_name="__main__")


def _special_flags(pairs: dict):
    """A function giving the BOS/EOS flags from --add-bos/--add-eos, or from stdin (--special -), or None."""
    if pairs.get("--special") == "-":
        received: list[dict] = []

        def from_stdin() -> dict:
            if not received:
                line = sys.stdin.readline()
                if not line:
                    sys.exit("converter_shim: the BOS/EOS flags never came on stdin (the caller stopped)")
                received.append({typ: bool(value) for typ, value in json.loads(line).items() if typ in ("bos", "eos")})
            return received[0]

        return from_stdin
    flags = {typ: pairs[f"--add-{typ}"] == "1" for typ in ("bos", "eos") if f"--add-{typ}" in pairs}
    return (lambda: flags) if flags else None


def _metadata(gguf, path: Path) -> None:
    import json

    override = json.loads(path.read_text(encoding="utf-8"))
    load, write = gguf.Metadata.load, gguf.Metadata.set_gguf_meta_model

    def load_with_override(metadata_override_path=None, *args, **kwargs):
        metadata = load(metadata_override_path or path, *args, **kwargs)
        if "general.license" in override:
            metadata.license = override["general.license"]
        return metadata

    def write_with_own_keys(self, writer):
        write(self, writer)
        for key, value in override.items():
            if not key.startswith("general."):
                writer.add_string(key, str(value))

    gguf.Metadata.load = staticmethod(load_with_override)
    gguf.Metadata.set_gguf_meta_model = write_with_own_keys


if __name__ == "__main__":
    main(sys.argv[1:])
