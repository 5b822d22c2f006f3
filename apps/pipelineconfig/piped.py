"""The piped config (`kind: Piped`): PipeCD's documented schema, helpers to reach its parts, and `mask()`.

Blocks for platforms PipePortal does not run (KUBERNETES, TERRAFORM, Helm chart repositories, …) are read
and kept as given; using them is refused where they would be used.
"""

from __future__ import annotations

import base64
import binascii
from datetime import timedelta
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from .constants import NOTIFICATION_EVENT_GROUPS, NOTIFICATION_EVENTS, NOTIFICATION_GROUPS
from .types import MASK, Duration, Model, fail, mask_url_credentials, suggest, tagged_union, unknown_member


def secret(default: Any = "", **kwargs: Any) -> Any:
    """A field whose value `mask()` hides."""
    return Field(default, json_schema_extra={"secret": True}, **kwargs)


def _b64decode(value: str) -> bytes:
    return base64.b64decode("".join(value.split()), validate=True)


def _check_b64(value: str, what: str) -> str:
    if value:
        try:
            _b64decode(value)
        except (binascii.Error, ValueError):
            raise fail(f"{what} must be base64 (as `base64 -w0 FILE` prints it)") from None
    return value


def _read_text(path: str, what: str) -> str:
    try:
        return Path(path).read_text()
    except OSError as exc:
        raise OSError(f"cannot read {what} {path}: {exc.strerror}") from exc


# --- Git ------------------------------------------------------------------------------------------------


class GitPasswordAuth(Model):
    user_name: str = secret()
    password: str = secret()


class GitPersonalAccessToken(Model):
    user_name: str = secret()
    user_token: str = secret()


class PipedGit(Model):
    username: str = ""
    email: str = ""
    ssh_config_file_path: str = secret()
    host: str = ""
    host_name: str = ""
    ssh_key_file: str = secret()
    ssh_key_data: str = secret()
    password_auth: GitPasswordAuth = Field(default_factory=GitPasswordAuth)
    personal_access_token: GitPersonalAccessToken = Field(default_factory=GitPersonalAccessToken)

    @field_validator("ssh_key_data")
    @classmethod
    def _b64(cls, value: str) -> str:
        return _check_b64(value, "sshKeyData")

    @model_validator(mode="after")
    def _one_way_in(self) -> PipedGit:
        if self.ssh_key_data and self.ssh_key_file:
            raise fail("give only one of sshKeyFile and sshKeyData", at="sshKeyData")
        uses_password = bool(self.password_auth.user_name or self.password_auth.password)
        if uses_password and (self.ssh_key_data or self.ssh_key_file):
            raise fail("use either an SSH key or passwordAuth, not both", at="passwordAuth")
        if uses_password and not (self.password_auth.user_name and self.password_auth.password):
            raise fail("passwordAuth needs both userName and password", at="passwordAuth")
        return self

    @property
    def password(self) -> str:
        return self.password_auth.password

    def ssh_key(self) -> bytes | None:
        """The private SSH key (decoded from sshKeyData or read from sshKeyFile), or None."""
        if self.ssh_key_data:
            return _b64decode(self.ssh_key_data)
        if self.ssh_key_file:
            return _read_text(self.ssh_key_file, "sshKeyFile").encode()
        return None


class PipedRepository(Model):
    repo_id: str
    remote: str
    branch: str


class HelmChartRepository(Model):
    type: Literal["HTTP", "GIT"] = "HTTP"
    name: str = ""
    address: str = ""
    username: str = ""
    password: str = secret()
    insecure: bool = False
    git_remote: str = ""
    ssh_key_file: str = secret()


class HelmChartRegistry(Model):
    type: Literal["OCI"] = "OCI"
    address: str
    username: str = ""
    password: str = secret()


# --- Platform providers ---------------------------------------------------------------------------------


