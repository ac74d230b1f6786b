import os

# This rule is the one place that may reach the Hub; an offline setting meant for GPU jobs must not stop it
# (an unreachable Hub still falls back to the cache).
os.environ["HF_HUB_OFFLINE"] = "0"

from repdrift.models.weights import HubFile, fetch
from repdrift.rule import run

params = snakemake.params
run(
    snakemake,
    fetch,
    hub=HubFile(params.repo_id, params.filename, params.revision),
    out_path=snakemake.output.checkpoint,
    record_path=snakemake.output.record,
    key=params.key,
)
