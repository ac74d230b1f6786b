"""The file formats the stages hand each other: feature files (`features`, HDF5), test predictions
(`predictions`, HDF5), and `atomic`, the one way every writer puts a file in place. numpy and h5py only: every stage
may import them, they import nothing of repdrift but .errors.
"""