class ECSProviderConfig(Model):
    region: str
    profile: str = ""
    credentials_file: str = secret()
    role_arn: str = secret(alias="roleARN")
    token_file: str = secret()

    @field_validator("region")
    @classmethod
    def _required(cls, value: str) -> str:
        if not value:
            raise fail("region is required for an ECS platform provider")
        return value


class PlatformProvider(Model):
    name: str
    type: str
    labels: dict[str, str] = Field(default_factory=dict)
    config: Any = None


class ECSPlatformProvider(PlatformProvider):
    type: Literal["ECS"] = "ECS"
    config: ECSProviderConfig


class OtherPlatformProvider(PlatformProvider):
    """KUBERNETES, TERRAFORM, CLOUDRUN, LAMBDA: kept as given; PipePortal deploys to ECS only."""

    config: dict[str, Any] = Field(default_factory=dict, json_schema_extra={"secret_keys": True})


PLATFORM_TYPES = ("ECS", "KUBERNETES", "TERRAFORM", "CLOUDRUN", "LAMBDA")
PlatformProviderItem = tagged_union(
    "type",
    {"ECS": ECSPlatformProvider, **{t: OtherPlatformProvider for t in PLATFORM_TYPES if t != "ECS"}},
    unknown_member("type", "platform provider type", PLATFORM_TYPES),
)

# --- Analysis providers ---------------------------------------------------------------------------------


class PrometheusConfig(Model):
    address: str
    username_file: str = ""
    password_file: str = secret()


class DatadogConfig(Model):
    address: str = ""
    api_key_file: str = secret(alias="apiKeyFile")
    application_key_file: str = secret()
    api_key_data: str = secret(alias="apiKeyData")
    application_key_data: str = secret()

    @model_validator(mode="after")
    def _keys(self) -> DatadogConfig:
        for file_key, data_key, name in (
            ("api_key_file", "api_key_data", "apiKey"),
            ("application_key_file", "application_key_data", "applicationKey"),
        ):
            file_value, data_value = getattr(self, file_key), getattr(self, data_key)
            if not file_value and not data_value:
                raise fail(f"give {name}File or {name}Data", at=f"{name}File")
            if file_value and data_value:
                raise fail(f"give only one of {name}File and {name}Data", at=f"{name}Data")
        return self


class StackdriverConfig(Model):
    service_account_file: str = secret()


class CloudWatchConfig(Model):
    """PipePortal's own: CloudWatch metrics for ANALYSIS (credentials as for the ECS provider)."""

    region: str
    profile: str = ""
    credentials_file: str = secret()
    role_arn: str = secret(alias="roleARN")
    token_file: str = secret()


class AnalysisProvider(Model):
    name: str
    type: str
    config: Any = None


def _analysis_provider(type_name: str, config: type[Model]) -> type[AnalysisProvider]:
    return type(
        f"{type_name.title()}AnalysisProvider",
        (AnalysisProvider,),
        {"__module__": __name__, "__annotations__": {"type": Literal[type_name], "config": config}},
    )


ANALYSIS_TYPES = {
    "PROMETHEUS": PrometheusConfig,
    "DATADOG": DatadogConfig,
    "STACKDRIVER": StackdriverConfig,
    "CLOUDWATCH": CloudWatchConfig,
}
AnalysisProviderItem = tagged_union(
    "type",
    {name: _analysis_provider(name, cfg) for name, cfg in ANALYSIS_TYPES.items()},
    unknown_member("type", "analysis provider type", ANALYSIS_TYPES),
)

# --- Notifications --------------------------------------------------------------------------------------


def _known(values: list[str], allowed: tuple[str, ...], what: str) -> list[str]:
    for value in values:
        if value not in allowed:
            raise fail(
                f"unknown {what} {value!r}{suggest(value, allowed)}; expected one of {', '.join(allowed)}"
            )
    return values


