"""malmoi (말모이): Korean-first NLP from sentences to trained models and back to text."""
from .errors import MalmoiError

__version__ = "0.1.0"
__all__ = ["MalmoiError", "__version__"]
