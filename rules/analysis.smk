# The paper's analyses on the aggregated tables: similarity space, correlation, Tables 1 and 2.


rule similarity_space:
    input:
        runs="results/tables/runs.parquet",
    output:
        space="results/analysis/similarity_space.parquet",
        sweep="results/analysis/similarity_sweep.csv",
    log:
        "results/logs/analysis/similarity_space.log",
    conda:
        "../envs/cpu.yaml"
    params:
        layer=config["analysis"]["cka_layer"],
        divergence=config["analysis"]["divergence"],
        etas=config["analysis"]["sweep"]["etas"],
        epss=config["analysis"]["sweep"]["epss"],
    script:
        "../workflow/scripts/similarity_space.py"


rule correlation:
    input:
        runs="results/tables/runs.parquet",
    output:
        fits=report(
            "results/analysis/correlation.csv",
            caption="../workflow/report/correlation_table.rst",
            category="Correlation",
        ),
    log:
        "results/logs/analysis/correlation.log",
    conda:
        "../envs/cpu.yaml"
    params:
        metrics=[f"knn@{config['knn']['k']}", "ece"],
        n_intervals=config["analysis"]["n_intervals"],
        outliers=config["analysis"]["outliers"],
    script:
        "../workflow/scripts/correlation.py"


rule paper_tables:
    input:
        runs="results/tables/runs.parquet",
        pretrained="results/tables/pretrained.parquet",
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
    conda:
        "../envs/cpu.yaml"
    params:
        k=config["knn"]["k"],
    script:
        "../workflow/scripts/paper_tables.py"


rule findings:
    input:
        runs="results/tables/runs.parquet",
        fits="results/analysis/correlation.csv",
    output:
        page=report(
            "results/findings.html",
            caption="../workflow/report/findings.rst",
            category="Findings",
        ),
    log:
        "results/logs/analysis/findings.log",
    conda:
        "../envs/cpu.yaml"
    params:
        layer=config["analysis"]["cka_layer"],
        eta=config["analysis"]["eta"],
        k=config["knn"]["k"],
    script:
        "../workflow/scripts/findings.py"
