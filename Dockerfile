# CarePath container image: one image, three roles chosen by the command
# (`carepath worker`, `carepath api`, `carepath db migrate`), see docker-compose.yml.
#
# Stage 1 builds a wheel of this project and installs it, with its runtime
# dependencies only, into a virtualenv. Stage 2 copies that virtualenv into a
# clean image: no build tools, no dev extras, and no `embedded` extra (the
# Temporal dev server and PostgreSQL wheels are for laptops and CI, a container
# deployment talks to real servers through CAREPATH_TEMPORAL_ADDRESS and
# CAREPATH_DATABASE_URL).
ARG PYTHON_IMAGE=python:3.11-slim

FROM ${PYTHON_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
# README.md is the package's long description (pyproject `readme`); the build needs it.
COPY pyproject.toml README.md ./
# The product's top-level packages (pyproject lists the same for the wheel).
COPY domain ./domain
COPY workflows ./workflows
COPY activities ./activities
COPY store ./store
COPY audit ./audit
COPY workers ./workers
COPY api ./api
COPY cli ./cli
COPY devstack ./devstack
COPY programs ./programs
# The runtime user cannot write the virtualenv, and the workflow sandbox executes the
# workflow's module afresh for every run: compile the package now, so runs load its
# bytecode instead of compiling it (docs/operations.md, "Sizing").
RUN python -m pip wheel --no-deps --wheel-dir /wheels . \
 && python -m venv /opt/venv \
 && /opt/venv/bin/pip install /wheels/carepath-*.whl \
 && /opt/venv/bin/python -c "import workflows; from workers.worker import cache_workflow_bytecode; cache_workflow_bytecode(workflows)"

FROM ${PYTHON_IMAGE} AS runtime
RUN groupadd --system --gid 10001 carepath \
 && useradd --system --uid 10001 --gid carepath --create-home \
        --home-dir /home/carepath --shell /usr/sbin/nologin carepath
COPY --from=build /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    CAREPATH_DATA_DIR=/home/carepath/data \
    CAREPATH_API_HOST=0.0.0.0 \
    CAREPATH_LOG_FORMAT=json
WORKDIR /home/carepath
USER carepath:carepath
EXPOSE 8000
# No image-level HEALTHCHECK: the right probe depends on the role (HTTP for the
# API, task-queue pollers for the worker, none for the migration job), so each
# service in docker-compose.yml declares its own.
ENTRYPOINT ["carepath"]
CMD ["--help"]
