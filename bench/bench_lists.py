"""Lists at scale: 10,000 applications and 1,000,000 deployments on MySQL, portal pages and API lists.

`python -m bench lists` (part of `make bench`). It seeds a dedicated database (`pipeportal_bench`, next
to the one DATABASE_URL names, which is never touched) once and reuses it while the row counts match,
then times ~50 requests per case through Django's test client (a logged-in portal session, an API key)
and counts their SQL queries. Targets: p95 under 100 ms per page, and a query count that does not grow
with the number of rows (compare with `--quick`, which seeds 100 times fewer rows).
On SQLite it refuses to run unless `--quick` (a smoke run of the code paths, not a measurement).
"""

import json
import os
import random
import statistics
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from urllib.parse import urlencode, urlparse, urlunparse

FULL = {"applications": 10_000, "deployments": 1_000_000}
QUICK = {"applications": 100, "deployments": 10_000}
PROJECT = "bench"
REQUESTS = 50
WARMUP = 3
TARGET = "p95 < 100 ms"
BATCH = 5_000
STAGES = [
    ("stage-0", "ECS_CANARY_ROLLOUT"),
    ("approval", "WAIT_APPROVAL"),
    ("stage-2", "ECS_PRIMARY_ROLLOUT"),
    ("stage-3", "ECS_CANARY_CLEAN"),
]
TEAMS = [f"team-{n}" for n in range(20)]
ENVS = ["dev", "stg", "prod"]


def log(message: str) -> None:
    print(f"# lists: {message}", file=sys.stderr, flush=True)


# --- Choosing and preparing the database ----------------------------------------------------------------


def _bench_mysql_url(url: str, name: str) -> str:
    parts = urlparse(url)
    return urlunparse(parts._replace(path=f"/{name}"))


def _create_mysql_database(url: str, name: str) -> None:
    import MySQLdb

    parts = urlparse(url)
    conn = MySQLdb.connect(
        host=parts.hostname or "127.0.0.1",
        port=parts.port or 3306,
        user=parts.username or "root",
        password=parts.password or "",
    )
    try:
        conn.cursor().execute(
            f"CREATE DATABASE IF NOT EXISTS `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"
        )
    finally:
        conn.close()


def setup_django(quick: bool) -> str | None:
    """Point Django at the bench database; answers why not when it must not run."""
    url = os.environ.get("DATABASE_URL", "")
    if url.startswith("mysql"):
        name = "pipeportal_bench_quick" if quick else "pipeportal_bench"
        _create_mysql_database(url, name)
        target = {"DATABASE_URL": _bench_mysql_url(url, name)}
    elif quick:
        var = os.environ.get("PIPEPORTAL_VAR_DIR", os.path.join(os.path.dirname(__file__), "..", "var"))
        os.makedirs(var, exist_ok=True)
        target = {"SQLITE_PATH": os.path.abspath(os.path.join(var, "bench-lists-quick.sqlite3"))}
    else:
        return (
            "needs MySQL: set DATABASE_URL=mysql://… (the bench seeds its own database `pipeportal_bench` "
            "on that server), or pass --quick for a small smoke run on SQLite"
        )
    # Secrets for this process only: sessions and API keys are made afresh at every run.
    os.environ.setdefault("SECRET_KEY", uuid.uuid4().hex + uuid.uuid4().hex)
    os.environ.setdefault("PIPEPORTAL_KEY_HASH_SECRET", uuid.uuid4().hex + uuid.uuid4().hex)
    from django.conf import settings

    if settings.configured and hasattr(settings, "DATABASES") and _django_ready():
        # Another benchmark set Django up first: switch the default database under it.
        from django.db import connections

        connections["default"].close()
        # Its settings were read before this bench's secrets were set.
        # (Django refuses to read an empty SECRET_KEY, so both are set; they were empty or the same.)
        settings.SECRET_KEY = os.environ["SECRET_KEY"]
        settings.PIPEPORTAL_KEY_HASH_SECRET = (
            settings._wrapped.PIPEPORTAL_KEY_HASH_SECRET or os.environ["PIPEPORTAL_KEY_HASH_SECRET"]
        )
        if "DATABASE_URL" in target:
            from pipeportal.settings import _database_from_url

            connections.settings["default"].update(_database_from_url(target["DATABASE_URL"]))
        else:
            connections.settings["default"]["NAME"] = target["SQLITE_PATH"]
    else:
        os.environ.update(target)
        import django

        django.setup()
    return None


