# Production image: the API and the workers, pointed at a real PostgreSQL
# (LEDGER_DATABASE_URL) and a real Kafka (LEDGER_KAFKA_BOOTSTRAP).  The embedded
# PostgreSQL server and broker (the `embedded` extra) are left out.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    LEDGER_HTTP_HOST=0.0.0.0 \
    LEDGER_HTTP_PORT=8000 \
    LEDGER_DATA_DIR=/var/lib/ledger

WORKDIR /app

# Dependencies first, in a layer of their own: a source change rebuilds only the
# small layer below.  The list comes from pyproject.toml, pinned by constraints.txt.
COPY pyproject.toml constraints.txt ./
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" \
        > /tmp/requirements.txt \
    && pip install -c constraints.txt -r /tmp/requirements.txt \
    && rm /tmp/requirements.txt

COPY ledger ledger
COPY projections projections
COPY api api
COPY workers workers
COPY entrypoints entrypoints
RUN pip install --no-deps . \
    && mkdir -p /var/lib/ledger && chown nobody /var/lib/ledger

USER nobody
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
    CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=2)"
ENTRYPOINT ["ledger"]
CMD ["serve", "--workers", "4", "--threads", "8"]
