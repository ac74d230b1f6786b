"""Stages "tables" and "analyses" (rules aggregate, similarity_space, correlation, paper_tables, findings, tradeoff,
rulers): torch-free, on polars tables. `tables` aggregates the per-run measurements into the study's tables;
`paper` holds the paper's analyses (the correlation fit, the similarity space) and the helpers the others share;
`findings` judges the paper's claims, `tradeoff` the similarity-preserving methods, `rulers` the other similarity
measures. May import repdrift.study, .formats, .data (manifests), .metrics, .errors, and report.plots for the
figures rule tradeoff draws; never torch.
"""