def _django_ready() -> bool:
    from django.apps import apps

    return apps.ready


def migrate() -> None:
    from django.core.management import call_command

    started = time.monotonic()
    call_command("migrate", "--noinput", verbosity=0)
    log(f"schema ready in {time.monotonic() - started:.1f}s")


# --- Seeding --------------------------------------------------------------------------------------------


def _db_value(field, value, connection):
    return field.get_db_prep_save(value, connection)


class BulkInserter:
    """INSERT … VALUES with executemany (mysqlclient turns it into multi-row statements).

    Columns come from the model, so a field added later is filled with its default."""

    def __init__(self, model, given: list[str]):
        from django.db import connection

        self.connection = connection
        self.model = model
        fields = [
            f
            for f in model._meta.concrete_fields
            if not (f.primary_key and f.get_internal_type() == "BigAutoField")
        ]
        self.fields = fields
        self.given = given
        self.defaults = {}
        for f in fields:
            if f.attname in given:
                continue
            default = None if f.null and not f.has_default() else f.get_default()
            if getattr(f, "auto_now", False) or getattr(f, "auto_now_add", False):
                raise ValueError(f"{f.attname}: give it a value")
            self.defaults[f.attname] = _db_value(f, default, connection)
        quote = connection.ops.quote_name
        columns = ", ".join(quote(f.column) for f in fields)
        placeholders = ", ".join(["%s"] * len(fields))
        self.sql = f"INSERT INTO {quote(model._meta.db_table)} ({columns}) VALUES ({placeholders})"

    def insert(self, rows: list[dict]) -> None:
        """`rows` hold values already in database form (hex uuids, JSON text, naive UTC on MySQL)."""
        order = [f.attname for f in self.fields]
        defaults = self.defaults
        params = [tuple(row[a] if a in row else defaults[a] for a in order) for row in rows]
        with self.connection.cursor() as cursor:
            cursor.executemany(self.sql, params)


def _dt(value: datetime, connection):
    from django.db.models import DateTimeField

    return DateTimeField().get_db_prep_value(value, connection)


def counts_match(sizes: dict) -> bool:
    from apps.applications.models import Application
    from apps.deployments.models import Deployment
    from apps.projects.models import Project

    if not Project.objects.filter(pk=PROJECT).exists():
        return False
    apps = Application.objects.filter(project_id=PROJECT).count()
    deployments = Deployment.objects.filter(project_id=PROJECT).count()
    log(f"found {apps} applications and {deployments} deployments")
    return apps == sizes["applications"] and deployments == sizes["deployments"]


