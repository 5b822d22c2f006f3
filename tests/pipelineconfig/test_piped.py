"""Piped configs: helpers (key, repositories, providers, notifications), mask(), `${VAR}`, unknown keys."""

import base64
import textwrap
from datetime import timedelta

import pytest

from apps.pipelineconfig import MASK, ConfigError, load_app_config, load_file, load_piped_config

KEY_DATA = base64.b64encode(b"piped-key-123").decode()


def piped(body: str = "", *, key: str = f"pipedKeyData: {KEY_DATA}") -> str:
    return (
        "apiVersion: pipecd.dev/v1beta1\nkind: Piped\nspec:\n"
        "  projectID: demo\n  pipedID: piped-1\n  apiAddress: cp.example.test:443\n"
        f"  {key}\n" + textwrap.indent(textwrap.dedent(body), "  ")
    )


def load(text: str, **kwargs):
    return load_piped_config(text=text, **kwargs)


def errors_of(text: str, **kwargs):
    with pytest.raises(ConfigError) as caught:
        load(text, **kwargs)
    return caught.value.errors


def test_the_key_comes_from_pipedkeyfile_trimmed(tmp_path):
    key_file = tmp_path / "key"
    key_file.write_text("file-key\n")
    spec = load(piped(key=f"pipedKeyFile: {key_file}")).spec
    assert spec.piped_key() == "file-key"
    assert spec.mask()["pipedKeyFile"] == MASK


def test_a_missing_key_file_is_a_warning_at_load_and_an_oserror_when_read(tmp_path):
    loaded = load(piped(key=f"pipedKeyFile: {tmp_path}/nope"))
    [warning] = loaded.warnings
    assert (warning.path, warning.severity, warning.line) == ("spec.pipedKeyFile", "warning", 7)
    with pytest.raises(OSError, match="cannot read pipedKeyFile"):
        loaded.spec.piped_key()


def test_cloudproviders_is_read_as_platformproviders():
    spec = load(
        piped(
            """\
            platformProviders:
              - name: ecs-prod
                type: ECS
                config: {region: ap-northeast-1, profile: prod}
            cloudProviders:
              - name: ecs-old
                type: ECS
                config: {region: us-east-1, roleARN: arn:aws:iam::1:role/piped}
            """
        )
    ).spec
    assert [p.name for p in spec.platform_providers] == ["ecs-prod", "ecs-old"]
    assert spec.cloud_providers == spec.platform_providers
    assert spec.platform_provider("ecs-old").config.role_arn == "arn:aws:iam::1:role/piped"
    masked = spec.mask()
    assert "cloudProviders" not in masked
    assert masked["platformProviders"][1]["config"]["roleARN"] == MASK
    assert masked["platformProviders"][0]["config"]["profile"] == "prod"


@pytest.mark.parametrize(
    ("body", "path", "message"),
    [
        (
            "platformProviders:\n  - name: a\n    type: EKS\n",
            "spec.platformProviders[0].type",
            "unknown platform provider type 'EKS' (did you mean 'ECS'?)",
        ),
        (
            "platformProviders:\n  - name: a\n    type: ECS\n    config: {profile: x}\n",
            "spec.platformProviders[0].config.region",
            "region is required",
        ),
        (
            "platformProviders:\n  - {name: a, type: ECS, config: {region: r}}\n  - {name: a, type: ECS, config: {region: r}}\n",
            "spec.platformProviders[1].name",
            "platform provider name 'a' is used twice",
        ),
        (
            "git:\n  sshKeyFile: /k\n  sshKeyData: " + KEY_DATA + "\n",
            "spec.git.sshKeyData",
            "give only one of sshKeyFile and sshKeyData",
        ),
        (
            "notifications:\n  receivers:\n    - name: s\n      slack: {hookURL: 'https://h', channelID: C1}\n",
            "spec.notifications.receivers[0].slack.hookURL",
            "use either hookURL or channelID with an OAuth token, not both",
        ),
        (
            "notifications:\n  receivers:\n    - name: w\n      webhook: {url: 'https://w', signingSecret: a, signingSecretFile: /b}\n",
            "spec.notifications.receivers[0].webhook.signingSecretFile",
            "give only one of signingSecret and signingSecretFile",
        ),
        (
            "notifications:\n  routes:\n    - {name: r, receiver: w, events: [DEPLOYMENT_SUCCEDED]}\n  receivers:\n    - {name: w, webhook: {url: 'https://w'}}\n",
            "spec.notifications.routes[0].events",
            "unknown event 'DEPLOYMENT_SUCCEDED' (did you mean 'DEPLOYMENT_SUCCEEDED'?)",
        ),
        ("syncInterval: 1 minute\n", "spec.syncInterval", "expected a duration such as 150s"),
    ],
)
def test_it_refuses_inconsistent_piped_configs(body, path, message):
    [problem] = errors_of(piped(body))
    assert problem.path == path
    assert message in problem.message


def test_unknown_keys_in_a_piped_config_are_warnings_and_the_rest_loads():
    loaded = load(piped("syncIntervall: 5m\ngit:\n  username: ci\n  hostname: github.com\n"))
    assert [(w.path, w.line, w.severity) for w in loaded.warnings] == [
        ("spec.syncIntervall", 8, "warning"),
        ("spec.git.hostname", 11, "warning"),
    ]
    assert loaded.warnings[0].message == "unknown key 'syncIntervall' (did you mean 'syncInterval'?); ignored"
    assert loaded.spec.git.username == "ci"
    assert loaded.spec.sync_interval == timedelta(minutes=1)


