"""Box-prompted 2-D segmentation, the job platform's first task: an image and boxes in, one
mask per box out (COCO RLE, area, box; PNG on request).

Importing this package registers its models with ``jobs.registry``: ``boxseg``
(weight-free, the default), ``sam`` (SAM / MedSAM) and ``sam2`` (SAM 2 / MedSAM2),
the last two from local checkpoints.
Nothing heavy is imported here: scikit-image, torch and transformers load on a
worker when a model is loaded.
"""

from jobs.segmentation import models, sam, sam2

DEFAULT_MODEL = "boxseg"

__all__ = ["DEFAULT_MODEL", "models", "sam", "sam2"]