class NotificationRoute(Model):
    name: str
    receiver: str
    events: list[str] = Field(default_factory=list)
    ignore_events: list[str] = Field(default_factory=list)
    groups: list[str] = Field(default_factory=list)
    ignore_groups: list[str] = Field(default_factory=list)
    apps: list[str] = Field(default_factory=list)
    ignore_apps: list[str] = Field(default_factory=list)
    labels: dict[str, str] = Field(default_factory=dict)
    ignore_labels: dict[str, str] = Field(default_factory=dict)

    @field_validator("events", "ignore_events")
    @classmethod
    def _events(cls, value: list[str]) -> list[str]:
        return _known(value, NOTIFICATION_EVENTS, "event")

    @field_validator("groups", "ignore_groups")
    @classmethod
    def _groups(cls, value: list[str]) -> list[str]:
        return _known(value, NOTIFICATION_GROUPS, "event group")

    def matches(self, event: str, app: str = "", labels: dict[str, str] | None = None) -> bool:
        """Whether an event about `app` (with `labels`) goes to this route's receiver.

        PipeCD's rules: the ignore* lists win over everything; `apps` and `labels` only filter events about
        an application (a PIPED_* event passes them). Unlike PipeCD, an application without the route's
        labels never matches them (PipeCD lets an application with no labels at all through).
        """
        labels = labels or {}
        group = NOTIFICATION_EVENT_GROUPS.get(event, "")
        if event in self.ignore_events or (group and group in self.ignore_groups):
            return False
        if app and app in self.ignore_apps:
            return False
        if any(labels.get(k) == v for k, v in self.ignore_labels.items()):
            return False
        if self.events and event not in self.events:
            return False
        if self.groups and group not in self.groups:
            return False
        if not app:
            return True
        if self.apps and app not in self.apps:
            return False
        return all(labels.get(k) == v for k, v in self.labels.items())


class SlackReceiver(Model):
    hook_url: str = secret(alias="hookURL")
    oauth_token: str = secret()  # deprecated by PipeCD in favour of oauthTokenData
    oauth_token_data: str = secret()
    oauth_token_file: str = secret()
    channel_id: str = Field("", alias="channelID")
    mentioned_accounts: list[str] = Field(default_factory=list)
    mentioned_groups: list[str] = Field(default_factory=list)

    @field_validator("mentioned_accounts")
    @classmethod
    def _strip_at(cls, value: list[str]) -> list[str]:
        return [account.removeprefix("@") for account in value]

    @model_validator(mode="after")
    def _one_way_out(self) -> SlackReceiver:
        tokens = [t for t in (self.oauth_token, self.oauth_token_data, self.oauth_token_file) if t]
        if self.hook_url and (tokens or self.channel_id):
            raise fail("use either hookURL or channelID with an OAuth token, not both", at="hookURL")
        if self.hook_url:
            return self
        if not self.channel_id or not tokens:
            raise fail("give hookURL, or channelID with oauthToken, oauthTokenData or oauthTokenFile")
        if len(tokens) > 1:
            raise fail("give only one of oauthToken, oauthTokenData and oauthTokenFile")
        return self

    def token(self) -> str:
        """The Slack API token (oauthTokenData is base64), or "" when a hook URL is used."""
        if self.oauth_token:
            return self.oauth_token
        if self.oauth_token_data:
            try:
                return _b64decode(self.oauth_token_data).decode().strip()
            except (binascii.Error, ValueError, UnicodeDecodeError):
                return self.oauth_token_data.strip()
        if self.oauth_token_file:
            return _read_text(self.oauth_token_file, "oauthTokenFile").strip()
        return ""


