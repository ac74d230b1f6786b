"""Backbones (timm, open_clip) behind one interface, and the demo's own tiny pre-training.

- `build_backbone(cfg, weights)`: a `backbones:` config entry (+ a local weights file) -> `Backbone`
  (see `repdrift.models.registry` for the config keys);
- `save_backbone_weights(obj, path)`: safetensors under the library's own key names, loadable by the above;
- `repdrift.models.pretrain.pretrain(...)`: supervised / CLIP / DINO pre-training of the demo's tiny backbones,
  imported by its own name only where a job pre-trains.

timm and open_clip are imported when a backbone of that library is built (`registry.build_backbone`), not here.
"""

from .backbone import POOLS, Backbone
from .registry import BACKBONE_KEYS, LIBRARIES, PARADIGMS, backbone_spec, build_backbone, save_backbone_weights

__all__ = [
    "BACKBONE_KEYS",
    "LIBRARIES",
    "PARADIGMS",
    "POOLS",
    "Backbone",
    "backbone_spec",
    "build_backbone",
    "save_backbone_weights",
]
