#!/usr/bin/env bash
# `make run`: the whole pipeline on the default dataset with embedded services:
# a local DVC remote, the MLflow SQLite store, and a local Prefect server started and stopped here.
set -euo pipefail
cd "$(dirname "$0")/../.."
export PATH="$PWD/.venv/bin:$PATH"
export PREFECT_HOME=${PREFECT_HOME:-$PWD/.prefect}
export MLFLOW_TRACKING_URI=${MLFLOW_TRACKING_URI:-sqlite:///$PWD/mlflow.db}
start=$(date +%s)

git rev-parse --git-dir >/dev/null 2>&1 || git init -q
[[ -d .dvc ]] || dvc init -q
dvc remote list --local | grep -q '^localstore' || dvc remote add --local -d localstore "$PWD/.dvcstore"

data_dir=$(python -c "from components.params.user import load_user_params; print(load_user_params().data.dir)")
if [[ $data_dir == data/raw && ! -d data/raw ]]; then
  segflow generate --out data/raw
fi
if [[ $data_dir == data/raw ]]; then
  dvc add -q data/raw          # version the input data (data/raw.dvc); a no-op when unchanged
fi

api=$(infra/local/prefect_server.sh start)
trap 'infra/local/prefect_server.sh stop' EXIT
export PREFECT_API_URL=$api

# The demo on the phantoms plans for two minutes of this machine (the whole run: validate to the
# registered model); a real dataset's run names its own: segflow run --data DIR --time-budget 90m.
# (A later run on another dataset drops this --time-budget again: components/params/carry.py.)
segflow run --time-budget "${SEGFLOW_DEMO_BUDGET:-2m}" "$@"
dvc push -q || echo "warning: dvc push to the local remote failed" >&2

echo
echo "Finished in $(( $(date +%s) - start )) s."
echo "Look further:"
echo "  mlflow ui --backend-store-uri $MLFLOW_TRACKING_URI    # runs, metrics, the model registry"
echo "  reports/validation/  reports/cv/  reports/test/        # Data Docs, per-case CSVs, plots"
echo "  dvc metrics show ; dvc plots show --json              # metrics and plots as DVC sees them"
