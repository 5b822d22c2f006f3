"""The piped's measurements, taken in this process against the real things: the moto server for AWS (an
error AWS answers, and an endpoint nobody listens on), real Git repositories (a remote that does not exist,
a branch that does not exist), and the metrics listener's address handling in `manage.py piped`."""

import json
import socket
import subprocess
import sys
import textwrap
from types import SimpleNamespace

import git
import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from apps.pipedagent import metrics
from apps.pipedagent.gitrepo import GitAuth, GitError, Repositories
from apps.pipedagent.platforms import ProviderError
from apps.pipedagent.platforms.ecs.provider import ECSProvider
from tests.components import free_port

from .conftest import ROOT


def sample(name: str, **labels: str) -> float:
    """The current value of a sample in the piped's registry (0 when the series does not exist yet)."""
    found = metrics.registry_for(None).get_sample_value(name, labels)
    return found or 0.0


def provider() -> ECSProvider:
    config = SimpleNamespace(region="us-east-1", profile="", credentials_file="", role_arn="", token_file="")
    return ECSProvider("ECS", config, SimpleNamespace(aws_max_attempts=1))


def test_it_times_aws_calls_and_counts_the_errors_aws_answers(aws):
    def calls(operation: str) -> float:
        return sample(
            "pipeportal_piped_aws_request_duration_seconds_count", service="ecs", operation=operation
        )

    def errors(operation: str, code: str) -> float:
        return sample(
            "pipeportal_piped_aws_request_errors_total", service="ecs", operation=operation, code=code
        )

    before = (calls("DescribeServices"), errors("DescribeServices", "ClusterNotFoundException"))
    before_td = (calls("DescribeTaskDefinition"), errors("DescribeTaskDefinition", "ClientException"))
    ecs = provider()
    with pytest.raises(ProviderError, match="ClusterNotFoundException"):
        ecs.describe_service("nowhere", "nothing")
    # An unknown task definition is a ClientException from AWS, which the provider turns into None.
    assert ecs.describe_task_definition("arn:aws:ecs:us-east-1:123456789012:task-definition/none:1") is None
    assert (calls("DescribeServices"), errors("DescribeServices", "ClusterNotFoundException")) == (
        before[0] + 1,
        before[1] + 1,
    )
    assert (calls("DescribeTaskDefinition"), errors("DescribeTaskDefinition", "ClientException")) == (
        before_td[0] + 1,
        before_td[1] + 1,
    )
    elb_calls = sample(
        "pipeportal_piped_aws_request_duration_seconds_count",
        service="elasticloadbalancing",
        operation="DescribeTargetGroups",
    )
    assert ecs.target_groups(["arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/x/1"]) == []
    assert (
        sample(
            "pipeportal_piped_aws_request_duration_seconds_count",
            service="elasticloadbalancing",
            operation="DescribeTargetGroups",
        )
        == elb_calls + 1
    )


def test_it_counts_a_call_that_got_no_answer(monkeypatch):
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{free_port()}")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test")
    labels = {"service": "ecs", "operation": "ListTagsForResource", "code": "EndpointConnectionError"}
    before = sample("pipeportal_piped_aws_request_errors_total", **labels)
    with pytest.raises(ProviderError, match="ListTagsForResource"):
        provider().sync_tags("arn:aws:ecs:us-east-1:123456789012:service/c/s", {"a": "b"})
    assert sample("pipeportal_piped_aws_request_errors_total", **labels) == before + 1


@pytest.fixture
def remote(tmp_path):
    """A bare repository with one commit on `main`."""
    work = git.Repo.init(tmp_path / "work", initial_branch="main")
    (tmp_path / "work" / "README").write_text("hello\n")
    work.index.add(["README"])
    actor = git.Actor("Test", "test@example.com")
    work.index.commit("first", author=actor, committer=actor)
    bare = tmp_path / "remote.git"
    git.Repo.clone_from(str(tmp_path / "work"), str(bare), bare=True)
    return f"file://{bare}"


def repos(tmp_path, remote: str, branch: str = "main", repo_id: str = "r") -> Repositories:
    return Repositories(
        [{"repo_id": repo_id, "remote": remote, "branch": branch}], tmp_path / "piped", GitAuth(), 30
    )


