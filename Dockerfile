# PipePortal: one image for every role (web, worker, beat, piped, migrate); see docker/entrypoint.sh.
# Build: docker build -t pipeportal .        Run: docker run pipeportal web|worker|beat|piped|migrate

# --- build stage: compilers and headers for mysqlclient live here only --------------------------------
FROM python:3.11-slim-bookworm AS build

ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
# Debian's package versions are not pinned: the point release of the base image decides, with its fixes.
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends build-essential pkg-config default-libmysqlclient-dev \
 && rm -rf /var/lib/apt/lists/*
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
COPY requirements.txt /tmp/requirements.txt
RUN pip install -r /tmp/requirements.txt

# --- final stage: the runtime libraries, the virtualenv and the code; no compilers --------------------
FROM python:3.11-slim-bookworm

# libmariadb3: mysqlclient at run time; git and openssh-client: the piped's Git polling over SSH/HTTPS.
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends libmariadb3 git openssh-client ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 pipeportal \
 && useradd --system --uid 10001 --gid pipeportal --home-dir /var/lib/pipeportal --create-home \
      --shell /usr/sbin/nologin pipeportal

ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    DJANGO_SETTINGS_MODULE=pipeportal.settings \
    PIPEPORTAL_VAR_DIR=/var/lib/pipeportal \
    STATIC_ROOT=/app/staticfiles \
    PORT=8080

COPY --from=build /opt/venv /opt/venv
WORKDIR /app
COPY . /app

# Static files are collected (hashed and compressed for whitenoise) once, at build time.
RUN python manage.py collectstatic --noinput \
 && rm -rf /var/lib/pipeportal/* \
 && chmod 0755 /app/docker/entrypoint.sh \
 && install -d -o pipeportal -g pipeportal /var/lib/pipeportal-demo
# /var/lib/pipeportal-demo exists (owned by the app user) so that docker-compose's demo volume mounted
# there is writable: a new volume takes the owner of the folder it is mounted on.

# Numeric, so that orchestrators can verify the user is not root (runAsNonRoot).
USER 10001:10001
VOLUME ["/var/lib/pipeportal"]
EXPOSE 8080
# No HEALTHCHECK here: only the web role serves HTTP; compose and ECS define a check for it (/healthz).
ENTRYPOINT ["/app/docker/entrypoint.sh"]
CMD ["web"]
