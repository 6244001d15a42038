"""A saved model put to work: image preprocessing (MNIST-style centring), predict, export (and serve).

Importing this package does not import torch; `predict` and `export` import it when they run.
"""

from mlplab.use.images import open_image
from mlplab.use.preprocess import INPUT_STYLES, input_style_for, preprocess_image

__all__ = ["INPUT_STYLES", "input_style_for", "open_image", "preprocess_image"]
