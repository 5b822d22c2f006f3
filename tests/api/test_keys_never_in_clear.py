"""API keys and piped keys never reach the database, the logs or an error answer in clear."""

import base64
import json
import logging
from io import StringIO

from django.core.management import call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext

from apps.pipeds.services import authenticate_piped
from apps.projects.services import authenticate_api_key

from .conftest import API


def every_row_as_text() -> str:
    """Every value of every table, as one string to search."""
    chunks = []
    with connection.cursor() as cursor:
        for table in connection.introspection.table_names():
            cursor.execute(f"SELECT * FROM {connection.ops.quote_name(table)}")
            for row in cursor.fetchall():
                for value in row:
                    if isinstance(value, bytes | memoryview):
                        value = bytes(value).decode("utf-8", "replace")
                    chunks.append(str(value))
    return "\n".join(chunks)


def test_keys_never_appear_in_clear(apis, keys, project, application, deployment, caplog):
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="django.db.backends")
    answers = []
    # CaptureQueriesContext turns on Django's SQL logging (statements and parameters) for the test.
    with CaptureQueriesContext(connection) as queries:
        out = StringIO()
        call_command(
            "createapikey",
            "--project",
            project.id,
            "--name",
            "cli",
            "--role",
            "READ_WRITE",
            "--json",
            stdout=out,
        )
        cli_key = json.loads(out.getvalue().splitlines()[-1])["api_key"]
        out = StringIO()
        call_command("registerpiped", "--project", project.id, "--name", "cli-piped", "--json", stdout=out)
        cli_piped = json.loads(out.getvalue().splitlines()[-1])
        registered = apis["rw"].post("/pipeds", {"name": "api-piped"}).json()

        # Use every key the way callers do, successfully and not.
        for key in (keys["rw"], cli_key):
            api = API(key)
            answers.append(api.get("/applications"))
            answers.append(api.post(f"/applications/{application.id}/sync"))
            answers.append(api.post(f"/deployments/{deployment.id}/stages/approval/approve"))
            answers.append(api.post("/applications", raw="{not json"))
        for name in ("disabled", "wrong_secret", "unknown_id", "bearer"):
            answers.append(apis[name].get("/deployments"))
        answers.append(API(keys["ro"]).post(f"/deployments/{deployment.id}/cancel"))
        answers.append(API(keys["rw"] + "x").get("/pipeds"))
        assert authenticate_api_key(cli_key) is not None
        for piped in (cli_piped, registered):
            assert authenticate_piped(project.id, piped["piped_id"], piped["piped_key"]) is not None
            assert authenticate_piped(project.id, piped["piped_id"], piped["piped_key"] + "x") is None

    secrets = {
        "rw api key": keys["rw"],
        "ro api key": keys["ro"],
        "disabled api key": keys["disabled"],
        "cli api key": cli_key,
    }
    for label, key in list(secrets.items()):
        secrets[f"{label} (secret part)"] = key.split(".", 1)[1]
    for label, piped in (("cli piped", cli_piped), ("api piped", registered)):
        secrets[f"{label} key"] = piped["piped_key"]
        secrets[f"{label} key base64"] = piped["piped_key_base64"]
        assert base64.b64decode(piped["piped_key_base64"]).decode() == piped["piped_key"]

    stored = every_row_as_text()
    logged = caplog.text + "\n".join(str(r.args) for r in caplog.records)
    sql = "\n".join(q["sql"] for q in queries.captured_queries)
    assert len(queries.captured_queries) > 20 and "api_key" in sql.lower()
    # The SQL log (statements with their parameters) was captured too, so the check below covers it.
    assert any(r.name == "django.db.backends" for r in caplog.records)
    refused = [a for a in answers if a.status_code >= 400]
    assert {a.status_code for a in refused} == {400, 401, 403}
    error_bodies = "\n".join(a.content.decode() for a in refused)
    # The search works: the key's id (not secret) is found where the secret must not be.
    key_id = keys["rw"].split(".")[0]
    assert key_id in stored and key_id in logged
    for label, value in secrets.items():
        assert value not in stored, f"{label} stored in clear"
        assert value not in logged, f"{label} logged in clear"
        assert value not in sql, f"{label} in an SQL statement"
        assert value not in error_bodies, f"{label} echoed in an error answer"