def seed(sizes: dict) -> float:
    """Seed the project from scratch; returns the seconds it took."""
    from django.db import connection, transaction

    from apps.applications.models import Application
    from apps.deployments.models import Deployment, Stage
    from apps.pipeds.services import register_piped
    from apps.projects.models import Project
    from apps.projects.principal import system_principal
    from apps.projects.services import create_project

    started = time.monotonic()
    rng = random.Random(2)
    log("dropping the previous bench project")
    Project.objects.filter(pk=PROJECT).delete()
    project, _, _ = create_project(system_principal(), PROJECT, description="make bench")
    pipeds = [register_piped(system_principal(PROJECT), project, name=f"piped-{n}")[0] for n in range(4)]
    now = datetime.now(UTC)
    pk = Application._meta.pk

    def uid(value: uuid.UUID):
        """A UUID as this database stores it (hex text, or MariaDB's native UUID)."""
        return pk.get_db_prep_value(value, connection)

    n_apps = sizes["applications"]
    apps = []
    inserter = BulkInserter(
        Application,
        [
            "id", "project_id", "piped_id", "name", "kind", "platform_provider", "repo_id", "path",
            "labels", "description", "sync_status", "sync_short_reason", "sync_reason", "created_at", "updated_at",
        ],
    )  # fmt: skip
    rows = []
    for i in range(n_apps):
        app_id = uuid.UUID(int=rng.getrandbits(128), version=4)
        labels = {"env": ENVS[i % 3], "team": TEAMS[i % len(TEAMS)]}
        apps.append((app_id, labels, f"svc-{i:05d}", pipeds[i % len(pipeds)].id))
        created = _dt(now - timedelta(days=400, seconds=i), connection)
        rows.append(
            {
                "id": uid(app_id),
                "project_id": PROJECT,
                "piped_id": uid(pipeds[i % len(pipeds)].id),
                "name": f"svc-{i:05d}",
                "kind": "ECS",
                "platform_provider": "ecs-prod",
                "repo_id": "manifests",
                "path": f"services/svc-{i:05d}",
                "labels": json.dumps(labels),
                "description": "",
                "sync_status": "SYNCED" if i % 10 else "OUT_OF_SYNC",
                "sync_short_reason": "",
                "sync_reason": "",
                "created_at": created,
                "updated_at": created,
            }
        )
    with transaction.atomic():
        for start in range(0, len(rows), BATCH):
            inserter.insert(rows[start : start + BATCH])
    log(f"{n_apps} applications in {time.monotonic() - started:.1f}s")

    n_dep = sizes["deployments"]
    given = [
        "id", "project_id", "application_id", "piped_id", "application_name", "kind", "platform_provider",
        "labels", "commit_hash", "commit_message", "commit_author", "commit_branch", "commit_url", "commander",
        "sync_strategy", "strategy_summary", "summary", "versions", "running_commit_hash", "status",
        "status_reason", "created_at", "updated_at", "completed_at",
    ]  # fmt: skip
    inserter = BulkInserter(Deployment, given)
    span = timedelta(days=365).total_seconds()
    first = now - timedelta(days=365)
    latest: dict = {}
    dep_started = time.monotonic()
    # Ids rise with time (a counter in the high bits, still valid version-4 UUIDs, which MariaDB's native
    # UUID type insists on): inserts land near each other instead of all over the primary key.
    batch = []
    for i in range(n_dep):
        app_index = rng.randrange(n_apps)
        app_id, labels, name, piped_id = apps[app_index]
        created_at = first + timedelta(seconds=span * i / n_dep)
        recent = i >= n_dep - 20
        status = (
            rng.choice(["RUNNING", "PLANNED", "PENDING"])
            if recent
            else rng.choices(["SUCCESS", "FAILURE", "CANCELLED"], weights=[85, 10, 5])[0]
        )
        dep_id = uuid.UUID(int=(i << 80) | rng.getrandbits(76), version=4)
        commit = f"{rng.getrandbits(160):040x}"
        created = _dt(created_at, connection)
        batch.append(
            {
                "id": uid(dep_id),
                "project_id": PROJECT,
                "application_id": uid(app_id),
                "piped_id": uid(piped_id),
                "application_name": name,
                "kind": "ECS",
                "platform_provider": "ecs-prod",
                "labels": json.dumps(labels),
                "commit_hash": commit,
                "commit_message": f"Bump {name} to v{i}",
                "commit_author": "dev@example.com",
                "commit_branch": "main",
                "commit_url": f"https://git.example.com/manifests/commit/{commit}",
                "commander": "",
                "sync_strategy": "PIPELINE",
                "strategy_summary": "Canary 10% then primary",
                "summary": "" if recent else f"Deployed v{i}",
                "versions": json.dumps([{"name": "app", "version": f"v{i}", "url": f"registry/app:v{i}"}]),
                "running_commit_hash": commit,
                "status": status,
                "status_reason": "",
                "created_at": created,
                "updated_at": created,
                "completed_at": None if recent else _dt(created_at + timedelta(minutes=12), connection),
            }
        )
        latest[app_index] = (dep_id, status)
        if len(batch) >= BATCH:
            with transaction.atomic():
                inserter.insert(batch)
            batch = []
            if (i + 1) % 100_000 == 0:
                log(f"{i + 1} deployments ({time.monotonic() - dep_started:.0f}s)")
    if batch:
        with transaction.atomic():
            inserter.insert(batch)
    log(f"{n_dep} deployments in {time.monotonic() - dep_started:.1f}s")

    # Four stages per deployment, written by the server itself (INSERT … SELECT), in id order.
    stage_started = time.monotonic()
    _insert_stages(connection, Stage, Deployment)
    log(f"{len(STAGES) * n_dep} stages in {time.monotonic() - stage_started:.1f}s")

    with transaction.atomic(), connection.cursor() as cursor:
        table = connection.ops.quote_name(Application._meta.db_table)
        cursor.executemany(
            f"UPDATE {table} SET most_recent_deployment_id = %s, most_recent_successful_deployment_id = %s "
            "WHERE id = %s",
            [
                (uid(dep_id), uid(dep_id) if status == "SUCCESS" else None, uid(apps[index][0]))
                for index, (dep_id, status) in latest.items()
            ],
        )
    if connection.vendor == "mysql":
        with connection.cursor() as cursor:
            for model in (Application, Deployment, Stage):
                cursor.execute(f"ANALYZE TABLE {connection.ops.quote_name(model._meta.db_table)}")
                cursor.fetchall()
    return time.monotonic() - started


