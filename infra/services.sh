#!/usr/bin/env bash
# The segflow stack natively on 127.0.0.1 (no Docker): PostgreSQL 15, an S3 server (moto),
# MLflow server with basic auth, Prefect server + process worker, Dask scheduler + 2 workers.
#   infra/services.sh up             start (idempotent); prints the client env as export lines
#   infra/services.sh status         each service up/down with its port (exit 1 unless all up)
#   infra/services.sh env            print the env file again
#   infra/services.sh down [--purge] stop everything (idempotent); --purge also deletes the state
# State (data, logs, pids, ports, generated credentials): $SEGFLOW_STACK_DIR, default .segflow/stack.
# Usage: eval "$(infra/services.sh up)"   or   infra/services.sh up >/dev/null && source .segflow/stack/env
# The logic is in infra/stack/ (Python); this is the venv's interpreter running it.
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
py=${SEGFLOW_PYTHON:-$repo/.venv/bin/python}
[[ -x $py ]] || { echo "infra/services.sh: no $py; run make venv (or set SEGFLOW_PYTHON)" >&2; exit 1; }
export PYTHONPATH="$repo${PYTHONPATH:+:$PYTHONPATH}"
exec "$py" -m infra.stack "$@"
