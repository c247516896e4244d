"""Params key names that DVC's run cache cannot see.

DVC keys its run cache (``.dvc/cache/runs``) on a hash of the stage's lock entry: ``cmd``, the
dependencies, the ``params`` values and the output paths. That hash is computed with the output
metadata names filtered out *recursively*, so a params key with one of those names, at any depth
inside a listed section, is left out of the hash as well. Changing its value then restores an
earlier run's outputs ("Stage ... is cached - skipping run") while ``dvc.lock`` records the new
value, and ``dvc status`` is clean: stale outputs that look valid. Hence no key in params.yaml,
kwargs dicts of models, transforms or optimisers included, may use one of these names.
"""

from __future__ import annotations

from collections.abc import Mapping

# The names DVC excludes from the run-cache hash: dvc/stage/cache.py, ``_get_cache_hash``
# (DVC 3.67.1): ``dict_sha256(cache, exclude=[Meta.PARAM_SIZE, Meta.PARAM_NFILES])``, where
# ``Meta`` is dvc_data/hashfile/meta.py (``PARAM_SIZE = "size"``, ``PARAM_NFILES = "nfiles"``)
# and ``dict_filter`` (dvc/utils/__init__.py) drops the keys at every depth, through lists too.
# Upstream bug: https://github.com/treeverse/dvc/issues/10296 (fix proposed in PR #11079).
# The other ``Meta`` names (isexec, md5, hash, ...) are hashed normally; ``compute_md5`` in
# dvc/stage/utils.py drops more names, but only for single-stage ``.dvc`` files, not for the
# dvc.yaml stages this project uses. tests/unit/config/test_params_keys.py pins this set
# against the installed DVC.
DVC_RESERVED_KEYS: frozenset[str] = frozenset({"size", "nfiles"})


def reserved_key_paths(raw: Mapping[str, object]) -> list[str]:
    """Dotted paths of every key, at any depth, whose name DVC's run cache ignores.

    Mappings nested in lists are searched too (DVC filters through lists); their items are
    written ``section.list[index].key``.

    Args:
        raw: A params mapping as read from params.yaml.

    Returns:
        The offending paths in document order, e.g.
        ``["preprocess.size", "train.augment.transforms[1].kwargs.size"]``; empty when none.
    """
    found: list[str] = []

    def walk(node: object, prefix: str) -> None:
        if isinstance(node, Mapping):
            for key, value in node.items():
                path = f"{prefix}.{key}" if prefix else str(key)
                if key in DVC_RESERVED_KEYS:
                    found.append(path)
                walk(value, path)
        elif isinstance(node, list | tuple):
            for i, item in enumerate(node):
                walk(item, f"{prefix}[{i}]")

    walk(raw, "")
    return found