def test_strict_loading_turns_the_warnings_into_errors(tmp_path):
    path = tmp_path / "piped.yaml"
    path.write_text(piped("syncIntervall: 5m\n"))
    assert load_file(path).warnings
    with pytest.raises(ConfigError) as caught:
        load_file(path, strict=True)
    [problem] = caught.value.errors
    assert (problem.path, problem.severity) == ("spec.syncIntervall", "error")


def test_notifications_route_events_to_receivers_and_mask_every_secret(tmp_path):
    secret_file = tmp_path / "signing"
    secret_file.write_text("signing-secret-from-file\n")
    token = base64.b64encode(b"xoxb-token").decode()
    spec = load(
        piped(
            f"""\
            notifications:
              routes:
                - name: acceptance_test_webhook
                  events: [DEPLOYMENT_SUCCEEDED]
                  labels: {{app: test-app, env: dev}}
                  receiver: webhook_receiver
                - name: failures
                  groups: [DEPLOYMENT]
                  ignoreEvents: [DEPLOYMENT_SUCCEEDED]
                  ignoreApps: [noisy]
                  receiver: slack_api
              receivers:
                - name: webhook_receiver
                  webhook:
                    url: https://hooks.zapier.test/x
                    signatureValue: static-value
                    signingSecretFile: {secret_file}
                - name: slack_api
                  slack:
                    channelID: C123
                    oauthTokenData: {token}
                    mentionedGroups: ['<!subteam^S1>']
            """
        )
    ).spec
    notifications = spec.notifications
    webhook = notifications.receiver("webhook_receiver").webhook
    assert webhook.signature_key == "PipeCD-Signature"
    assert webhook.load_signing_secret() == "signing-secret-from-file"
    assert notifications.receiver("slack_api").slack.token() == "xoxb-token"
    names = [
        r.name
        for r in notifications.receivers_for(
            "DEPLOYMENT_SUCCEEDED", "test-app", {"app": "test-app", "env": "dev"}
        )
    ]
    assert names == ["webhook_receiver"]
    assert notifications.receivers_for("DEPLOYMENT_SUCCEEDED", "other", {"env": "dev"}) == []
    assert [r.name for r in notifications.receivers_for("DEPLOYMENT_FAILED", "web")] == ["slack_api"]
    assert notifications.receivers_for("DEPLOYMENT_FAILED", "noisy") == []
    assert notifications.receivers_for("PIPED_STARTED") == []
    masked = spec.mask()["notifications"]["receivers"]
    assert masked[0]["webhook"] == {
        "url": MASK,
        "signatureKey": MASK,
        "signatureValue": MASK,
        "signatureValueFile": "",
        "signingSecret": "",
        "signingSecretFile": MASK,
    }
    assert masked[1]["slack"]["oauthTokenData"] == MASK
    assert masked[1]["slack"]["channelID"] == "C123"


def test_mask_hides_secrets_in_blocks_kept_as_given():
    spec = load(
        piped(
            """\
            chartRepositories:
              - {name: private, address: 'https://charts.test', username: u, password: hunter2}
            platformProviders:
              - name: run
                type: CLOUDRUN
                config: {project: p, credentialsFile: /etc/sa.json}
            secretManagement:
              type: GCP_KMS
              config: {keyName: k, decryptServiceAccountFile: /etc/d.json}
            """
        )
    ).spec
    masked = spec.mask()
    assert masked["chartRepositories"][0]["password"] == MASK
    assert masked["chartRepositories"][0]["username"] == "u"
    assert masked["platformProviders"][0]["config"] == {"project": "p", "credentialsFile": MASK}
    assert masked["secretManagement"]["config"]["decryptServiceAccountFile"] == MASK
    assert "hunter2" not in repr(masked)


def test_placeholders_take_defaults_and_escapes():
    text = piped("name: ${PIPED_NAME:-piped-default}\nwebAddress: https://$${NOT_EXPANDED}\n")
    spec = load(text, env={}).spec
    assert spec.name == "piped-default"
    assert spec.web_address == "https://${NOT_EXPANDED}"
    assert load(piped("name: ${PIPED_NAME}\n"), env={"PIPED_NAME": "from-env"}).spec.name == "from-env"
    assert load(piped("name: ${PIPED_NAME}\n"), expand_env=False).spec.name == "${PIPED_NAME}"


def test_a_placeholder_in_a_comment_or_key_is_left_alone():
    spec = load(piped("# set ${NOT_SET} in the task definition\nappSelector:\n  ${KEY}: x\n"), env={}).spec
    assert spec.app_selector == {"${KEY}": "x"}


def test_an_unset_placeholder_reports_only_itself():
    problems = errors_of(
        piped("apiAddress: ${API}\n").replace("  apiAddress: cp.example.test:443\n", ""), env={}
    )
    assert [(p.path, p.message) for p in problems] == [
        ("spec.apiAddress", "environment variable API is not set (placeholder ${API})")
    ]


def test_app_configs_never_expand_placeholders():
    text = "apiVersion: pipecd.dev/v1beta1\nkind: ECSApp\nspec:\n  name: ${APP_NAME}\n"
    assert load_app_config("app.pipecd.yaml", text=text).spec.name == "${APP_NAME}"
