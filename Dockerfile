# The TSCC Help Desk service. Settings come from the environment (see README.md).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
WORKDIR /app
COPY pyproject.toml README.md LICENSE ./
COPY bot ./bot
COPY helpdesk ./helpdesk
COPY knowledge ./knowledge
COPY templates ./templates
RUN pip install . && useradd --system --home-dir /var/lib/helpdesk --create-home helpdesk
USER helpdesk
WORKDIR /var/lib/helpdesk
# Created here so the spool volume is owned by the helpdesk user.
RUN mkdir -p -m 700 spool

# The staff web workspace (HELPDESK_WEB_PORT; docker-compose.yml publishes it on the host's loopback only).
EXPOSE 8080

# `run` applies migrations itself before it starts; `db upgrade` first makes a failed migration visible
# as its own step in the container log.
CMD ["sh", "-c", "helpdesk db upgrade && exec helpdesk run"]
