FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml constraints.txt ./
COPY ledger ledger
COPY projections projections
COPY api api
COPY workers workers
COPY entrypoints entrypoints
RUN pip install --no-cache-dir -c constraints.txt .
USER nobody