def test_it_times_the_clone_then_the_fetches_of_a_repository(tmp_path, remote):
    repo = repos(tmp_path, remote, repo_id="timed").get("timed")
    repo.fetch()
    repo.fetch()
    assert (
        sample("pipeportal_piped_git_fetch_duration_seconds_count", repository="timed", operation="clone")
        == 1
    )
    assert (
        sample("pipeportal_piped_git_fetch_duration_seconds_count", repository="timed", operation="fetch")
        == 1
    )
    assert sample("pipeportal_piped_git_fetch_failures_total", repository="timed", operation="clone") == 0
    assert (
        sample("pipeportal_piped_git_fetch_duration_seconds_sum", repository="timed", operation="clone") > 0
    )
    # A restarted piped finds its clone on disk: its first fetch is an incremental one.
    again = repos(tmp_path, remote, repo_id="timed").get("timed")
    again.fetch()
    assert (
        sample("pipeportal_piped_git_fetch_duration_seconds_count", repository="timed", operation="fetch")
        == 2
    )


def test_it_counts_failed_fetches_per_repository(tmp_path, remote):
    missing = repos(tmp_path, f"file://{tmp_path}/nothing.git", repo_id="gone").get("gone")
    with pytest.raises(GitError):
        missing.fetch()
    with pytest.raises(GitError):
        missing.fetch()
    assert sample("pipeportal_piped_git_fetch_failures_total", repository="gone", operation="clone") == 2
    assert (
        sample("pipeportal_piped_git_fetch_duration_seconds_count", repository="gone", operation="clone") == 2
    )
    assert sample("pipeportal_piped_git_last_fetch_success_timestamp_seconds", repository="gone") == 0
    no_branch = repos(tmp_path / "b", remote, branch="release", repo_id="nobranch").get("nobranch")
    with pytest.raises(GitError, match="release"):
        no_branch.fetch()
    assert sample("pipeportal_piped_git_fetch_failures_total", repository="nobranch", operation="clone") == 1


@pytest.mark.parametrize(
    "address, expected",
    [
        ("9102", ("127.0.0.1", 9102)),
        ("127.0.0.1:9102", ("127.0.0.1", 9102)),
        ("0.0.0.0:9102", ("0.0.0.0", 9102)),
        (":9102", ("0.0.0.0", 9102)),
        ("[::1]:9102", ("::1", 9102)),
        ("localhost:0", ("localhost", 0)),
    ],
)
def test_it_reads_the_metrics_address(address, expected):
    assert metrics.parse_address(address) == expected


@pytest.mark.parametrize("address", ["nonsense", "127.0.0.1:", "host:70000", "[::1]", "a:b"])
def test_it_refuses_an_address_that_is_not_host_and_port(address):
    with pytest.raises(metrics.MetricsAddressError, match="expected HOST:PORT"):
        metrics.parse_address(address)


def test_a_server_on_port_zero_serves_the_process_metrics():
    server = metrics.serve("127.0.0.1:0")
    try:
        assert server.port > 0
        text = requests.get(server.url, timeout=5).text
    finally:
        server.stop()
    names = {family.name for family in text_string_to_metric_families(text)}
    assert {"process_resident_memory_bytes", "pipeportal_piped_git_fetch_duration_seconds"} <= names


def run_piped(tmp_path, *args: str, **env: str) -> subprocess.CompletedProcess:
    config = tmp_path / "piped-config.yaml"
    config.write_text(
        textwrap.dedent(
            """\
            apiVersion: pipecd.dev/v1beta1
            kind: Piped
            spec:
              projectID: demo
              pipedID: p1
              pipedKeyData: a2V5
              apiAddress: http://127.0.0.1:9
            """
        )
    )
    environment = {
        "PATH": "/usr/bin:/bin",
        "DATABASE_URL": "mysql://nobody:nothing@127.0.0.1:9/nowhere",
        "PIPED_WORK_DIR": str(tmp_path / "work"),
        **env,
    }
    return subprocess.run(
        [sys.executable, "manage.py", "piped", "--config-file", str(config), "--insecure", *args],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_the_piped_refuses_a_bad_metrics_address_before_it_starts(tmp_path):
    result = run_piped(tmp_path, "--metrics-addr", "metrics.example")
    assert result.returncode == 1
    assert "metrics address 'metrics.example': expected HOST:PORT" in result.stderr
    assert "Traceback" not in result.stderr


def test_the_piped_says_when_its_metrics_port_is_taken(tmp_path):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = run_piped(tmp_path, PIPED_METRICS_ADDR=f"127.0.0.1:{port}", LOG_FORMAT="json")
    assert result.returncode == 1
    # With LOG_FORMAT=json the reason is a JSON line too (an ERROR a log search finds).
    lines = [json.loads(line) for line in result.stderr.splitlines() if line.strip()]
    assert lines[-1]["level"] == "ERROR"
    assert f"cannot serve metrics on 127.0.0.1:{port}" in lines[-1]["message"]
    assert "in use" in lines[-1]["message"].lower()
