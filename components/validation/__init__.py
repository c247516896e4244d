"""Dataset validation: per-case metadata table, great-expectations suite, Data Docs, manifest.

Typical use (the validate flow)::

    disc = discover(data_dir)
    meta = build_metadata(disc, class_values, root=data_dir)
    outcome = validate_metadata(meta, class_values, report_dir)
    if not outcome.success:
        raise DatasetValidationError(outcome.failures, outcome.result_path)
    write_fingerprint(compute_fingerprint(meta, data_dir, class_names), fingerprint_path)
    write_manifest(meta, manifest_path)
"""

from __future__ import annotations

from components.validation.fingerprint import compute_fingerprint, write_fingerprint
from components.validation.manifest import read_manifest, write_manifest
from components.validation.metadata import BASE_COLUMNS, build_metadata, content_hash, frac_column
from components.validation.report import DatasetValidationError, Failure, format_failures
from components.validation.suite import ValidationOutcome, validate_metadata

__all__ = [
    "BASE_COLUMNS",
    "DatasetValidationError",
    "Failure",
    "ValidationOutcome",
    "build_metadata",
    "compute_fingerprint",
    "content_hash",
    "format_failures",
    "frac_column",
    "read_manifest",
    "validate_metadata",
    "write_fingerprint",
    "write_manifest",
]
