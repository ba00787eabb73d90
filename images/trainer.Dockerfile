# The trainer image: every KFP task of the pipeline, every PyTorchJob pod and every TrainJob node runs it.
# CUDA PyTorch (from the NGC base) + DeepSpeed + flash-attn + medllama[data,train]; for TrainJobs on the
# DeepSpeed runtime also OpenMPI (in the base), mpi4py and an sshd that runs as the image's user.
# Build from the repository root:
#   docker build -f images/trainer.Dockerfile -t ghcr.io/medllama-ops/medllama-trainer:0.1.0 .
# Entrypoint: the medllama CLI (KFP, PyTorchJob and TrainJob pods set their own command).
# medllama.verbs: the CLI verbs and library packages this image must be able to import (tests/test_images.py).
FROM nvcr.io/nvidia/pytorch:25.01-py3
LABEL org.opencontainers.image.title="medllama-trainer" \
      medllama.verbs="prepare train evaluate register pipeline" \
      medllama.imports="medllama.data medllama.train medllama.launch medllama.evaluate medllama.registry medllama.steps"

# sshd for the MPI launcher of the DeepSpeed TrainingRuntime (k8s/base/training-runtime.yaml)
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends openssh-server openssh-client \
 && rm -rf /var/lib/apt/lists/*

# uid 1000 is the user every medllama pod runs as (medllama.cluster.RUN_AS_USER); the Trainer's MPI plugin
# mounts its SSH keys under /home/mpiuser/.ssh, so that is its name and home.
RUN (userdel -r ubuntu 2>/dev/null || true) && useradd --uid 1000 --create-home --shell /bin/bash mpiuser
COPY --chown=1000:1000 images/ssh/sshd_config /home/mpiuser/.sshd_config
COPY images/ssh/ssh_config /etc/ssh/ssh_config

WORKDIR /opt/medllama
# flash-attn builds against the base image's torch; torch itself comes from the base (CUDA build), pip keeps it.
RUN pip install --no-cache-dir "mpi4py==4.1.2" \
 && MAX_JOBS=8 pip install --no-cache-dir --no-build-isolation "flash-attn==2.8.3.post2"
COPY pyproject.toml README.md ./
COPY src ./src
RUN pip install --no-cache-dir ".[data,train]"
COPY recipes ./recipes
COPY cluster ./cluster
COPY pipelines ./pipelines
COPY components ./components

ENV MEDLLAMA_RECIPES=/opt/medllama/recipes \
    MEDLLAMA_CLUSTER_PROFILES=/opt/medllama/cluster \
    HOME=/home/mpiuser \
    PYTHONUNBUFFERED=1
USER 1000:1000
# A batch image: "healthy" = the trainer and the launchers import (what every pod runs first).
HEALTHCHECK --interval=5m --timeout=60s CMD python -c "import medllama.train.loop, medllama.launch.trainjob" || exit 1
ENTRYPOINT ["medllama"]
CMD ["--help"]
