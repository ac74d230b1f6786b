"""repdrift: how fine-tuning moves pre-trained vision transformers away from their origin.

One folder per stage (study, data, models, training, measurement, metrics, analysis, report, formats; each
`__init__` says what it may import). Importing the package is cheap: torch, timm and open_clip are imported only
by the modules that hold models (`repdrift.models`, `repdrift.training`, `repdrift.measurement.extract`,
`repdrift.report.attention`, `repdrift.data.loader`), so CPU rules start fast.
"""

__version__ = "0.1.0"
