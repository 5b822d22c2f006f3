"""`DEBUG=true manage.py demo` (`make demo`): the whole product on one machine, with nothing installed.

It starts an AWS emulator (moto server) and creates in it what the seed's ECS application needs (VPC with
DNS hostnames, subnets, security group, ECS cluster, ALB with a listener and two target groups); puts the
seed's app (app.pipecd.yaml, servicedef.yaml, taskdef.yaml) in a local bare Git repository under
var/demo/; migrates; creates the `demo` project, a piped and the application; starts the control plane
on http://127.0.0.1:8000 and the piped as a separate process. The first deployment (quick sync) runs at
once and the portal shows it. Ctrl-C stops everything it started. Running it again starts afresh: the
emulator forgets everything, so the demo application and its deployments are recreated.

`manage.py demo --setup-only --workdir DIR --api-address URL` (docker-compose's `demo-setup`) only
prepares: the AWS resources in the moto server at AWS_ENDPOINT_URL (emptied first), the manifests
repository and piped-config.yaml in DIR, and the project, piped and application in the (migrated)
database; it prints the admin login and exits. The compose stack runs its own control plane and piped.
"""

import json
import os
import signal
import socket
import subprocess
import sys
import time
from contextlib import closing, suppress
from pathlib import Path

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

PROJECT = "demo"
PIPED_NAME = "demo-piped"
APP_NAME = "hogehoge"
APP_PATH = "apps/hello"


def port_is_free(port: int) -> bool:
    with closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def free_port() -> int:
    with closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_port(port: int, process: subprocess.Popen, what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise CommandError(
                f"{what} exited (status {process.returncode}) before it listened on port {port}."
            )
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.3):
                return
        except OSError:
            time.sleep(0.1)
    raise CommandError(f"{what} did not listen on port {port} within {timeout:.0f}s.")


class Children:
    """The processes the demo started; all of them are stopped, whatever happens."""

    def __init__(self, log_dir: Path):
        self.log_dir = log_dir
        self.items: list[tuple[str, subprocess.Popen, Path]] = []

    def start(self, name: str, args: list[str], env: dict) -> subprocess.Popen:
        log = self.log_dir / f"{name}.log"
        handle = open(log, "w")  # noqa: SIM115 - kept open for the child's lifetime
        # Its own process group: a terminal's Ctrl-C (SIGINT to the whole foreground job) then reaches the demo
        # alone, and stop() ends the children in order; else the control plane died with the piped's last report.
        process = subprocess.Popen(
            args, env=env, stdout=handle, stderr=subprocess.STDOUT, cwd=settings.BASE_DIR, process_group=0
        )
        self.items.append((name, process, log))
        return process

    def exited(self) -> list[tuple[str, int, Path]]:
        return [(name, p.returncode, log) for name, p, log in self.items if p.poll() is not None]

    def stop(self) -> None:
        """The newest first (the piped still tells the control plane that it stops), each within 15 s."""
        for _, process, _ in reversed(self.items):
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(5)


