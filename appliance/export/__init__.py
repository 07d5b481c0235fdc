"""GGUF export for llama.cpp and Ollama: `airlock export gguf SRC --type q4_k_m ...`.

gguf.py runs llama.cpp's own converter (HF -> f16/bf16/q8_0 GGUF, LoRA -> GGUF adapter) with the `general.*`
metadata of metadata.py, quantize.py quantizes in-process with llama-cpp-python, pretokenizer.py handles tokenizers
the converter does not recognize, modelfile.py writes the Ollama Modelfile (its TEMPLATE read off the model's chat
template by chatlayout.py, checked with gotemplate.py's renderer of Go templates), fidelity.py measures what
quantization cost, pipeline.py ties them up.
"""
