"""Fine-tuned model names: ``ft:<base>:<suffix>:<job id>``, as the gateway routes them.

``<base>`` is the model group the job fine-tuned (``chat``, ``code``,
``embedding``), ``<suffix>`` the job's (possibly empty) suffix.
"""

from __future__ import annotations

import re

from p2.core.finetuned import FineTunedName, parse_finetuned

SUFFIX = re.compile(r"^[A-Za-z0-9._-]{1,40}$")  # no ':', the separator

ModelName = FineTunedName
parse = parse_finetuned
