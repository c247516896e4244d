"""How segflow's services start: local/ (embedded defaults), production/ (compose), stack/ (native)."""
