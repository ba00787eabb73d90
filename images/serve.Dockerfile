# The serving runtime image: KServe's ModelServer running `medllama serve` (k8s/base/serving.yaml), CPU torch.
# Build from the repository root:
#   docker build -f images/serve.Dockerfile -t ghcr.io/medllama-ops/medllama-serve:0.1.0 .
FROM python:3.11.11-slim-bookworm
LABEL org.opencontainers.image.title="medllama-serve" \
      medllama.verbs="serve" \
      medllama.imports="medllama.serve"
RUN useradd --uid 1000 --create-home --shell /usr/sbin/nologin medllama
WORKDIR /opt/medllama
# the CPU build of torch (the default wheel index would pull CUDA's, gigabytes of it)
RUN pip install --no-cache-dir --index-url https://download.pytorch.org/whl/cpu "torch==2.13.0"
COPY pyproject.toml README.md ./
COPY src ./src
RUN pip install --no-cache-dir ".[serve]"
# KServe's OpenAI data plane imports its protocol types from vLLM; its own requirements would pull CUDA torch
RUN pip install --no-cache-dir --no-deps "vllm==0.24.0"
ENV HOME=/home/medllama \
    HF_HOME=/tmp/hf \
    PYTHONUNBUFFERED=1
USER 1000:1000
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=5s --start-period=5m \
  CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/v2/health/ready', timeout=4)" || exit 1
ENTRYPOINT ["medllama"]
CMD ["serve", "--help"]
