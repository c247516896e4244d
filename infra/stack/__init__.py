"""The segflow stack natively on loopback: the services of infra/production/compose.yaml
started from installed binaries and packages (for tests and machines without Docker)."""
