"""Adding an application: the piped's reported repositories and providers, or one of its suggestions (app
configs found in Git); narrowed to the chosen piped with htmx, and the same without JavaScript."""

import re

from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from apps.applications.models import Application
from apps.pipeds.models import Piped
from apps.pipeds.services import register_piped, set_piped_disabled
from apps.projects.principal import system_principal

from .factories import report_piped, report_suggestions, suggestion
from .test_role_matrix import demo_state

ADD = reverse("webui:application_add")
HTMX = {"HTTP_HX_REQUEST": "true"}


def key(piped, repo_id: str, config_path: str) -> str:
    return f"{piped.id}:{repo_id}:{config_path}"


def options(body: str, select_id: str) -> list[str]:
    select = re.search(rf'<select name="\w+"[^>]* id="{select_id}"[^>]*>(.*?)</select>', body, re.S).group(1)
    return re.findall(r'<option value="([^"]*)"', select)


def selected(body: str, select_id: str) -> str:
    select = re.search(rf'<select name="\w+"[^>]* id="{select_id}"[^>]*>(.*?)</select>', body, re.S).group(1)
    found = re.search(r'<option value="([^"]*)"[^>]*selected', select)
    return found.group(1) if found else ""


def value(body: str, input_id: str) -> str:
    found = re.search(rf'<input type="text" name="\w+" value="([^"]*)"[^>]*id="{input_id}"', body)
    return found.group(1) if found else ""


def field_error(body: str, name: str) -> str:
    field = re.search(rf'<div class="field has-error">\s*<label for="id_{name}">.*?</div>', body, re.S)
    assert field, f"no error on {name}"
    return " ".join(re.findall(r'<p class="field-error" role="alert">(.*?)</p>', field.group(0)))


def staging_piped(world):
    """A second piped with its own repository, provider and suggestions."""
    staging, _ = register_piped(system_principal("demo"), world.project, name="staging")
    report_piped(staging)
    Piped.objects.filter(pk=staging.pk).update(
        repositories=[{"repo_id": "stg", "remote": "git@example.com:o/stg.git", "branch": "main"}],
        platform_providers=[{"name": "ecs-stg", "type": "ECS"}],
    )
    return report_suggestions(staging, [suggestion("stg", "svc/cart", "cart-stg")])


def test_it_offers_only_enabled_pipeds_and_narrows_to_the_chosen_one(world):
    set_piped_disabled(system_principal("demo"), world.rotating_piped, True)
    staging = staging_piped(world)
    body = world.clients["editor"].get(ADD).content.decode()
    assert options(body, "id_piped") == ["", str(world.piped.id), str(staging.id)]
    assert options(body, "id_repo_id") == ["", "manifests", "infra", "stg"]  # grouped by piped

    narrowed = world.clients["editor"].get(ADD, {"piped": str(staging.id), "fill": "piped"}, **HTMX)
    body = narrowed.content.decode()
    assert options(body, "id_repo_id") == ["", "stg"]
    assert selected(body, "id_repo_id") == "stg"  # its only repository and provider are picked
    assert options(body, "id_platform_provider") == ["", "ecs-stg"]
    assert selected(body, "id_platform_provider") == "ecs-stg"


def test_it_explains_that_a_piped_without_repositories_must_be_running(world):
    silent, _ = register_piped(system_principal("demo"), world.project, name="silent")
    body = world.clients["editor"].get(ADD, {"piped": str(silent.id)}).content.decode()
    assert "Piped silent has not reported any repository yet." in body
    assert "it must be running" in body
    assert reverse("webui:settings_piped", args=[silent.id]) in body
    assert options(body, "id_repo_id") == [""]

    # Posting a repository anyway is refused on the field, naming the reason; nothing is written.
    before = demo_state()
    response = world.clients["editor"].post(
        ADD,
        {
            "piped": str(silent.id),
            "repo_id": "manifests",
            "path": "svc/a",
            "config_filename": "app.pipecd.yaml",
            "platform_provider": "ecs-dev",
            "kind": "ECS",
            "name": "a",
        },
    )
    assert response.status_code == 400
    body = response.content.decode()
    assert "has not reported any repository yet" in field_error(body, "repo_id")
    assert "has no platform provider named &#x27;ecs-dev&#x27; (it reports: none reported yet)" in (
        field_error(body, "platform_provider")
    )
    assert demo_state() == before


