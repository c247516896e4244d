"""Sub-commands of the ``segflow`` CLI that are not pipeline stages (thin wrappers over components)."""
