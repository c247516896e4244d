"""Which backend each part of segflow uses (embedded default or a team service), read from the
standard environment, and whether it answers: the logic of ``segflow doctor``."""
