"""Fold ensembling for release: scoring packaged models, the MLflow pyfunc package, `segflow predict`."""
