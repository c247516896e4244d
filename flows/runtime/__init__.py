"""How stages and folds run, apart from what they are: the stage command's entry point, warm stage
servers, fold executors (sequential, Dask), DDP launch and process supervision."""
