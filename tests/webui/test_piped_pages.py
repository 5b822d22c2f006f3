"""The piped pages: online or not (and why), each reported repository's health, platform providers, the
masked config, the app configs found in Git; the list's one-line repository health."""

import re
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from apps.applications.services import add_application
from apps.pipeds.models import Piped
from apps.pipeds.services import register_piped, set_piped_disabled
from apps.projects.principal import system_principal

from .factories import report_piped, report_repository_status, report_suggestions, suggestion


def piped_page(client, piped) -> str:
    response = client.get(reverse("webui:settings_piped", args=[piped.id]))
    assert response.status_code == 200
    return response.content.decode()


def section(page: str, section_id: str) -> str:
    return re.search(rf'<section class="card" id="{section_id}">(.*?)</section>', page, re.S).group(1)


def test_it_shows_an_online_piped_with_its_version_and_times(world):
    page = piped_page(world.clients["viewer"], world.piped)
    head = re.search(r'<div class="piped-status">(.*?)</div>', page, re.S).group(1)
    assert "tone-success" in head and "ONLINE" in head
    assert "Heartbeat" in head
    assert "<dt>Version</dt><dd>0.1.0</dd>" in page
    assert re.search(r"<dt>Started</dt><dd><time datetime=", page)
    assert re.search(r"<dt>Last heartbeat</dt><dd><time datetime=", page)


def test_it_says_a_piped_stopped_cleanly_when_it_said_so_after_its_last_heartbeat(world):
    now = timezone.now()
    Piped.objects.filter(pk=world.piped.pk).update(
        last_heartbeat_at=now - timedelta(seconds=30), stopped_at=now - timedelta(seconds=20)
    )
    head = re.search(
        r'<div class="piped-status">(.*?)</div>', piped_page(world.clients["viewer"], world.piped), re.S
    )
    assert "OFFLINE" in head.group(1)
    assert "Stopped cleanly" in head.group(1)
    stopped = (now - timedelta(seconds=20)).isoformat()
    assert f'datetime="{stopped}"' in head.group(1)

    # A heartbeat newer than the stop (it was started again): the stop no longer explains anything.
    Piped.objects.filter(pk=world.piped.pk).update(
        last_heartbeat_at=now - timedelta(minutes=10), stopped_at=now - timedelta(minutes=11)
    )
    head = re.search(
        r'<div class="piped-status">(.*?)</div>', piped_page(world.clients["viewer"], world.piped), re.S
    )
    assert "OFFLINE" in head.group(1)
    assert "No heartbeat since" in head.group(1)
    assert "Stopped cleanly" not in head.group(1)


def test_it_says_a_piped_that_never_connected_must_be_started(world):
    fresh, _ = register_piped(system_principal("demo"), world.project, name="fresh")
    page = piped_page(world.clients["viewer"], fresh)
    assert "Never connected: start it with its piped-config.yaml." in page
    assert "Not reported yet: the piped lists its repositories when it starts." in page


def test_it_shows_each_repository_with_its_last_fetch_head_and_error(world):
    now = timezone.now()
    report_repository_status(
        world.piped,
        {
            "manifests": {
                "last_fetch_at": (now - timedelta(seconds=40)).isoformat(),
                "head": "0123456789abcdef" * 2 + "01234567",
                "error": "",
                "failures": 0,
                "next_attempt_at": (now + timedelta(seconds=20)).isoformat(),
            },
            "infra": {
                "last_fetch_at": (now - timedelta(hours=2)).isoformat(),
                "head": "f" * 40,
                "error": "fatal: could not read from remote repository: Permission denied (publickey)",
                "failures": 4,
                "last_error_at": (now - timedelta(seconds=5)).isoformat(),
                "next_attempt_at": (now + timedelta(seconds=280)).isoformat(),
            },
        },
    )
    page = piped_page(world.clients["viewer"], world.piped)
    repos = section(page, "repositories")
    manifests, infra = re.findall(r'<li class="repo repo-(\w+)">(.*?)</li>', repos, re.S)
    assert manifests[0] == "ok"
    assert "git@github.com:example/manifests.git" in manifests[1]
    assert "<dt>Branch</dt><dd>main</dd>" in manifests[1]
    assert '<code title="0123456789abcdef' in manifests[1] and ">0123456<" in manifests[1]
    assert "Fetched" in manifests[1] and "repo-error" not in manifests[1]

    assert infra[0] == "failing"  # four failures in a row: red, not amber
    assert "tone-box-failure" in infra[1] and 'role="alert"' in infra[1]
    assert "4 fetches failed in a row" in infra[1]
    assert "Permission denied (publickey)" in infra[1]
    assert "Next try <time" in infra[1]
    assert (now + timedelta(seconds=280)).isoformat() in infra[1]
    assert "from now" in infra[1]


def test_it_shows_a_first_failed_fetch_in_amber(world):
    report_repository_status(
        world.piped, {"infra": {"error": "connection timed out", "failures": 1, "last_fetch_at": ""}}
    )
    repos = section(piped_page(world.clients["viewer"], world.piped), "repositories")
    infra = re.search(r'<li class="repo repo-retrying">(.*?)</li>', repos, re.S).group(1)
    assert "tone-box-waiting" in infra
    assert "The last fetch failed" in infra
    assert "<dt>Last fetch</dt><dd>never</dd>" in infra


def test_it_lists_platform_providers_and_keeps_the_masked_config_folded(world):
    page = piped_page(world.clients["viewer"], world.piped)
    assert '<strong>ecs-dev</strong> <span class="muted">ECS</span>' in page
    config = section(page, "configuration")
    assert "<details><summary>Show the configuration it started with" in config
    assert "pipedKeyData: &#x27;******&#x27;" in config


