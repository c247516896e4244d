#!/usr/bin/env bash
# Run the whole segflow pipeline (real DVC, Prefect, MLflow) on a dataset, in a fresh workspace.
#   bench/datasets/run.sh bench/datasets/hippocampus_3d.yaml /tmp/hippo3d [stage.py]
# The params file names the dataset folder (data.dir: an absolute path, or ../shared/... relative
# to the repository, as in the files here). An optional stage script writes the dataset into the
# workspace first (`python stage.py data/raw`, see stage_covid.py). Prints the CV and test
# reports at the end; wall time and peak memory of every stage go to <workspace>/stages.tsv.
set -euo pipefail
params=$(realpath "$1"); ws=$2; stager=${3:+$(realpath "$3")}
repo=$(cd "$(dirname "$0")/../.." && pwd)
bin=$repo/.venv/bin
rm -rf "$ws" && mkdir -p "$ws" && cd "$ws"
for f in components flows dvc.yaml .dvcignore prefect.toml; do cp -r "$repo/$f" .; done
find . -name __pycache__ -prune -exec rm -rf {} +
cp "$params" params.yaml
sed -i "s#^  dir: \.\./shared/#  dir: $(dirname "$repo")/shared/#" params.yaml  # the workspace is elsewhere
export PATH=$bin:$PATH PREFECT_HOME=$ws/.prefect PREFECT_SERVER_ANALYTICS_ENABLED=false \
  DVC_NO_ANALYTICS=1 NO_ALBUMENTATIONS_UPDATE=1 MLFLOW_TRACKING_URI=sqlite:///$ws/mlflow.db \
  PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS=90
git init -q -b main && dvc init -q
if [ -n "$stager" ]; then
  "$bin/python" "$stager" data/raw
fi
printf 'stage\tseconds\tpeak_rss_kb\n' > stages.tsv
for stage in validate plan preprocess train evaluate ensemble; do
  /usr/bin/time -f "$stage\t%e\t%M" -a -o stages.tsv dvc repro -s "$stage"
done
cat stages.tsv
cat reports/cv/statistics.json reports/test/statistics.json 2>/dev/null | head -c 4000