class WebhookReceiver(Model):
    url: str = secret()
    signature_key: str = secret("PipeCD-Signature")
    signature_value: str = secret()
    signature_value_file: str = secret()
    # PipePortal's HMAC-SHA256 body signature (see DESIGN.md); beside PipeCD's static header above.
    signing_secret: str = secret()
    signing_secret_file: str = secret()

    @field_validator("url")
    @classmethod
    def _required(cls, value: str) -> str:
        if not value:
            raise fail("a webhook receiver needs a url")
        return value

    @model_validator(mode="after")
    def _exclusive(self) -> WebhookReceiver:
        if self.signature_value and self.signature_value_file:
            raise fail("give only one of signatureValue and signatureValueFile", at="signatureValueFile")
        if self.signing_secret and self.signing_secret_file:
            raise fail("give only one of signingSecret and signingSecretFile", at="signingSecretFile")
        return self

    def load_signature_value(self) -> str:
        if self.signature_value:
            return self.signature_value
        if self.signature_value_file:
            return _read_text(self.signature_value_file, "signatureValueFile").removesuffix("\n")
        return ""

    def load_signing_secret(self) -> str:
        if self.signing_secret:
            return self.signing_secret
        if self.signing_secret_file:
            return _read_text(self.signing_secret_file, "signingSecretFile").strip()
        return ""


class NotificationReceiver(Model):
    name: str
    slack: SlackReceiver | None = None
    webhook: WebhookReceiver | None = None

    @model_validator(mode="after")
    def _one_channel(self) -> NotificationReceiver:
        if self.slack is None and self.webhook is None:
            raise fail("a receiver needs slack: or webhook:")
        if self.slack is not None and self.webhook is not None:
            raise fail("a receiver takes only one of slack: and webhook:", at="webhook")
        return self


class Notifications(Model):
    routes: list[NotificationRoute] = Field(default_factory=list)
    receivers: list[NotificationReceiver] = Field(default_factory=list)

    @model_validator(mode="after")
    def _routes_reach_receivers(self) -> Notifications:
        names = [r.name for r in self.receivers]
        for index, route in enumerate(self.routes):
            if route.receiver not in names:
                raise fail(
                    f"route {route.name!r} sends to receiver {route.receiver!r}, which is not among the "
                    f"receivers{suggest(route.receiver, names)}",
                    at=("routes", index, "receiver"),
                )
        return self

    def receiver(self, name: str) -> NotificationReceiver | None:
        return next((r for r in self.receivers if r.name == name), None)

    def receivers_for(self, event: str, app: str = "", labels: dict[str, str] | None = None) -> list:
        """The receivers an event reaches through the routes, each once."""
        out: dict[str, NotificationReceiver] = {}
        for route in self.routes:
            receiver = self.receiver(route.receiver)
            if receiver is not None and route.matches(event, app, labels):
                out.setdefault(receiver.name, receiver)
        return list(out.values())


# --- Secret management, event watcher, the rest ---------------------------------------------------------


class KeyPairConfig(Model):
    private_key_file: str = secret()
    private_key_data: str = secret()
    public_key_file: str = ""
    public_key_data: str = ""

    @model_validator(mode="after")
    def _one_each(self) -> KeyPairConfig:
        for name in ("privateKey", "publicKey"):
            snake = "private_key" if name == "privateKey" else "public_key"
            file_value, data_value = getattr(self, f"{snake}_file"), getattr(self, f"{snake}_data")
            if not file_value and not data_value:
                raise fail(f"give {name}File or {name}Data", at=f"{name}File")
            if file_value and data_value:
                raise fail(f"give only one of {name}File and {name}Data", at=f"{name}Data")
        return self


class SecretManagement(Model):
    type: str
    config: Any = None


class KeyPairSecretManagement(SecretManagement):
    type: Literal["KEY_PAIR"] = "KEY_PAIR"
    config: KeyPairConfig


class OtherSecretManagement(SecretManagement):
    config: dict[str, Any] = Field(default_factory=dict, json_schema_extra={"secret_keys": True})


