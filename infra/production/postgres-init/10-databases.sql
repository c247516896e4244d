-- Runs once, on the first start of an empty data volume (the postgres image's initdb hook).
-- One server, one database per service: MLflow tracking + registry, MLflow's basic-auth users,
-- Prefect's API. All owned by $POSTGRES_USER.
CREATE DATABASE mlflow;
CREATE DATABASE mlflow_auth;
CREATE DATABASE prefect;
