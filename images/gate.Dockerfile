# The gate image: `medllama gate serve` (k8s/base/gate.yaml); it also runs the MLflow tracking server
# (k8s/base/mlflow.yaml: mlflow is a medllama dependency; psycopg2 and boto3 come with the gate extra).
# Build from the repository root:
#   docker build -f images/gate.Dockerfile -t ghcr.io/medllama-ops/medllama-gate:0.1.0 .
FROM python:3.11.11-slim-bookworm
LABEL org.opencontainers.image.title="medllama-gate" \
      medllama.verbs="gate" \
      medllama.imports="medllama.gate mlflow.server psycopg2 boto3"
RUN useradd --uid 1000 --create-home --shell /usr/sbin/nologin medllama
WORKDIR /opt/medllama
COPY pyproject.toml README.md ./
COPY src ./src
RUN pip install --no-cache-dir ".[gate]"
ENV HOME=/home/medllama \
    PYTHONUNBUFFERED=1
USER 1000:1000
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s \
  CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=4)" || exit 1
ENTRYPOINT ["medllama"]
CMD ["gate", "serve", "--host", "0.0.0.0", "--port", "8000"]
