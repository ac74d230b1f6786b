"""Stage "fine-tuning" (rules finetune, linear_probe, wiseft): a run's weights, history, test predictions and
per-epoch CKA trajectory. `finetune` trains Full, Linear, Scratch and the similarity-preserving methods
(`preserving`: their penalties and LP-FT's phases) with checkpoints to resume from (`checkpoint`) and the one
learning-rate schedule of every training loop (`lr_schedule`); `wiseft` derives WiSE-FT's runs from two finished
ones. May import torch, repdrift.models, .data, .formats, .study, .errors and measurement.extract (a fine-tune
writes its final model's k-NN features itself); imports nothing of analysis or report.
"""