def _insert_stages(connection, Stage, Deployment) -> None:
    from django.db import transaction

    quote = connection.ops.quote_name
    fields = [f for f in Stage._meta.concrete_fields if not f.primary_key]
    stage_rows = " UNION ALL ".join(
        f"SELECT %s AS sid, %s AS sname, {n} AS sidx" for n, _ in enumerate(STAGES)
    )
    expressions, params_before = [], []
    for f in fields:
        column = f.attname
        if column == "deployment_id":
            expressions.append("d.id")
        elif column == "stage_id":
            expressions.append("s.sid")
        elif column == "name":
            expressions.append("s.sname")
        elif column == "index":
            expressions.append("s.sidx")
        elif column == "status":
            expressions.append(
                "CASE WHEN d.status IN ('PENDING', 'PLANNED') THEN 'NOT_STARTED_YET' "
                "WHEN d.status = 'RUNNING' AND s.sidx = 1 THEN 'RUNNING' "
                "WHEN d.status = 'RUNNING' AND s.sidx > 1 THEN 'NOT_STARTED_YET' "
                "WHEN d.status = 'CANCELLED' AND s.sidx > 1 THEN 'CANCELLED' "
                "WHEN d.status = 'FAILURE' AND s.sidx = 2 THEN 'FAILURE' "
                "WHEN d.status = 'FAILURE' AND s.sidx > 2 THEN 'NOT_STARTED_YET' "
                "ELSE 'SUCCESS' END"
            )
        elif column in ("created_at", "updated_at", "started_at"):
            expressions.append("d.created_at")
        elif column == "completed_at":
            expressions.append("d.completed_at")
        else:
            default = None if f.null and not f.has_default() else f.get_default()
            expressions.append("%s")
            params_before.append(f.get_db_prep_save(default, connection))
    columns = ", ".join(quote(f.column) for f in fields)
    dep_table = quote(Deployment._meta.db_table)
    base_sql = (
        f"INSERT INTO {quote(Stage._meta.db_table)} ({columns}) "
        f"SELECT {', '.join(expressions)} FROM {dep_table} d CROSS JOIN ({stage_rows}) s "
        "WHERE d.project_id = %s AND d.id <= %s"
    )
    stage_params = [p for sid, sname in STAGES for p in (sid, sname)]
    pk = Deployment._meta.pk
    # Chunks in the database's own id order (MariaDB's UUID type does not sort like the text form).
    ids = list(Deployment.objects.filter(project_id=PROJECT).order_by("id").values_list("id", flat=True))
    step = 50_000
    for start in range(0, len(ids), step):
        chunk = ids[start : start + step]
        sql, params = (
            base_sql,
            [*params_before, *stage_params, PROJECT, pk.get_db_prep_value(chunk[-1], connection)],
        )
        if start:
            sql += " AND d.id > %s"
            params.append(pk.get_db_prep_value(ids[start - 1], connection))
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(sql + " ORDER BY d.id, s.sidx", params)


# --- Measuring ------------------------------------------------------------------------------------------


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(fraction * (len(ordered) - 1))))
    return ordered[index]


def explain(sql: str, table: str) -> str:
    """The index MySQL picks for the page's main query (shown in the table's note)."""
    from django.db import connection

    if connection.vendor != "mysql" or not sql.lstrip().upper().startswith("SELECT"):
        return ""
    with connection.cursor() as cursor:
        cursor.execute(f"EXPLAIN {sql}")
        columns = [c[0] for c in cursor.description]
        rows = [dict(zip(columns, row, strict=False)) for row in cursor.fetchall()]
    row = next((r for r in rows if r.get("table") == table), rows[0])
    return f"{table}: index {row.get('key') or 'none'}, ~{row.get('rows')} rows estimated"