def test_it_lists_the_app_configs_found_in_git_with_an_add_link_for_those_who_may_add(world):
    report_suggestions(
        world.piped,
        [
            suggestion("manifests", "services/cart", "cart"),
            suggestion("manifests", "apps/hello", "hello"),  # registered already: not offered
            suggestion("infra", ".", "root-app", labels={"tier": "edge"}),
        ],
    )
    editor_view = section(piped_page(world.clients["editor"], world.piped), "suggestions")
    assert "(2)" in editor_view
    assert "manifests/services/cart/app.pipecd.yaml" in editor_view
    assert "infra/app.pipecd.yaml" in editor_view
    assert "hello" not in editor_view
    assert '<span class="label">tier:edge</span>' in editor_view
    add = reverse("webui:application_add")
    links = re.findall(rf'href="({add}\?[^"]+)"', editor_view)
    assert len(links) == 2
    assert f"suggestion={world.piped.id}%3Amanifests%3Aservices/cart/app.pipecd.yaml" in links[0]
    assert "fill=suggestion" in links[0]

    viewer_view = section(piped_page(world.clients["viewer"], world.piped), "suggestions")
    assert "services/cart" in viewer_view
    assert add not in viewer_view


def test_the_piped_list_sums_up_each_pipeds_repositories(world):
    now = timezone.now().isoformat()
    report_repository_status(
        world.piped,
        {"manifests": {"last_fetch_at": now, "error": ""}, "infra": {"error": "boom", "failures": 5}},
    )
    report_repository_status(
        world.rotating_piped,
        {"manifests": {"last_fetch_at": now, "error": ""}, "infra": {"last_fetch_at": now, "error": ""}},
    )
    register_piped(system_principal("demo"), world.project, name="quiet")
    body = world.clients["viewer"].get(reverse("webui:settings_pipeds")).content.decode()
    rows = dict(re.findall(r'href="/settings/pipeds/[^"]+/">([^<]+)</a>(.*?)</tr>', body, re.S))
    broken = rows[world.piped.name]
    assert "tone-failure" in broken and "1 of 2 failing" in broken
    assert 'title="Failing: infra"' in broken and "<code>infra</code>" in broken
    healthy = rows["piped-rotating"]
    assert "tone-success" in healthy and "2 fetched" in healthy
    assert "none reported" in rows["quiet"] and "never connected" in rows["quiet"]


@pytest.mark.parametrize("persona", ["admin", "viewer"])
def test_the_piped_pages_cost_the_same_for_2_and_40_repositories_and_suggestions(
    world, persona, django_assert_max_num_queries
):
    def grow(count: int) -> None:
        repos = [
            {"repo_id": f"repo-{i}", "remote": f"git@example.com:o/r{i}.git", "branch": "main"}
            for i in range(count)
        ]
        status = {f"repo-{i}": {"error": "down", "failures": i} for i in range(count)}
        for piped in (world.piped, world.rotating_piped):
            Piped.objects.filter(pk=piped.pk).update(repositories=repos, repository_status=status)
            report_suggestions(piped, [suggestion(f"repo-{i}", f"svc/{i}", f"svc-{i}") for i in range(count)])

    client = world.clients[persona]
    detail = reverse("webui:settings_piped", args=[world.piped.id])
    listing = reverse("webui:settings_pipeds")
    grow(2)
    with CaptureQueriesContext(connection) as small_detail:
        assert client.get(detail).status_code == 200
    with CaptureQueriesContext(connection) as small_list:
        assert client.get(listing).status_code == 200
    grow(40)
    with django_assert_max_num_queries(len(small_detail)):
        body = client.get(detail).content.decode()
    assert body.count('<li class="repo repo-') == 40
    assert "svc/39/app.pipecd.yaml" in body
    with django_assert_max_num_queries(len(small_list)):
        assert "40 of 40 failing" in client.get(listing).content.decode()


def test_it_hides_a_suggestion_once_its_application_exists(world):
    report_suggestions(world.piped, [suggestion("infra", "svc/new", "new-svc")])
    assert "svc/new" in section(piped_page(world.clients["editor"], world.piped), "suggestions")
    add_application(
        system_principal("demo"),
        world.project,
        name="new-svc",
        piped_id=world.piped.id,
        platform_provider="ecs-dev",
        repo_id="infra",
        path="./svc/new/",
    )
    after = section(piped_page(world.clients["editor"], world.piped), "suggestions")
    assert "svc/new" not in after
    assert "Every app config in this piped's repositories is registered." in after


def test_report_piped_leaves_the_status_of_manifests_fetched(world):
    """The factory's piped has fetched `manifests` and not yet `infra`: the page says so."""
    report_piped(world.piped)
    repos = section(piped_page(world.clients["viewer"], world.piped), "repositories")
    assert re.findall(r'<li class="repo repo-(\w+)">', repos) == ["ok", "waiting"]
    assert "Not fetched yet" in repos


def test_a_disabled_pipeds_suggestions_are_not_offered(world):
    report_suggestions(world.rotating_piped, [suggestion("infra", "svc/x", "x")])
    set_piped_disabled(system_principal("demo"), world.rotating_piped, True)
    found = section(piped_page(world.clients["admin"], world.rotating_piped), "suggestions")
    assert "not offered while the piped is disabled" in found
    assert "svc/x" not in world.clients["editor"].get(reverse("webui:application_add")).content.decode()
