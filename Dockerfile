# One image, both entrypoints: `jwtmesh-operator` and `jwtmesh sidecar` (and the CLI).
# Build:  docker build -t ghcr.io/jwtmesh/jwtmesh:0.1.0 .
# Dependencies come from requirements.lock (hashes checked, nothing resolved), so the image
# runs exactly the versions the tests ran; jwtmesh itself is installed without dependencies.
FROM python:3.11-slim AS build
WORKDIR /src
COPY requirements.lock ./
RUN pip wheel --no-cache-dir --require-hashes --no-deps --wheel-dir /wheels -r requirements.lock
COPY pyproject.toml README.md ./
COPY core ./core
COPY sidecar ./sidecar
COPY operator ./operator
RUN pip wheel --no-cache-dir --no-deps --wheel-dir /wheels .

FROM python:3.11-slim
# A fixed non-root user; the chart and the injected sidecar run as 65532 with a read-only
# root filesystem.
RUN useradd --uid 65532 --no-create-home --shell /usr/sbin/nologin jwtmesh
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir --no-deps /wheels/*.whl && pip check && rm -rf /wheels /root/.cache
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
USER 65532:65532
ENTRYPOINT ["jwtmesh"]
CMD ["--help"]
