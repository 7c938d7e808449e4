"""P2's embedding service: OpenAI ``/v1/embeddings`` on sentence-transformers models.

Importing the package makes Hugging Face libraries offline: models are local
directories, and a hub lookup would hang for a minute and a half before failing.
"""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
