from repdrift.measure import classification_table
from repdrift.rule import run


def classification(predictions, out):
    classification_table(predictions).write_parquet(out)


run(snakemake, classification, predictions=snakemake.input.predictions, out=snakemake.output.classification)
