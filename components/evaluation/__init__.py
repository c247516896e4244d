"""Evaluation: scoring predictors and mask folders with the metric panel, reports, statistics and plots."""
