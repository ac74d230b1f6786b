"""Stage "figures" (rules figures, attention_maps, and the figures of tradeoff and rulers): `plots` draws the
study's Altair charts, `captions` writes the captions that state their numbers, `attention` the attention sheets.
`plots` and `captions` are torch-free and may import repdrift.analysis and .study; `attention` loads models
(torch, repdrift.models, training.finetune's `load_classifier`).
"""
