"""The tests' tiny backbones: a 2-block, 32-wide timm ViT and open_clip CLIP on 16-pixel images (random init)."""

VIT = dict(
    name="vit",
    library="timm",
    arch="vit_base_patch16_224",
    paradigm="supervised",
    img_size=16,
    model_kwargs=dict(patch_size=4, embed_dim=32, depth=2, num_heads=2),
)
CLIP = dict(
    name="clip",
    library="open_clip",
    arch="repdrift-test-tiny-clip-16",
    paradigm="clip",
    img_size=16,
    model_cfg=dict(
        embed_dim=32,
        vision_cfg=dict(image_size=16, layers=2, width=32, head_width=16, patch_size=4),
        text_cfg=dict(context_length=16, vocab_size=49408, width=32, heads=2, layers=1),
    ),
)
