# The MLflow tracking server image: the official one plus the Postgres driver, boto3 for the
# S3 artifact destination and Flask-WTF for the basic-auth app (versions = requirements.txt).
FROM ghcr.io/mlflow/mlflow:v3.17.2
RUN pip install --no-cache-dir psycopg2-binary==2.9.13 boto3==1.43.117 Flask-WTF==1.3.0
