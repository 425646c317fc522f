# maskweb: one image for the web process (Daphne) and the worker (Celery).
#   docker build -t maskweb .                       CPU (onnxruntime)
#   docker build --target gpu -t maskweb:gpu .      the worker with onnxruntime-gpu (CUDA)
FROM python:3.11-slim AS base
# MALLOC_ARENA_MAX: see maskweb/runner.py (MALLOC_ENV): bounded memory for the array churn.
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 MALLOC_ARENA_MAX=2 \
    MASKWEB_DATA_DIR=/data MASKWEB_MODELS_DIR=/data/models
RUN apt-get update && apt-get install -y --no-install-recommends libgl1 libglib2.0-0 \
    && rm -rf /var/lib/apt/lists/*
RUN useradd --create-home --uid 1000 maskweb && mkdir /data && chown maskweb /data
WORKDIR /app
COPY . .
RUN pip install .
USER maskweb
VOLUME ["/data"]
EXPOSE 8000
CMD ["daphne", "-b", "0.0.0.0", "-p", "8000", "--websocket_connect_timeout", "10", \
     "--ping-interval", "20", "--ping-timeout", "30", "maskweb.asgi:application"]

FROM base AS gpu
USER root
# The CUDA and cuDNN runtime come as pip packages with onnxruntime-gpu's extras.
RUN pip uninstall -y onnxruntime && pip install "onnxruntime-gpu[cuda,cudnn]>=1.20"
USER maskweb
CMD ["celery", "-A", "maskweb.celery", "worker", "--pool", "solo", "--loglevel", "INFO"]

FROM base AS cpu
