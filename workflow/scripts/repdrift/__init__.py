"""repdrift: how fine-tuning moves pre-trained vision transformers away from their origin.

Importing the package is cheap: torch, timm and open_clip are imported only by the modules that need them
(``repdrift.models``, ``repdrift.training``, ``repdrift.extract``), so CPU rules start fast.
"""

__version__ = "0.1.0"