def test_a_disabled_piped_is_refused(world):
    set_piped_disabled(system_principal("demo"), world.rotating_piped, True)
    before = demo_state()
    response = world.clients["editor"].post(
        ADD,
        {
            "piped": str(world.rotating_piped.id),
            "repo_id": "manifests",
            "path": "svc/a",
            "config_filename": "app.pipecd.yaml",
            "platform_provider": "ecs-dev",
            "kind": "ECS",
            "name": "a",
        },
    )
    assert response.status_code == 400
    assert "Select a valid choice" in field_error(response.content.decode(), "piped")
    assert demo_state() == before


def test_a_suggestion_link_fills_in_the_form(world):
    report_suggestions(
        world.piped,
        [suggestion("infra", "services/cart", "cart", labels={"team": "web", "env": "dev"})],
    )
    chosen = key(world.piped, "infra", "services/cart/app.pipecd.yaml")
    body = world.clients["editor"].get(ADD, {"suggestion": chosen, "fill": "suggestion"}).content.decode()
    assert selected(body, "id_piped") == str(world.piped.id)
    assert selected(body, "id_suggestion") == chosen
    assert selected(body, "id_repo_id") == "infra"
    assert value(body, "id_path") == "services/cart"
    assert value(body, "id_config_filename") == "app.pipecd.yaml"
    assert value(body, "id_name") == "cart"
    assert selected(body, "id_platform_provider") == "ecs-dev"
    assert re.search(r'<textarea name="labels"[^>]*>\nenv: dev\nteam: web</textarea>', body)
    assert re.search(r'<textarea name="description"[^>]*>\nThe cart service</textarea>', body)


def test_picking_a_suggestion_replaces_typed_values_but_changing_the_piped_keeps_them(world):
    staging = staging_piped(world)
    report_suggestions(world.piped, [suggestion("infra", "services/cart", "cart")])
    chosen = key(world.piped, "infra", "services/cart/app.pipecd.yaml")
    typed = {"piped": str(world.piped.id), "path": "typed/path", "name": "typed-name"}

    picked = world.clients["editor"].get(ADD, {**typed, "suggestion": chosen, "fill": "suggestion"}, **HTMX)
    body = picked.content.decode()
    assert (value(body, "id_path"), value(body, "id_name")) == ("services/cart", "cart")

    # The person then switches to another piped: what was typed stays, the other piped's suggestion goes.
    switched = world.clients["editor"].get(
        ADD, {**typed, "piped": str(staging.id), "suggestion": chosen, "fill": "piped"}, **HTMX
    )
    body = switched.content.decode()
    assert (value(body, "id_path"), value(body, "id_name")) == ("typed/path", "typed-name")
    assert selected(body, "id_suggestion") == ""
    assert options(body, "id_suggestion") == ["", key(staging, "stg", "svc/cart/app.pipecd.yaml")]


def test_without_javascript_a_chosen_suggestion_fills_the_empty_fields_on_submit(world):
    report_suggestions(world.piped, [suggestion("infra", "services/cart", "cart")])
    chosen = key(world.piped, "infra", "services/cart/app.pipecd.yaml")
    response = world.clients["editor"].post(
        ADD,
        {
            "piped": "",
            "suggestion": chosen,
            "repo_id": "",
            "path": "",
            "config_filename": "",
            "platform_provider": "ecs-dev",
            "kind": "ECS",
            "name": "",
            "labels": "owner: dana",  # typed: wins over the suggestion's labels
            "description": "",
        },
    )
    assert response.status_code == 302, response.content.decode()[:3000]
    app = Application.objects.get(project_id="demo", name="cart")
    assert (app.piped_id, app.repo_id, app.path, app.config_filename) == (
        world.piped.id,
        "infra",
        "services/cart",
        "app.pipecd.yaml",
    )
    assert (app.labels, app.description) == ({"owner": "dana"}, "The cart service")
    # Added: the suggestion is no longer offered, neither in the form nor on the piped's page.
    body = world.clients["editor"].get(ADD).content.decode()
    assert chosen not in body
    assert (
        world.clients["editor"].get(reverse("webui:applications")).content.decode().count("unregistered app")
        == 0
    )


def test_a_suggestion_of_another_piped_is_refused_on_its_field(world):
    staging = staging_piped(world)
    theirs = key(staging, "stg", "svc/cart/app.pipecd.yaml")
    before = demo_state()
    response = world.clients["editor"].post(
        ADD,
        {
            "piped": str(world.piped.id),
            "suggestion": theirs,
            "repo_id": "manifests",
            "path": "svc/cart",
            "config_filename": "app.pipecd.yaml",
            "platform_provider": "ecs-dev",
            "kind": "ECS",
            "name": "cart",
        },
    )
    assert response.status_code == 400
    message = field_error(response.content.decode(), "suggestion")
    assert f"This suggestion was found by piped staging, not by {world.piped.name}" in message
    assert demo_state() == before


