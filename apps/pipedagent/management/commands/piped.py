"""`manage.py piped (--config-file FILE | --config-data BASE64) [--insecure] [--broker URL] [--role …]
[--metrics-addr HOST:PORT]`."""

import logging
import sys

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from apps.ops import logging as log_setup
from apps.pipedagent import metrics
from apps.pipedagent.config import PipedConfigError, load_runtime_config
from apps.pipedagent.runtime import ROLES, FatalStartError, Runtime

logger = logging.getLogger("apps.pipedagent")


class Command(BaseCommand):
    help = (
        "Run the piped: it polls Git, plans and runs deployments, and talks to the control plane over the "
        "piped API. Without --broker it is one process; with --broker redis://… run one --role scheduler and "
        "any number of --role worker."
    )
    # The piped has no database: no system check may open one.
    requires_system_checks = []
    requires_migrations_checks = False

    def add_arguments(self, parser):
        source = parser.add_mutually_exclusive_group(required=True)
        source.add_argument("--config-file", help="Path of the piped-config.yaml (PipeCD's format).")
        source.add_argument(
            "--config-data", help="The piped-config.yaml, base64-encoded (as the seed starts it)."
        )
        parser.add_argument(
            "--insecure",
            action="store_true",
            help="Allow a plain-HTTP apiAddress (a control plane on localhost).",
        )
        parser.add_argument(
            "--broker", help="Celery broker shared by the scheduler and the workers (redis://…)."
        )
        parser.add_argument(
            "--role", choices=ROLES, help="With --broker: run only the scheduler or only a worker."
        )
        parser.add_argument(
            "--work-dir", help="Where Git clones and deploy sources live (default PIPED_WORK_DIR)."
        )
        parser.add_argument(
            "--metrics-addr",
            help="Serve Prometheus metrics at http://HOST:PORT/metrics (default PIPED_METRICS_ADDR; "
            "empty: not served).",
        )

    def handle(self, *args, **options):
        # LOG_FORMAT=json: one JSON object per line, with the deployment and stage ids of the step running.
        log_setup.configure(settings.LOG_FORMAT, settings.LOGGING["root"]["level"], sys.stderr)
        try:
            self.run(options)
        except CommandError as exc:
            if settings.LOG_FORMAT != "json":
                raise
            # As a JSON line too, so that a log search for level ERROR finds why the piped stopped.
            logger.error("the piped cannot run: %s", exc)
            sys.exit(1)

    def run(self, options) -> None:
        logging.getLogger("celery").setLevel(logging.WARNING)
        # kombu warns that the in-memory transport has no host name; nothing to act on.
        logging.getLogger("kombu").setLevel(logging.ERROR)
        logging.getLogger("botocore").setLevel(logging.WARNING)
        broker = options.get("broker")
        role = options.get("role")
        if role and not broker:
            raise CommandError(
                "--role needs --broker: without a broker the scheduler and the worker share one process."
            )
        if broker and not broker.startswith(("redis://", "rediss://")):
            raise CommandError(
                f"--broker {broker!r}: only Redis brokers (redis:// or rediss://) are supported."
            )
        try:
            config = load_runtime_config(
                config_file=options.get("config_file"),
                config_data=options.get("config_data"),
                insecure=options["insecure"],
                work_dir=options.get("work_dir"),
            )
        except PipedConfigError as exc:
            raise CommandError(str(exc)) from None
        for warning in config.warnings:
            if settings.LOG_FORMAT == "json":
                logger.warning("piped config: %s", warning)
            else:
                self.stderr.write(f"warning: {warning}")
        address = options.get("metrics_addr")
        if address is None:
            address = settings.PIPED_METRICS_ADDR
        try:
            if address:
                metrics.parse_address(address)
            runtime = Runtime(config, broker_url=broker)
            server = metrics.serve(address, runtime) if address else None
        except metrics.MetricsAddressError as exc:
            raise CommandError(str(exc)) from None
        try:
            runtime.run(role)
        except FatalStartError as exc:
            raise CommandError(str(exc)) from None
        finally:
            if server is not None:
                server.stop()
