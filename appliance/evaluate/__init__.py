"""Evaluation: text metrics, perplexity, A/B comparison (HF and GGUF), blind human scoring and reports.

The command is `airlock eval MODEL --data HELDOUT [--base BASE] [--gguf FILE ...] [--blind] [--report DIR]`
(appliance/commands/eval.py); everything it does is a plain function in the modules here.
"""