class Command(BaseCommand):
    help = "Run PipePortal on one machine: AWS emulator, local Git repository, control plane and piped."
    requires_system_checks = []

    def add_arguments(self, parser):
        parser.add_argument(
            "--port", type=int, default=8000, help="Port of the control plane (default 8000)."
        )
        parser.add_argument("--sync-interval", default="10", help="Seconds between the piped's Git fetches.")
        parser.add_argument(
            "--setup-only",
            action="store_true",
            help="Only prepare the AWS resources (in the moto server at AWS_ENDPOINT_URL), the manifests "
            "repository, piped-config.yaml and the database records, print the admin login and exit.",
        )
        parser.add_argument(
            "--workdir",
            help="Where the manifests repository, piped-config.yaml and the demo's credentials go "
            "(default: var/demo under PIPEPORTAL_VAR_DIR).",
        )
        parser.add_argument(
            "--api-address",
            help="With --setup-only: the control plane's address written into piped-config.yaml "
            "(default http://127.0.0.1:PORT).",
        )

    def handle(self, *args, **options):
        if options["setup_only"]:
            self.setup_only(options)
            return
        if options["api_address"]:
            raise CommandError(
                "--api-address goes with --setup-only: the demo's own control plane is http://127.0.0.1:PORT."
            )
        if not settings.DEBUG:
            raise CommandError(
                "The demo runs with embedded defaults and DEBUG=true: start it with `make demo`."
            )
        port = options["port"]
        if not port_is_free(port):
            raise CommandError(
                f"Port {port} is busy: is another demo (or another server) running? Stop it, or use --port."
            )
        demo_dir = self.workdir(options)
        log_dir = demo_dir / "logs"
        log_dir.mkdir(parents=True, exist_ok=True)
        children = Children(log_dir)
        stopping = {"signal": None}

        def on_signal(signum, frame):
            stopping["signal"] = signum

        # The children are in their own process groups, so a closed terminal's SIGHUP reaches only the demo.
        for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(signum, on_signal)
        try:
            self.run(children, demo_dir, port, options["sync_interval"], stopping)
        finally:
            # After a closed terminal's SIGHUP, writing to it fails: the children are stopped all the same.
            with suppress(OSError):
                self.stdout.write("Stopping the control plane, the piped and the AWS emulator...")
            children.stop()
            with suppress(OSError):
                self.stdout.write("Stopped.")

    @staticmethod
    def workdir(options: dict) -> Path:
        return (
            Path(options["workdir"]).resolve() if options.get("workdir") else Path(settings.VAR_DIR) / "demo"
        )

    def setup_only(self, options: dict) -> None:
        """docker-compose's demo-setup: everything the stack's piped needs, in an emulator already running."""
        from apps.pipedagent.platforms.ecs.emulator import create_ecs_environment

        endpoint = os.environ.get("AWS_ENDPOINT_URL", "").rstrip("/")
        if not endpoint:
            raise CommandError(
                "--setup-only creates the demo's AWS resources in an emulator: set AWS_ENDPOINT_URL to a moto "
                "server (docker-compose sets http://moto:5000)."
            )
        self.check_key_hash_secret()
        self.check_migrated()
        demo_dir = self.workdir(options)
        api_address = options["api_address"] or f"http://127.0.0.1:{options['port']}"
        self.stdout.write(f"Preparing the AWS emulator at {endpoint}...")
        self.wait_for_emulator(endpoint)
        self.keep_tasks_running(endpoint)
        values = create_ecs_environment(endpoint)
        self.stdout.write(f"Creating the manifests repository in {demo_dir}...")
        repo = self.manifests(demo_dir, values)
        admin, password, piped_config = self.records(
            demo_dir, repo.remote, api_address, options["sync_interval"]
        )
        line = "=" * 72
        self.stdout.write(
            "\n".join(
                [
                    line,
                    f"  Portal:                  {settings.PIPEPORTAL_BASE_URL}/login/{PROJECT}/",
                    f"  Project:                 {PROJECT}",
                    f"  Static admin login:      {admin}",
                    f"  Static admin password:   {password}",
                    f"  Piped config:            {piped_config}  (apiAddress {api_address})",
                    f"  Manifests repository:    {demo_dir / 'manifests-work'}",
                    line,
                ]
            )
        )

    @staticmethod
    def check_key_hash_secret() -> None:
        """Outside DEBUG the piped's key needs the control plane's hash secret: say so before emptying anything."""
        from django.core.exceptions import ImproperlyConfigured

        from apps.core.keys import key_hash_secret

        try:
            key_hash_secret()
        except ImproperlyConfigured as exc:
            raise CommandError(str(exc)) from None

    @staticmethod
    def check_migrated() -> None:
        from django.db import DatabaseError, connection
        from django.db.migrations.executor import MigrationExecutor

        try:
            executor = MigrationExecutor(connection)
            missing = executor.migration_plan(executor.loader.graph.leaf_nodes())
        except DatabaseError as exc:
            raise CommandError(f"Cannot reach the database: {exc}") from None
        if missing:
            raise CommandError(
                f"The database lacks {len(missing)} migration(s): run `manage.py migrate` first "
                "(docker-compose's migrate service does)."
            )

    @staticmethod
    def wait_for_emulator(endpoint: str, timeout: float = 60) -> None:
        """Wait until the moto server answers, then empty it: the demo starts afresh, as `make demo` does."""
        import requests

        deadline = time.monotonic() + timeout
        while True:
            try:
                requests.post(f"{endpoint}/moto-api/reset", timeout=5).raise_for_status()
                return
            except requests.RequestException as exc:
                if time.monotonic() > deadline:
                    raise CommandError(
                        f"The AWS emulator at {endpoint} did not answer within {timeout:.0f}s "
                        f"(it must be a moto server): {exc}"
                    ) from None
                time.sleep(0.5)

    @staticmethod
    def manifests(demo_dir: Path, values: dict):
        """The manifests repository with the seed's app at v1, made afresh."""
        from apps.pipedagent.demo_support import ManifestsRepo, render_app

        repo = ManifestsRepo(demo_dir).create(reset=True)
        repo.write(render_app(values, image_tag="v1"), under=APP_PATH)
        repo.commit_and_push("Add the hogehoge ECS application")
        # A plain `git push` in the working clone (as the banner suggests) goes to the demo's remote.
        with repo.work.config_writer() as config:
            config.set_value('branch "main"', "remote", "origin")
            config.set_value('branch "main"', "merge", "refs/heads/main")
        return repo

    def run(self, children: Children, demo_dir: Path, port: int, sync_interval: str, stopping: dict) -> None:
        from apps.pipedagent.platforms.ecs.emulator import create_ecs_environment

        self.stdout.write("Preparing the database...")
        call_command("migrate", interactive=False, verbosity=0)

        self.stdout.write("Starting the AWS emulator (moto server)...")
        moto_port = free_port()
        endpoint = f"http://127.0.0.1:{moto_port}"
        aws_env = {
            **os.environ,
            "AWS_ACCESS_KEY_ID": "demo",
            "AWS_SECRET_ACCESS_KEY": "demo",
            "AWS_DEFAULT_REGION": "us-east-1",
            # moto keeps a new service's desired count as pending forever unless told how many tasks run;
            # the demo's service asks for 2.
            "MOTO_ECS_SERVICE_RUNNING": "2",
        }
        moto = children.start(
            "moto",
            [str(Path(sys.executable).parent / "moto_server"), "-H", "127.0.0.1", "-p", str(moto_port)],
            aws_env,
        )
        wait_for_port(moto_port, moto, "The AWS emulator")
        self.keep_tasks_running(endpoint)
        os.environ.update({"AWS_ACCESS_KEY_ID": "demo", "AWS_SECRET_ACCESS_KEY": "demo"})
        values = create_ecs_environment(endpoint)

        self.stdout.write("Creating the manifests repository...")
        repo = self.manifests(demo_dir, values)

        admin, password, piped_config = self.records(
            demo_dir, repo.remote, f"http://127.0.0.1:{port}", sync_interval
        )

        self.stdout.write("Starting the control plane...")
        server_env = {**os.environ, "DEBUG": "true"}
        server = children.start(
            "control-plane",
            [sys.executable, "manage.py", "runserver", f"127.0.0.1:{port}", "--noreload", "--skip-checks"],
            server_env,
        )
        wait_for_port(port, server, "The control plane")

        self.stdout.write("Starting the piped...")
        piped_env = {
            k: v for k, v in aws_env.items() if k not in ("DEBUG", "SECRET_KEY", "MOTO_ECS_SERVICE_RUNNING")
        }
        piped_env.update(
            {
                "AWS_ENDPOINT_URL": endpoint,
                "PIPED_WORK_DIR": str(demo_dir / "piped-work"),
                "PIPED_SYNC_INTERVAL_SECONDS": str(sync_interval),
                "PIPED_AWS_MAX_ATTEMPTS": "1",
                "PIPED_ECS_POLL_SECONDS": "1",
                "PYTHONUNBUFFERED": "1",
            }
        )
        children.start(
            "piped",
            [sys.executable, "manage.py", "piped", "--config-file", str(piped_config), "--insecure"],
            piped_env,
        )
        url = f"http://127.0.0.1:{port}"
        self.banner(url, admin, password, demo_dir)
        self.watch(children, stopping)

    @staticmethod
    def keep_tasks_running(endpoint: str) -> None:
        """moto moves a task one state on (RUNNING → DEACTIVATING → … → STOPPED) each time it is described;
        the live state describes them every few seconds, so the demo's tasks would seem to stop by themselves."""
        import requests

        requests.post(
            f"{endpoint}/moto-api/state-manager/set-transition",
            json={"model_name": "ecs::task", "transition": {"progression": "manual", "times": 10**9}},
            timeout=10,
        ).raise_for_status()

    @transaction.atomic
    def records(
        self, demo_dir: Path, remote: str, api_address: str, sync_interval: str
    ) -> tuple[str, str, Path]:
        """The demo project (kept across runs), its piped (key kept in piped-config.yaml) and the application."""
        from apps.applications.models import Application
        from apps.applications.services import add_application
        from apps.pipeds.choices import MAX_PIPED_KEYS
        from apps.pipeds.models import Piped
        from apps.pipeds.services import add_piped_key, delete_piped_key, encode_key, register_piped
        from apps.projects.models import Project
        from apps.projects.principal import system_principal
        from apps.projects.services import create_project, set_static_admin

        system = system_principal(PROJECT, name="demo")
        secrets_file = demo_dir / "demo-credentials.json"
        saved = self.saved_credentials(secrets_file)
        project = Project.objects.filter(pk=PROJECT).first()
        if project is None:
            project, admin, password = create_project(
                system, PROJECT, description="The demo project of `make demo`"
            )
        else:
            admin, password = saved.get("admin"), saved.get("password")
            if not admin or not password:
                from apps.core.keys import new_secret

                admin, password = project.static_admin_username, new_secret(18)
                set_static_admin(system, project, username=admin, password=password)
        piped = Piped.objects.filter(project=project, name=PIPED_NAME).first()
        key = saved.get("piped_key") if piped is not None and saved.get("piped_id") == str(piped.id) else None
        if piped is None:
            piped, key = register_piped(
                system, project, name=PIPED_NAME, description="Runs the demo's deployments"
            )
        elif key is None:
            # The key is only stored hashed: give the piped a fresh one and drop the old ones.
            old_ids = list(piped.keys.order_by("created_at", "id").values_list("pk", flat=True))
            if len(old_ids) >= MAX_PIPED_KEYS:
                delete_piped_key(system, piped, old_ids.pop(0))
            key = add_piped_key(system, piped)
            for key_id in old_ids:
                delete_piped_key(system, piped, key_id)
        if piped.disabled:
            piped.disabled = False
            piped.save(update_fields=["disabled"])
        secrets_file.write_text(
            json.dumps({"admin": admin, "password": password, "piped_id": str(piped.id), "piped_key": key})
        )
        secrets_file.chmod(0o600)
        # The emulator starts empty at every run, so the demo application starts afresh too.
        Application.objects.filter(project=project, piped=piped, path=APP_PATH).delete()
        add_application(
            system,
            project,
            name=APP_NAME,
            piped_id=piped.id,
            platform_provider="ECS",
            repo_id="manifests",
            path=APP_PATH,
            description="The seed's ECS application (see apps/pipedagent/demo_assets).",
        )
        config = demo_dir / "piped-config.yaml"
        config.write_text(
            "apiVersion: pipecd.dev/v1beta1\n"
            "kind: Piped\n"
            "spec:\n"
            f"  projectID: {PROJECT}\n"
            f"  pipedID: {piped.id}\n"
            f"  pipedKeyData: {encode_key(key)}\n"
            f"  apiAddress: {api_address}\n"
            f"  syncInterval: {sync_interval}s\n"
            "  repositories:\n"
            "    - repoId: manifests\n"
            f"      remote: {remote}\n"
            "      branch: main\n"
            "  platformProviders:\n"
            "    - name: ECS\n"
            "      type: ECS\n"
            "      config:\n"
            "        region: us-east-1\n"
        )
        config.chmod(0o600)
        return admin, password, config

    @staticmethod
    def saved_credentials(path: Path) -> dict:
        """What an earlier run wrote (the admin password, the piped key): the demo keeps them across runs."""
        if not path.exists():
            return {}
        try:
            saved = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise CommandError(
                f"{path}: cannot read the demo's saved credentials ({exc}); delete the file and run again."
            ) from None
        if not isinstance(saved, dict):
            raise CommandError(
                f"{path}: the demo's saved credentials are not a JSON object; delete the file and run again."
            )
        return saved

    def banner(self, url: str, admin: str, password: str, demo_dir: Path) -> None:
        line = "=" * 72
        self.stdout.write(
            "\n".join(
                [
                    "",
                    line,
                    f"  PipePortal is running:   {url}/login/{PROJECT}/",
                    f"  Project:                 {PROJECT}",
                    f"  Static admin login:      {admin}",
                    f"  Static admin password:   {password}",
                    "",
                    f"  Manifests repository:    {demo_dir / 'manifests-work'}  (commit and `git push` to deploy)",
                    f"  Piped config:            {demo_dir / 'piped-config.yaml'}",
                    f"  Logs:                    {demo_dir / 'logs'}",
                    "",
                    "  Try a canary release (the seed's pipeline: canary 20 % → 10 % of the traffic → approval →",
                    "  primary rollout → 100 % → canary clean):",
                    f"    cd {demo_dir / 'manifests-work'}",
                    "    sed -i 's/hogehoge:v1/hogehoge:v2/' apps/hello/taskdef.yaml",
                    "    git commit -am 'hogehoge v2' && git push",
                    "  The deployment waits for your approval on its page, which shows the traffic split and the",
                    "  tasks of each version; the application page shows the live state and drift. docs/ecs.md",
                    "  says what each stage does.",
                    "",
                    "  Press Ctrl-C to stop everything.",
                    line,
                    "",
                ]
            )
        )

    def watch(self, children: Children, stopping: dict) -> None:
        """Print the demo application's deployments as they move; stop when asked or when a child dies."""
        from apps.deployments.models import Deployment

        seen: dict = {}
        while stopping["signal"] is None:
            dead = children.exited()
            if dead:
                for name, code, log in dead:
                    tail = log.read_text().splitlines()[-15:] if log.exists() else []
                    self.stderr.write(
                        f"{name} exited with status {code}; the end of {log}:\n" + "\n".join(tail)
                    )
                raise CommandError("A demo process stopped unexpectedly.")
            for deployment in Deployment.objects.filter(project_id=PROJECT).order_by("created_at"):
                state = (deployment.status, deployment.status_reason)
                if seen.get(deployment.pk) != state:
                    seen[deployment.pk] = state
                    self.stdout.write(
                        f"  deployment {str(deployment.pk)[:8]} of {deployment.application_name} at "
                        f"{deployment.short_commit}: {deployment.status}"
                        + (f" — {deployment.status_reason}" if deployment.status_reason else "")
                    )
            time.sleep(0.5)
