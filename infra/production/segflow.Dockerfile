# segflow's own image, for the Prefect worker and the Dask scheduler/workers: flows run here, and
# Dask needs the same Python packages on client, scheduler and workers. Build from the repo root:
#   docker compose -f infra/production/compose.yaml build
FROM python:3.11-slim
RUN apt-get update && apt-get install -y --no-install-recommends git libgl1 libglib2.0-0 \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /opt/segflow
COPY requirements.txt pyproject.toml README.md ./
RUN pip install --no-cache-dir -r requirements.txt
COPY components ./components
COPY flows ./flows
COPY dvc.yaml params.yaml prefect.yaml ./
RUN pip install --no-cache-dir --no-deps --no-build-isolation -e .
ENV PREFECT_SERVER_ANALYTICS_ENABLED=false DVC_NO_ANALYTICS=1 NO_ALBUMENTATIONS_UPDATE=1 \
    MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR=false
