"""The folders of one run and the names of the files in them."""

CONFIG_FILE = "config.json"  # in both folders: the model rebuilds itself from the checkpoint folder
METRICS_FILE = "metrics.csv"  # logs/<run>/: one row per epoch
RESULTS_FILE = "results.json"  # logs/<run>/: the best checkpoint's validation and test numbers
BEST, LATEST = "best", "latest"  # checkpoint subfolders of a run