SECRET_MANAGEMENT_TYPES = ("KEY_PAIR", "GCP_KMS", "AWS_KMS")
SecretManagementItem = tagged_union(
    "type",
    {"KEY_PAIR": KeyPairSecretManagement, "GCP_KMS": OtherSecretManagement, "AWS_KMS": OtherSecretManagement},
    unknown_member("type", "secret management type", SECRET_MANAGEMENT_TYPES),
)


class EventWatcherGitRepo(Model):
    repo_id: str
    commit_message: str = ""
    includes: list[str] = Field(default_factory=list)
    excludes: list[str] = Field(default_factory=list)


class PipedEventWatcher(Model):
    check_interval: Duration | None = None
    git_repos: list[EventWatcherGitRepo] = Field(default_factory=list)

    @field_validator("git_repos")
    @classmethod
    def _unique(cls, value: list[EventWatcherGitRepo]) -> list[EventWatcherGitRepo]:
        seen: set[str] = set()
        for repo in value:
            if repo.repo_id in seen:
                raise fail(f"repoId {repo.repo_id!r} is listed twice")
            seen.add(repo.repo_id)
        return value


class PlanPreview(Model):
    worker_num: int = 3
    command_queue_buffer_size: int = 10
    command_check_interval: Duration = timedelta(seconds=5)
    command_handle_timeout: Duration = timedelta(minutes=5)


# --- The spec -------------------------------------------------------------------------------------------


class PipedSpec(Model):
    project_id: str = Field(alias="projectID")
    piped_id: str = Field(alias="pipedID")
    piped_key_file: str = secret()
    piped_key_data: str = secret()
    name: str = ""
    api_address: str
    web_address: str = ""
    sync_interval: Duration = timedelta(minutes=1)
    app_config_sync_interval: Duration = timedelta(minutes=1)
    git: PipedGit = Field(default_factory=PipedGit)
    repositories: list[PipedRepository] = Field(default_factory=list)
    chart_repositories: list[HelmChartRepository] = Field(default_factory=list)
    chart_registries: list[HelmChartRegistry] = Field(default_factory=list)
    # `cloudProviders` is PipeCD's older name; both lists are read and joined into platform_providers.
    platform_providers: list[PlatformProviderItem] = Field(default_factory=list)  # type: ignore[valid-type]
    cloud_providers_given: list[PlatformProviderItem] = Field(  # type: ignore[valid-type]
        default_factory=list, alias="cloudProviders", exclude=True
    )
    analysis_providers: list[AnalysisProviderItem] = Field(default_factory=list)  # type: ignore[valid-type]
    notifications: Notifications = Field(default_factory=Notifications)
    secret_management: SecretManagementItem | None = None  # type: ignore[valid-type]
    event_watcher: PipedEventWatcher = Field(default_factory=PipedEventWatcher)
    app_selector: dict[str, str] = Field(default_factory=dict)
    plan_preview: PlanPreview | None = None

    @field_validator("project_id", "piped_id", "api_address")
    @classmethod
    def _not_empty(cls, value: str, info: Any) -> str:
        if not value:
            raise fail(f"{info.field_name} must not be empty")
        return value

    @field_validator("piped_key_data")
    @classmethod
    def _b64(cls, value: str) -> str:
        return _check_b64(value, "pipedKeyData")

    @model_validator(mode="after")
    def _key_and_providers(self) -> PipedSpec:
        if self.piped_key_data and self.piped_key_file:
            raise fail("give only one of pipedKeyData and pipedKeyFile, not both", at="pipedKeyFile")
        if not self.piped_key_data and not self.piped_key_file:
            raise fail("give pipedKeyData (the key, base64) or pipedKeyFile (a file holding the key)")
        if self.cloud_providers_given:
            self.platform_providers = [*self.platform_providers, *self.cloud_providers_given]
            self.cloud_providers_given = []
        names: set[str] = set()
        for index, provider in enumerate(self.platform_providers):
            if provider.name in names:
                raise fail(
                    f"platform provider name {provider.name!r} is used twice",
                    at=("platformProviders", index, "name"),
                )
            names.add(provider.name)
        ids: set[str] = set()
        for index, repo in enumerate(self.repositories):
            if repo.repo_id in ids:
                raise fail(f"repoId {repo.repo_id!r} is used twice", at=("repositories", index, "repoId"))
            ids.add(repo.repo_id)
        return self

    # --- helpers ---

    def piped_key(self) -> str:
        """The piped key: pipedKeyData decoded from base64, or the contents of pipedKeyFile (trimmed)."""
        if self.piped_key_data:
            return _b64decode(self.piped_key_data).decode().strip()
        return _read_text(self.piped_key_file, "pipedKeyFile").strip()

    def repository(self, repo_id: str) -> PipedRepository | None:
        return next((r for r in self.repositories if r.repo_id == repo_id), None)

    def platform_provider(self, name: str) -> PlatformProvider | None:
        return next((p for p in self.platform_providers if p.name == name), None)

    @property
    def cloud_providers(self) -> list[PlatformProvider]:
        """PipeCD's older name for platform_providers."""
        return list(self.platform_providers)

    def ecs_providers(self) -> list[ECSPlatformProvider]:
        return [p for p in self.platform_providers if p.type == "ECS"]

    def analysis_provider(self, name: str) -> AnalysisProvider | None:
        return next((p for p in self.analysis_providers if p.name == name), None)

    def mask(self) -> dict[str, Any]:
        """The spec as PipeCD's camelCase dict with every secret replaced by `******` (empty ones stay empty).

        Credentials written into URLs (a repository's `remote: https://user:token@host/...`) are masked too.
        """
        return _mask_urls(mask_model(self))

    def referenced_files(self) -> list[tuple[tuple, str]]:
        """(key path below spec, file path) of every file the config points to, for existence warnings."""
        return list(_files(self, ()))


