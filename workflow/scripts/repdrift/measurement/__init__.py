"""Stage "measurements" (rules pretrained_features, measure, knn_pretrained): `extract` writes a model's feature
file of one dataset (torch, repdrift.models, .data, .formats); `measure` turns a run's trajectory, feature files and
predictions into its measurement tables with repdrift.metrics, torch-free (a measure job starts in half a second).
Imports nothing of training, analysis or report.
"""
