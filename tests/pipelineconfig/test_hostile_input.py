"""Files written to hurt: alias bombs, odd YAML tags, huge files and numbers, definition files outside the
app directory, stage ids that collide. Each is a ConfigError naming the place — never a traceback, a hang
or a secret in a message."""

import base64
import json
import os
import time
from pathlib import Path

import pytest

from apps.pipelineconfig import (
    MASK,
    ConfigError,
    load_app_config,
    load_ecs_definitions,
    load_file,
    load_piped_config,
)
from apps.pipelineconfig.source import MAX_FILE_CHARS
from apps.pipelineconfig.validate import check_file

HEAD = "apiVersion: pipecd.dev/v1beta1\nkind: ECSApp\nspec:\n"
SECRET = "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAABG5vbmUtc2VjcmV0LWtleS1ieXRlcw\n"


def errors_of(text: str) -> list:
    with pytest.raises(ConfigError) as caught:
        load_app_config("app.pipecd.yaml", text=text)
    return caught.value.errors


def alias_bomb(levels: int) -> str:
    lines = ["    a0: &a0 [lol]"]
    for i in range(1, levels):
        lines.append(f"    a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]")
    return HEAD + "  labels:\n" + "\n".join(lines) + "\n"


def test_an_alias_bomb_is_refused_quickly():
    started = time.perf_counter()
    errors = errors_of(alias_bomb(12))  # 9^11 values if it were built
    assert time.perf_counter() - started < 5
    assert len(errors) == 1
    assert "aliases" in errors[0].message and "100,000" in errors[0].message


def test_anchors_used_a_few_times_still_work():
    text = HEAD + (
        "  labels: &labels {team: web, env: dev}\n"
        "  description: shared labels\n"
        "  pipeline:\n"
        "    stages:\n"
        "      - {name: WAIT, with: &wait {duration: 10s}}\n"
        "      - {id: second, name: WAIT, with: *wait}\n"
    )
    spec = load_app_config("app.pipecd.yaml", text=text).spec
    assert spec.labels == {"team": "web", "env": "dev"}
    assert [s.options.duration.total_seconds() for s in spec.pipeline.stages] == [10, 10]


@pytest.mark.parametrize(
    ("value", "words"),
    [
        ("!!int abc", "'abc' is not a valid int"),
        ("!!bool maybe", "'maybe' is not a valid bool"),
        ("!!float lots", "'lots' is not a valid float"),
        ("9" * 5000, "has too many digits (5000)"),
        ("!!timestamp yesterday", None),  # dates stay text: no problem of its own
    ],
    ids=["int", "bool", "float", "5000 digits", "timestamp"],
)
def test_a_scalar_yaml_cannot_construct_is_one_clear_error(value, words):
    errors = errors_of(HEAD + f"  timeout: {value}\n")
    assert len(errors) == 1
    assert (errors[0].line, errors[0].path) == (4, "spec.timeout")
    if words:
        assert words in errors[0].message
    else:
        assert "expected a duration" in errors[0].message


@pytest.mark.parametrize("duration", ["2562048h", "99999999999999999999h", "1" + "0" * 400 + "s"])
def test_a_duration_longer_than_go_allows_is_refused(duration):
    errors = errors_of(HEAD + f"  timeout: {duration}\n")
    assert len(errors) == 1
    assert "longest duration" in errors[0].message


def test_the_longest_go_duration_is_fine():
    spec = load_app_config("app.pipecd.yaml", text=HEAD + "  timeout: 2562047h\n").spec
    assert spec.timeout.days == 106751


def test_a_huge_file_is_refused_unread(tmp_path):
    path = tmp_path / "app.pipecd.yaml"
    with path.open("w") as handle:
        handle.write(HEAD + "  description: |\n")
        line = "    " + "x" * 1019 + "\n"
        for _ in range(MAX_FILE_CHARS // len(line) + 2):
            handle.write(line)
    with pytest.raises(ConfigError, match="larger than 8 MB"):
        load_file(path)
    with pytest.raises(ConfigError, match="larger than 8 MB"):
        load_app_config("given.yaml", text=path.read_text())


def ecs_app(app_dir: Path, task_file: str, service_file: str = "") -> Path:
    service = f"    serviceDefinitionFile: {service_file}\n" if service_file else ""
    path = app_dir / "app.pipecd.yaml"
    path.write_text(HEAD + f"  input:\n{service}    taskDefinitionFile: {task_file}\n")
    return path


@pytest.fixture
def secret_beside(tmp_path):
    """An app directory, and a secret file next to it (as the piped's SSH key is next to its clones)."""
    (tmp_path / "id_ed25519").write_text(SECRET)
    app_dir = tmp_path / "repo" / "apps" / "web"
    app_dir.mkdir(parents=True)
    return app_dir


@pytest.mark.parametrize("reference", ["../../../id_ed25519", "/../../../id_ed25519"])
def test_a_definition_file_outside_the_app_dir_is_refused_and_never_read(secret_beside, reference):
    config = ecs_app(secret_beside, reference)
    spec = load_app_config(config).spec
    with pytest.raises(ConfigError) as caught:
        load_ecs_definitions(secret_beside, spec)
    text = str(caught.value)
    assert "outside the application directory" in text
    assert "b3BlbnNzaC1rZXkt" not in text and "OPENSSH" not in text
    assert caught.value.errors[0].path == "spec.input.taskDefinitionFile"
    problems = check_file(config)
    assert any("outside the application directory" in p.message for p in problems)
    assert not any("OPENSSH" in p.message for p in problems)


def test_a_symbolic_link_out_of_the_app_dir_is_refused(secret_beside):
    os.symlink(secret_beside.parents[2] / "id_ed25519", secret_beside / "taskdef.yaml")
    config = ecs_app(secret_beside, "taskdef.yaml", service_file="")
    with pytest.raises(ConfigError, match="outside the application directory") as caught:
        load_ecs_definitions(secret_beside, load_app_config(config).spec)
    assert "OPENSSH" not in str(caught.value)


def test_a_definition_in_a_subfolder_of_the_app_dir_is_fine(secret_beside):
    (secret_beside / "defs").mkdir()
    (secret_beside / "defs" / "taskdef.json").write_text(
        json.dumps({"family": "web", "containerDefinitions": [{"name": "app", "image": "nginx"}]})
    )
    config = ecs_app(secret_beside, "defs/taskdef.json")
    definitions = load_ecs_definitions(secret_beside, load_app_config(config).spec)
    assert definitions.task["family"] == "web"


def test_a_definition_that_is_not_a_mapping_is_not_quoted_whole(tmp_path):
    (tmp_path / "taskdef.yaml").write_text(SECRET)
    config = ecs_app(tmp_path, "taskdef.yaml")
    with pytest.raises(ConfigError) as caught:
        load_ecs_definitions(tmp_path, load_app_config(config).spec)
    assert "b3BlbnNzaC1rZXktdjEAAAAABG5vbmUtc2VjcmV0LWtleS1ieXRlcw" not in str(caught.value)
    assert "..." in str(caught.value)


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ('{"family": "a", "cpu": "256", "cpu": "4096"}', "duplicate key 'cpu'"),
        ("[" * 100_000 + "]" * 100_000, "nested too deeply"),
        ('{"family": "a", "memory": ' + "9" * 5000 + "}", "cannot be read"),
    ],
    ids=["duplicate key", "deep nesting", "5000-digit number"],
)
def test_a_json_definition_that_json_alone_would_misread_is_an_error(tmp_path, body, words):
    (tmp_path / "taskdef.json").write_text(body)
    config = ecs_app(tmp_path, "taskdef.json")
    with pytest.raises(ConfigError, match=words):
        load_ecs_definitions(tmp_path, load_app_config(config).spec)


