"""``embedserve finetune``: contrastive fine-tuning of an encoder on (query, document) pairs.

The training stack (sentence-transformers, datasets, accelerate) is the optional extra
``embedserve[finetune]``; only :mod:`.command` is imported by the CLI, and it loads the rest
when the command runs.
"""