def main_query(captured: list[dict], table: str) -> str:
    """The page's main SELECT: from `table`, with a LIMIT if one has it (what EXPLAIN should look at)."""
    reads = [q["sql"] for q in captured if q["sql"].lstrip().upper().startswith("SELECT")]
    from_table = [sql for sql in reads if f"FROM `{table}`" in sql or f'FROM "{table}"' in sql]
    limited = [sql for sql in from_table if " LIMIT " in sql]
    return (limited or from_table or [""])[-1]


def measure(
    client, case: str, url: str, main_table: str, headers: dict | None = None, target: str = TARGET
) -> dict:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    headers = headers or {}
    for _ in range(WARMUP):
        response = client.get(url, headers=headers)
    if response.status_code != 200:
        return {"bench": "lists", "case": case, "note": f"page failed: HTTP {response.status_code}"}
    times, counts, main_sql = [], set(), ""
    for _ in range(REQUESTS):
        with CaptureQueriesContext(connection) as queries:
            started = time.perf_counter()
            response = client.get(url, headers=headers)
            times.append((time.perf_counter() - started) * 1000)
        if response.status_code != 200:
            return {"bench": "lists", "case": case, "note": f"page failed: HTTP {response.status_code}"}
        counts.add(len(queries))
        main_sql = main_query(queries.captured_queries, main_table) or main_sql
    p95 = percentile(times, 0.95)
    note = explain(main_sql, main_table) if main_sql else ""
    if p95 >= 100 and target == TARGET:
        note = f"OVER TARGET; {note}" if note else "OVER TARGET"
    return {
        "bench": "lists",
        "case": case,
        "n": REQUESTS,
        "p50_ms": statistics.median(times),
        "p95_ms": p95,
        "queries": max(counts) if len(counts) == 1 else f"{min(counts)}-{max(counts)}",
        "target": target,
        "note": note,
    }


def portal_client(project):
    """A Django test client holding a real portal session (as SSO starts one), Editor of the project."""
    from django.conf import settings
    from django.test import Client, RequestFactory
    from django.utils.module_loading import import_string

    from apps.accounts.services import start_portal_session

    request = RequestFactory().get("/")
    request.session = import_string(f"{settings.SESSION_ENGINE}.SessionStore")()
    start_portal_session(request, project, username="bench", role="Editor", method="bench")
    # A page that fails answers 500 and is reported as such, instead of stopping the whole bench.
    client = Client(raise_request_exception=False)
    client.cookies[settings.SESSION_COOKIE_NAME] = request.session.session_key
    return client


def portal_cursor(position) -> str:
    """The portal's own cursor for a position in the deployments list (empty if it has none)."""
    try:
        from apps.webui.queries import Cursor
    except ImportError:
        return ""
    return urlencode({"cursor": Cursor(position[0], str(position[1])).encode()})


