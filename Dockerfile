# The project's image for docker-compose.yml: the `algo` CLI (workers, provision, replay...).
# The services it talks to (Kafka, Apicurio, Postgres, Redis) run from their official images.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# g++ builds the C++ risk engine's Cython extension.
RUN apt-get update \
    && apt-get install -y --no-install-recommends g++ \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /app

# Dependencies first, so code changes do not reinstall them.
# The same build tools as ops/bootstrap.sh; only the runtime requirements (tests are not in the image).
COPY requirements.txt ./
RUN pip install --upgrade pip==25.3 setuptools==80.9.0 wheel==0.45.1 \
    && pip install -r requirements.txt

# A wheel, like any library: the schemas, migrations and dashboard ship inside it (streams/_data,
# streams/bridge/static); the build environment takes cython and numpy from pyproject.toml.
COPY . .
RUN pip install --no-deps . \
    && useradd --create-home --uid 10001 algo \
    && chown -R algo /app

USER algo
ENTRYPOINT ["algo"]
CMD ["--help"]
