# repdrift: how fine-tuning moves pre-trained vision transformers away from pre-training.
# The default config is the embedded demo; `--configfile config/paper.yaml` is the paper's grid.
import sys

from snakemake.utils import min_version, validate

from repdrift.study.config import check_known_keys

min_version("9.0")


# `--configfile` replaces the demo instead of merging into it: Snakemake merges nested keys, so the demo's
# datasets, backbones and grids would otherwise leak into any other study.
if not workflow.overwrite_configfiles:

    configfile: "config/config.yaml"


# A misspelt key (`img_sise:` in a backbone entry) is named in one line, with the valid keys, before the schema's
# own much longer message.
check_known_keys(config, f"{workflow.basedir}/workflow/schemas/config.schema.yaml")
validate(config, "workflow/schemas/config.schema.yaml")


report: "workflow/report/workflow.rst"


include: "rules/common.smk"
include: "rules/data.smk"
include: "rules/pretrain.smk"
include: "rules/weights.smk"
include: "rules/finetune.smk"
include: "rules/features.smk"
include: "rules/metrics.smk"
include: "rules/aggregate.smk"
include: "rules/analysis.smk"
include: "rules/figures.smk"
include: "rules/preserving.smk"
include: "rules/rulers.smk"
include: "rules/external.smk"


rule all:
    default_target: True
    input:
        all_outputs(),


# Seconds-long steps over the study's small tables: on a cluster they run where Snakemake runs, not as jobs.
localrules:
    all,
    aggregate,
    similarity_space,
    correlation,
    paper_tables,
    findings,
    tradeoff,
    rulers,
    figures,


onerror:
    # Fine-tunes that diverged left a failed.json (repdrift.study.failures): say how the study finishes without them.
    new_failures = sorted(set(STUDY.failed()) - set(FAILED))
    if new_failures:
        print(
            f"repdrift: {len(new_failures)} run(s) failed and are recorded as failed "
            f"({', '.join(new_failures)}). Run Snakemake again to finish the study without them (the findings page "
            "lists them), or fix the config (e.g. train.lr) to retry them.",
            file=sys.stderr,
        )
