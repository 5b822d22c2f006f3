#!/bin/sh
# The image's entrypoint: the first argument picks the role, the rest is passed on.
#   web      gunicorn serving the portal, the APIs and /healthz /readyz /metrics (port $PORT, default 8080)
#   worker   the control plane's Celery worker (queue cp)
#   beat     the control plane's Celery beat (exactly one per installation)
#   piped    the piped agent; with no --config-* argument it reads $PIPED_CONFIG_FILE or $PIPED_CONFIG_DATA
#   migrate  database migrations (run once before starting a new version)
#   anything else is run as given, e.g. `python manage.py createproject demo`.
set -eu

cd "$(dirname "$0")/.."
role="${1:-web}"
[ "$#" -gt 0 ] && shift

# Compose and other single-host setups: create missing secret files named by *_FILE variables.
if [ "${PIPEPORTAL_INIT_SECRETS:-false}" = "true" ]; then
  for var in SECRET_KEY_FILE PIPEPORTAL_KEY_HASH_SECRET_FILE; do
    eval "path=\${$var:-}"
    if [ -n "$path" ] && [ ! -s "$path" ]; then
      mkdir -p "$(dirname "$path")"
      (umask 077 && python -c 'import secrets; print(secrets.token_urlsafe(48))' > "$path")
      echo "entrypoint: created $path" >&2
    fi
  done
fi

case "$role" in
  web)
    export PROMETHEUS_MULTIPROC_DIR="${PROMETHEUS_MULTIPROC_DIR:-${TMPDIR:-/tmp}/pipeportal-metrics}"
    exec gunicorn pipeportal.wsgi:application --config docker/gunicorn.conf.py "$@"
    ;;
  worker)
    exec celery -A pipeportal worker -Q cp --loglevel "${LOG_LEVEL:-INFO}" "$@"
    ;;
  beat)
    schedule="${CELERY_BEAT_SCHEDULE_FILE:-${TMPDIR:-/tmp}/pipeportal-celerybeat-schedule}"
    exec celery -A pipeportal beat --loglevel "${LOG_LEVEL:-INFO}" --schedule "$schedule" "$@"
    ;;
  piped)
    case " $* " in
      *" --config-file"* | *" --config-data"*) ;;
      *)
        if [ -n "${PIPED_CONFIG_FILE:-}" ]; then
          set -- --config-file "$PIPED_CONFIG_FILE" "$@"
        elif [ -n "${PIPED_CONFIG_DATA:-}" ]; then
          set -- --config-data "$PIPED_CONFIG_DATA" "$@"
        fi
        ;;
    esac
    exec python manage.py piped "$@"
    ;;
  migrate)
    exec python manage.py migrate --noinput "$@"
    ;;
  *)
    exec "$role" "$@"
    ;;
esac