def cases(sizes: dict):
    """(case, url, main table, needs the API key) for every measured request."""
    from django.urls import NoReverseMatch, reverse

    from apps.applications.models import Application
    from apps.deployments.models import Deployment
    from pipeportal.api_support import encode_cursor

    recent = Deployment.objects.filter(project_id=PROJECT).order_by("-created_at", "-id").first()
    # Far down the list: 90 % of the way to the oldest deployment (one OFFSET query, here only).
    deep = (
        Deployment.objects.filter(project_id=PROJECT)
        .order_by("-created_at", "-id")
        .values_list("created_at", "id")[int(sizes["deployments"] * 0.9)]
    )
    deep_app = (
        Application.objects.filter(project_id=PROJECT, deleted=False)
        .order_by("name", "id")
        .values_list("name", "id")[int(sizes["applications"] * 0.9)]
    )
    busy_app = recent.application_id
    portal = []
    for case, name, kwargs, query in [
        ("portal applications list", "webui:applications", {}, ""),
        ("portal applications list env:prod", "webui:applications", {}, "labels=env:prod"),
        ("portal deployments list", "webui:deployments", {}, ""),
        ("portal deployments list status FAILURE", "webui:deployments", {}, "status=FAILURE"),
        ("portal deployments list, cursor at 90 %", "webui:deployments", {}, portal_cursor(deep)),
        ("portal deployment detail", "webui:deployment", {"deployment_id": recent.id}, ""),
    ]:
        try:
            url = reverse(name, kwargs=kwargs) + (f"?{query}" if query else "")
        except NoReverseMatch:
            url = None
        portal.append(
            (case, url, "deployments_deployment" if "deployment" in case else "applications_application")
        )
    api = [
        ("API list applications", "/api/v1/applications", "applications_application"),
        (
            "API list applications, deep cursor",
            "/api/v1/applications?" + urlencode({"cursor": encode_cursor(list(deep_app))}),
            "applications_application",
        ),
        (
            "API list applications labels=env:prod",
            "/api/v1/applications?labels=env:prod",
            "applications_application",
        ),
        ("API list deployments", "/api/v1/deployments", "deployments_deployment"),
        (
            "API list deployments, cursor at 90 %",
            "/api/v1/deployments?" + urlencode({"cursor": encode_cursor(list(deep))}),
            "deployments_deployment",
        ),
        (
            "API list deployments status=FAILURE",
            "/api/v1/deployments?status=FAILURE",
            "deployments_deployment",
        ),
        (
            "API list deployments labels=team:team-7",
            "/api/v1/deployments?labels=team:team-7",
            "deployments_deployment",
        ),
        (
            "API list deployments application_id",
            f"/api/v1/deployments?application_id={busy_app}",
            "deployments_deployment",
        ),
        # The largest page a client may ask for: shown for information, the target is for default pages.
        ("API list deployments limit=500", "/api/v1/deployments?limit=500", "deployments_deployment"),
        ("API get deployment", f"/api/v1/deployments/{recent.id}", "deployments_stage"),
    ]
    return portal, api


def run(args) -> list[dict]:
    quick = bool(getattr(args, "quick", False))
    sizes = QUICK if quick else FULL
    refusal = setup_django(quick)
    if refusal:
        log(refusal)
        return [{"bench": "lists", "case": "(not run)", "note": refusal}]
    from django.db import connection
    from django.test.utils import override_settings

    from apps.projects.models import Project
    from apps.projects.principal import system_principal
    from apps.projects.services import create_api_key

    migrate()
    rows: list[dict] = []
    if counts_match(sizes):
        log(f"reusing the seeded database ({connection.settings_dict['NAME']})")
    else:
        log(f"seeding {sizes['applications']} applications and {sizes['deployments']} deployments")
        seconds = seed(sizes)
        rows.append(
            {
                "bench": "lists",
                "case": "seed",
                "n": sizes["deployments"],
                "total_s": seconds,
                "note": connection.vendor,
            }
        )
    project = Project.objects.get(pk=PROJECT)
    _, key = create_api_key(
        system_principal(PROJECT), project, name=f"bench-{uuid.uuid4().hex[:8]}", role="READ_ONLY"
    )
    headers = {"Authorization": f"API-KEY {key}"}
    # The bench measures views, not static files: no collectstatic manifest needed; `testserver` allowed.
    from django.conf import settings

    storages = {
        **settings.STORAGES,
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    }
    with override_settings(ALLOWED_HOSTS=[*settings.ALLOWED_HOSTS, "testserver"], STORAGES=storages):
        from django.test import Client

        portal_cases, api_cases = cases(sizes)
        client = portal_client(project)
        for case, url, table in portal_cases:
            if url is None:
                rows.append({"bench": "lists", "case": case, "note": "page not available"})
                continue
            log(case)
            rows.append(measure(client, case, url, table))
        api_client = Client(raise_request_exception=False)
        for case, url, table in api_cases:
            log(case)
            target = "(info: 10x a page)" if "limit=500" in url else TARGET
            rows.append(measure(api_client, case, url, table, headers, target))
    size = f"{sizes['applications']} apps / {sizes['deployments']} deployments on {connection.vendor}"
    for row in rows:
        if row.get("case") != "seed":
            row["note"] = f"{row.get('note') or ''}{'; ' if row.get('note') else ''}{size}"
    return rows
