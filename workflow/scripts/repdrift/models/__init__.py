"""Backbones (timm, open_clip) behind one interface, and the demo's own tiny pre-training.

- `build_backbone(cfg, weights)`: a `backbones:` config entry (+ a local weights file) -> `Backbone`
  (see `repdrift.models.build` for the config keys);
- `save_backbone_weights(obj, path)`: safetensors under the library's own key names, loadable by the above;
- `repdrift.models.pretrain.pretrain(...)`: supervised / CLIP / DINO pre-training of the demo's tiny backbones,
  imported by its own name only where a job pre-trains.

timm and open_clip are imported when a backbone of that library is built (`build.build_backbone`), not here.
`weights` resolves a backbone's `weights:` value to the local file the rules read. May import repdrift.study, .data,
.formats, .errors and training.lr_schedule (demo pre-training's schedule).
"""

from .backbone import POOLS, Backbone
from .build import BACKBONE_KEYS, LIBRARIES, PARADIGMS, backbone_spec, build_backbone, save_backbone_weights

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
