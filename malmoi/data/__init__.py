"""Files → examples → Datasets → batches."""
