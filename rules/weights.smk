# Backbone weights named `hf-hub:...`: fetched on a machine with internet, read offline by every GPU job.
from repdrift.models.weights import hub_files

# Parsed while the Snakefile loads: a malformed `weights:` value stops the workflow before any job.
HUB_FILES = hub_files(config["backbones"], BACKBONES_USED)


# Downloads happen only here, on the machine running Snakemake (a login node), never in a cluster job.
localrules:
    fetch_weights,
    fetch_checkpoint,


rule fetch_weights:
    input:
        checkpoints=[weights_file(backbone) for backbone in HUB_FILES],


rule fetch_checkpoint:
    output:
        checkpoint="results/pretrained/{backbone}/hub/{filename}",
        record="results/pretrained/{backbone}/hub/{filename}.json",
    log:
        "results/logs/fetch_checkpoint/{backbone}/{filename}.log",
    benchmark:
        "results/benchmarks/fetch_checkpoint/{backbone}/{filename}.tsv"
    wildcard_constraints:
        filename=r"[^/]+\.(safetensors|bin|pth|pt)",
    conda:
        "../envs/torch.yaml"
    params:
        repo_id=lambda wc: HUB_FILES[wc.backbone].repo_id,
        filename=lambda wc: HUB_FILES[wc.backbone].filename,
        revision=lambda wc: HUB_FILES[wc.backbone].revision,
        key="backbones.{backbone}.weights",
    script:
        "../workflow/scripts/fetch_weights.py"
