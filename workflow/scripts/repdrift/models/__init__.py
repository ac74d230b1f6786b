"""Backbones (timm, open_clip) behind one interface, and the demo's own tiny pre-training.

- `build_backbone(cfg, weights)`: a `backbones:` config entry (+ a local weights file) -> `Backbone`
  (see `repdrift.models.registry` for the config keys);
- `save_backbone_weights(obj, path)`: safetensors under the library's own key names, loadable by the above;
- `repdrift.models.pretrain.pretrain(...)`: supervised / CLIP / DINO pre-training of the demo's tiny backbones,
  imported by its own name only where a job pre-trains.

timm and open_clip are imported when a backbone of that library is built (`registry.build_backbone`), not here.
"""

import os

# Read by huggingface_hub when timm / open_clip import it: a job never reaches for the network. A rule that
# really downloads (fetch_weights) sets HF_HUB_OFFLINE=0 in its environment, which this leaves alone.
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from .backbone import POOLS, Backbone  # noqa: E402
from .registry import BACKBONE_KEYS, LIBRARIES, PARADIGMS, backbone_spec, build_backbone, save_backbone_weights  # noqa: E402

__all__ = ["BACKBONE_KEYS", "LIBRARIES", "PARADIGMS", "POOLS", "Backbone", "backbone_spec", "build_backbone",
           "save_backbone_weights"]
