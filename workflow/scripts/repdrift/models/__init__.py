"""Backbones (timm, open_clip) behind one interface, and the demo's own tiny pre-training.

- `build_backbone(cfg, weights)`: a `backbones:` config entry (+ a local weights file) -> `Backbone`
  (see `repdrift.models.registry` for the config keys);
- `save_backbone_weights(obj, path)`: safetensors under the library's own key names, loadable by the above;
- `repdrift.models.pretrain.pretrain(...)`: supervised / CLIP / DINO pre-training of the demo's tiny backbones
  (`pretrain` here is that module: the function keeps its module's name, so neither shadows the other).
"""

import os

# Read by huggingface_hub when timm / open_clip import it: a job never reaches for the network. A rule that
# really downloads (fetch_weights) sets HF_HUB_OFFLINE=0 in its environment, which this leaves alone.
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from .backbone import POOLS, Backbone  # noqa: E402
from . import pretrain  # noqa: E402
from .registry import BACKBONE_KEYS, LIBRARIES, PARADIGMS, backbone_spec, build_backbone, save_backbone_weights  # noqa: E402

__all__ = ["BACKBONE_KEYS", "LIBRARIES", "PARADIGMS", "POOLS", "Backbone", "backbone_spec", "build_backbone",
           "pretrain", "save_backbone_weights"]
