#!/usr/bin/env bash
# Deploy the pipeline to a local Prefect server and start a process worker for it.
#   infra/local/deploy.sh            # server (if not running) + pool + deployment + worker (foreground)
# Then, from another shell:
#   .venv/bin/prefect deployment run 'segflow-pipeline/segflow' -p 'overrides={"train.epochs": 20}' --watch
set -euo pipefail
cd "$(dirname "$0")/../.."
export PATH="$PWD/.venv/bin:$PATH"
export PREFECT_HOME=${PREFECT_HOME:-$PWD/.prefect}
export MLFLOW_TRACKING_URI=${MLFLOW_TRACKING_URI:-sqlite:///$PWD/mlflow.db}
export SEGFLOW_PROJECT_DIR=$PWD
export PREFECT_API_URL=${PREFECT_API_URL:-$(infra/local/prefect_server.sh start)}
prefect work-pool inspect segflow-local >/dev/null 2>&1 || prefect work-pool create segflow-local --type process
prefect --no-prompt deploy --name segflow --pool segflow-local  # prefect.yaml names the team pool
echo "worker for pool segflow-local (Ctrl-C to stop); API $PREFECT_API_URL"
exec prefect worker start --pool segflow-local
