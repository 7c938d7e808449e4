"""Fine-tuning, the job platform's second task: LoRA adapters for the chat and code
models (served by llama.cpp), and whole sentence-transformers models for embeddings.

Importing this package registers its job models (``chat``, ``code``, ``embedding``
of task ``fine_tuning``); jobs are created with ``POST /v1/fine_tuning/jobs``.
Nothing heavy is imported here: training runs in a subprocess of the worker
(``python -m jobs.finetune.train``), which alone imports torch.
"""

from jobs.finetune import models

__all__ = ["models"]