@pytest.mark.parametrize(
    ("stages", "path", "words"),
    [
        (
            "[{name: WAIT}, {id: stage-0, name: WAIT}]",
            "spec.pipeline.stages[1].id",
            "already used by stages[0]",
        ),
        ("[{id: stage-1, name: WAIT}, {name: WAIT}]", "spec.pipeline.stages[1]", "implicit id 'stage-1'"),
        ("[{id: Approval, name: WAIT}, {id: approval, name: WAIT}]", "spec.pipeline.stages[1].id", "case"),
        (
            "[{id: 'wait', name: WAIT}, {id: 'wait  ', name: WAIT}]",
            "spec.pipeline.stages[1].id",
            "already used",
        ),
        ("[{id: " + "s" * 101 + ", name: WAIT}]", "spec.pipeline.stages[0].id", "at most 100"),
        ('[{id: "wait\\nthere", name: WAIT}]', "spec.pipeline.stages[0].id", "control characters"),
    ],
    ids=[
        "explicit after implicit",
        "implicit after explicit",
        "case",
        "trailing spaces",
        "too long",
        "newline",
    ],
)
def test_stage_ids_that_the_control_plane_could_not_tell_apart_are_refused(stages, path, words):
    errors = errors_of(HEAD + f"  pipeline:\n    stages: {stages}\n")
    assert [e.path for e in errors] == [path]
    assert words in errors[0].message


def test_a_huge_min_approver_num_is_refused():
    errors = errors_of(
        HEAD
        + "  pipeline:\n    stages:\n      - {name: WAIT_APPROVAL, with: {minApproverNum: 99999999999999999999}}\n"
    )
    assert errors[0].path == "spec.pipeline.stages[0].with.minApproverNum"
    assert "at most" in errors[0].message


KEY_DATA = base64.b64encode(b"piped-key-123").decode()


def test_mask_hides_credentials_written_into_urls_and_non_text_secrets():
    text = (
        "apiVersion: pipecd.dev/v1beta1\nkind: Piped\nspec:\n"
        f"  projectID: demo\n  pipedID: p1\n  apiAddress: cp.example.test:443\n  pipedKeyData: {KEY_DATA}\n"
        "  repositories:\n"
        "    - {repoId: a, remote: 'https://deploy:tok3n-a@git.example.test/m.git', branch: main}\n"
        "    - {repoId: b, remote: 'https://ghp_tok3nb@github.com/o/m.git', branch: main}\n"
        "    - {repoId: c, remote: 'git@github.com:o/m.git', branch: main}\n"
        "  analysisProviders:\n"
        "    - {name: prom, type: PROMETHEUS, config: {address: 'https://scrape:tok3n-c@prom.test'}}\n"
        "  platformProviders:\n"
        "    - {name: k8s, type: KUBERNETES, config: {apiToken: 12345678, nested: {password: 42}}}\n"
    )
    masked = load_piped_config(text=text, env={}).spec.mask()
    shown = json.dumps(masked)
    for secret in ("tok3n-a", "ghp_tok3nb", "tok3n-c", "12345678", ": 42"):
        assert secret not in shown
    assert [r["remote"] for r in masked["repositories"]] == [
        f"https://deploy:{MASK}@git.example.test/m.git",
        f"https://{MASK}@github.com/o/m.git",
        "git@github.com:o/m.git",
    ]
    assert masked["platformProviders"][0]["config"] == {"apiToken": MASK, "nested": {"password": MASK}}


def test_a_file_that_never_ends_is_refused_after_the_limit():
    # validateconfig may be pointed at anything; a device or a pipe must not be read until memory runs out.
    with pytest.raises(ConfigError, match="larger than 8 MB"):
        load_file("/dev/zero")
