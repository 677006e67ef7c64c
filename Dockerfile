# One image for the worker, the projector, the runner and the API
# (`vigil worker|projector|runner|api`).
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml ./
COPY vigil vigil
COPY streams streams
COPY api api
COPY projections projections
COPY schemas schemas
COPY jobs jobs
COPY bench bench
RUN pip install --no-cache-dir .
ENTRYPOINT ["vigil"]