def _files(model: Model, path: tuple) -> Any:
    for name, field in type(model).model_fields.items():
        value = getattr(model, name)
        alias = field.serialization_alias or field.alias or name
        if isinstance(value, Model):
            yield from _files(value, (*path, alias))
        elif isinstance(value, list):
            for index, item in enumerate(value):
                if isinstance(item, Model):
                    yield from _files(item, (*path, alias, index))
        elif isinstance(value, str) and value and alias.endswith("File"):
            yield (*path, alias), value


def _mask_urls(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _mask_urls(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_mask_urls(item) for item in value]
    return mask_url_credentials(value) if isinstance(value, str) else value


def _mask_raw(value: Any) -> Any:
    """Hide values of keys that look secret in blocks kept as given (other platforms' configs).

    Any value under such a key goes, not only text: `password: 12345` is read as a number.
    """
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            lowered = str(key).lower()
            looks_secret = any(
                w in lowered for w in ("password", "secret", "token", "key", "credential", "serviceaccount")
            )
            if looks_secret and item not in (None, "", [], {}):
                out[key] = MASK
            else:
                out[key] = _mask_raw(item)
        return out
    if isinstance(value, list):
        return [_mask_raw(item) for item in value]
    return value


def mask_model(model: Model) -> dict[str, Any]:
    data = model.model_dump(mode="json", by_alias=True)
    for name, field in type(model).model_fields.items():
        if field.exclude:
            continue
        alias = field.serialization_alias or field.alias or name
        value = getattr(model, name)
        extra = field.json_schema_extra if isinstance(field.json_schema_extra, dict) else {}
        if extra.get("secret"):
            if value:
                data[alias] = MASK
        elif extra.get("secret_keys"):
            data[alias] = _mask_raw(data[alias])
        elif isinstance(value, Model):
            data[alias] = mask_model(value)
        elif isinstance(value, list):
            data[alias] = [
                mask_model(v) if isinstance(v, Model) else data[alias][i] for i, v in enumerate(value)
            ]
    return data
