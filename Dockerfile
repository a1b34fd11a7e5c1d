# One image, both entrypoints: `jwtmesh operator` and `jwtmesh sidecar` (and the CLI).
# Build:  docker build -t ghcr.io/jwtmesh/jwtmesh:0.1.0 .
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY sidecar ./sidecar
COPY operator ./operator
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

FROM python:3.11-slim
# A fixed non-root user; the chart and the injected sidecar run as 65532 with a read-only
# root filesystem.
RUN useradd --uid 65532 --no-create-home --shell /usr/sbin/nologin jwtmesh
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels /root/.cache
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
USER 65532:65532
ENTRYPOINT ["jwtmesh"]
CMD ["--help"]
