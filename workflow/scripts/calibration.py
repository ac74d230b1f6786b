from repdrift.measure import calibration_tables
from repdrift.rule import run


def calibration(predictions, n_bins, out, bins_out):
    ece, bins = calibration_tables(predictions, n_bins)
    ece.write_parquet(out)
    bins.write_parquet(bins_out)


run(snakemake, calibration, predictions=snakemake.input.predictions, n_bins=snakemake.params.n_bins,
    out=snakemake.output.calibration, bins_out=snakemake.output.reliability)
