# One image for the worker, the projector and the API (`vigil worker|projector|api`).
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml ./
COPY vigil vigil
COPY streams streams
COPY api api
COPY projections projections
COPY schemas schemas
RUN pip install --no-cache-dir .
ENTRYPOINT ["vigil"]