def test_a_suggestion_no_longer_offered_is_refused(world):
    gone = key(world.piped, "infra", "old/app.pipecd.yaml")
    before = demo_state()
    response = world.clients["editor"].post(
        ADD,
        {
            "piped": str(world.piped.id),
            "suggestion": gone,
            "repo_id": "infra",
            "path": "old",
            "config_filename": "app.pipecd.yaml",
            "platform_provider": "ecs-dev",
            "kind": "ECS",
            "name": "old",
        },
    )
    assert response.status_code == 400
    assert "This suggestion is not offered any more" in field_error(response.content.decode(), "suggestion")
    assert demo_state() == before
    # A stale link says so instead of failing.
    page = world.clients["editor"].get(ADD, {"suggestion": gone, "fill": "suggestion"})
    assert page.status_code == 200
    assert "That suggestion is not offered any more" in page.content.decode()


def test_the_applications_list_tells_those_who_may_add_about_suggestions(world):
    report_suggestions(
        world.piped,
        [
            suggestion("infra", "a", "a"),
            suggestion("infra", "b", "b"),
            suggestion("manifests", "apps/hello", "x"),
        ],
    )
    staging_piped(world)
    note = re.compile(r'<p class="suggestions-note".*?</p>', re.S)
    editor = note.search(world.clients["editor"].get(reverse("webui:applications")).content.decode())
    assert "3 unregistered apps found in Git" in editor.group(0)  # hello is registered: not counted
    assert f'href="{ADD}#id_suggestion">add</a>' in editor.group(0)
    assert note.search(world.clients["viewer"].get(reverse("webui:applications")).content.decode()) is None


def test_the_form_and_the_list_cost_the_same_for_2_and_60_suggestions(world, django_assert_max_num_queries):
    def found(count: int) -> None:
        for piped in (world.piped, world.rotating_piped):
            report_suggestions(piped, [suggestion("infra", f"svc/{i}", f"svc-{i}") for i in range(count)])

    client = world.clients["editor"]
    applications = reverse("webui:applications")
    found(2)
    with CaptureQueriesContext(connection) as form_small:
        client.get(ADD)
    with CaptureQueriesContext(connection) as list_small:
        client.get(applications)
    found(60)
    with django_assert_max_num_queries(len(form_small)):
        body = client.get(ADD).content.decode()
    assert len(options(body, "id_suggestion")) == 121
    with django_assert_max_num_queries(len(list_small)):
        assert "120 unregistered apps" in client.get(applications).content.decode()


def test_an_empty_config_file_name_means_the_default_unless_a_suggestion_names_another(world):
    report_suggestions(
        world.piped, [suggestion("infra", "jobs/nightly", "nightly", config_filename="job.pipecd.yaml")]
    )
    form = {
        "piped": str(world.piped.id),
        "repo_id": "infra",
        "path": "svc/plain",
        "config_filename": "",
        "platform_provider": "ecs-dev",
        "kind": "ECS",
        "name": "plain",
    }
    assert world.clients["editor"].post(ADD, form).status_code == 302
    assert Application.objects.get(name="plain").config_filename == "app.pipecd.yaml"

    chosen = key(world.piped, "infra", "jobs/nightly/job.pipecd.yaml")
    blank = {**form, "suggestion": chosen, "repo_id": "", "path": "", "name": ""}
    assert world.clients["editor"].post(ADD, blank).status_code == 302
    assert Application.objects.get(name="nightly").config_filename == "job.pipecd.yaml"


def test_a_refused_suggestion_is_the_only_error_named_when_the_rest_was_left_to_it(world):
    staging = staging_piped(world)
    before = demo_state()
    response = world.clients["editor"].post(
        ADD,
        {
            "piped": str(world.piped.id),
            "suggestion": key(staging, "stg", "svc/cart/app.pipecd.yaml"),
            "repo_id": "",
            "path": "",
            "config_filename": "",
            "platform_provider": "",
            "kind": "ECS",
            "name": "",
        },
    )
    assert response.status_code == 400
    body = response.content.decode()
    assert "found by piped staging" in field_error(body, "suggestion")
    assert body.count('class="field-error"') == 1
    assert "This field is required" not in body
    assert demo_state() == before
