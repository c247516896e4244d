"""Dataset discovery (images/ + masks/ pairing), synthetic phantoms, splits and the prepared-case store."""
