# The paper's analyses on the aggregated tables: similarity space, correlation, Tables 1 and 2, findings.


rule similarity_space:
    input:
        runs="results/tables/runs.parquet",
    output:
        space="results/analysis/similarity_space.parquet",
        sweep="results/analysis/similarity_sweep.csv",
    log:
        "results/logs/analysis/similarity_space.log",
    benchmark:
        "results/benchmarks/similarity_space.tsv"
    conda:
        "../envs/cpu.yaml"
    params:
        layer=config["analysis"]["cka_layer"],
        similarity=SIMILARITY_METRIC,
        divergence=config["analysis"]["divergence"],
        etas=config["analysis"]["sweep"]["etas"],
        epss=config["analysis"]["sweep"]["epss"],
    script:
        "../workflow/scripts/similarity_space.py"


rule correlation:
    input:
        runs="results/tables/runs.parquet",
        grids="results/tables/grids.parquet",
    output:
        fits=report(
            "results/analysis/correlation.csv",
            caption="../workflow/report/correlation_table.rst",
            category="Correlation",
        ),
        points="results/analysis/correlation_points.parquet",
        bootstrap="results/analysis/correlation_bootstrap.parquet",
    log:
        "results/logs/analysis/correlation.log",
    benchmark:
        "results/benchmarks/correlation.tsv"
    conda:
        "../envs/cpu.yaml"
    params:
        grid=config["analysis"]["similarity_grid"],
        metrics=CORRELATION_METRICS,
        similarity=SIMILARITY_METRIC,
        fit_rule=FIT_RULE,
        confidence=config["analysis"]["confidence"],
    script:
        "../workflow/scripts/correlation.py"


rule paper_tables:
    input:
        runs="results/tables/runs.parquet",
        pretrained="results/tables/pretrained.parquet",
        datasets=[manifest(dataset) for dataset in TARGETS_USED],
    output:
        table1_csv="results/tables/table1.csv",
        table1_md="results/tables/table1.md",
        table1_html=report(
            "results/tables/table1.html",
            caption="../workflow/report/table1.rst",
            category="Tables",
        ),
        table2_csv="results/tables/table2.csv",
        table2_md="results/tables/table2.md",
        table2_html=report(
            "results/tables/table2.html",
            caption="../workflow/report/table2.rst",
            category="Tables",
        ),
    log:
        "results/logs/analysis/paper_tables.log",
    benchmark:
        "results/benchmarks/paper_tables.tsv"
    conda:
        "../envs/cpu.yaml"
    params:
        datasets=TARGETS_USED,
        backbones=BACKBONES_USED,
        k=config["knn"]["k"],
    script:
        "../workflow/scripts/paper_tables.py"


rule findings:
    input:
        runs="results/tables/runs.parquet",
        trajectories="results/tables/trajectories.parquet",
        pretrained="results/tables/pretrained.parquet",
        grids="results/tables/grids.parquet",
        fits="results/analysis/correlation.csv",
        bootstrap="results/analysis/correlation_bootstrap.parquet",
        # Beyond the paper: the verdicts of the similarity-preserving methods, when the study has their grid.
        tradeoff=["results/analysis/tradeoff_verdicts.csv"] if PRESERVING_GRID else [],
        # ... and of the parameter-efficient methods against Biderman et al., when the study has their grid.
        peft=["results/analysis/peft_verdicts.csv"] if PEFT_GRID else [],
        # Claim (d) under each similarity measure (rule rulers).
        rulers="results/analysis/rulers_conclusion.csv",
    output:
        page=report(
            "results/findings.html",
            caption="../workflow/report/findings.rst",
            category="Findings",
        ),
        table="results/analysis/findings.csv",
    log:
        "results/logs/analysis/findings.log",
    benchmark:
        "results/benchmarks/findings.tsv"
    conda:
        "../envs/cpu.yaml"
    params:
        grid=config["analysis"]["similarity_grid"],
        layer=config["analysis"]["cka_layer"],
        similarity=SIMILARITY_METRIC,
        k=config["knn"]["k"],
        paradigms={name: b["paradigm"] for name, b in config["backbones"].items()},
        confidence=config["analysis"]["confidence"],
        # Claim (b) measures the early drop over the warm-up and the first epoch after it.
        warmup_epochs=config["train"]["warmup_epochs"],
    script:
        "../workflow/scripts/findings.py"
