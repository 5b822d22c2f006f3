"""The control-plane config (`kind: ControlPlane`): datastore, filestore, cache, projects and shared SSO configs.

Only a MYSQL datastore and an S3 filestore are used by PipePortal; the other types PipeCD documents
(FIRESTORE, FILEDB, GCS, MINIO) are read and kept, and refused when the control plane starts on them.
"""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path
from typing import Any, Literal
from urllib.parse import parse_qsl, quote

from pydantic import AliasChoices, AliasGenerator, ConfigDict, Field, field_validator, model_validator
from pydantic.alias_generators import to_camel

from .piped import mask_model, secret
from .types import Duration, Model, fail, parse_duration, tagged_union, unknown_member


class UnsupportedConfig(Exception):
    """A block that loads but that PipePortal cannot use (a FIRESTORE datastore, a GCS filestore…)."""

    def __init__(self, path: str, message: str):
        self.path = path
        self.message = message
        super().__init__(f"{path}: {message}")


# --- Datastore ------------------------------------------------------------------------------------------

_DSN_ADDRESS = re.compile(r"^(?P<net>[A-Za-z0-9]+)\((?P<addr>[^)]*)\)(?P<tail>.*)$")


def parse_mysql_dsn(url: str) -> dict[str, Any]:
    """PipeCD's MySQL `url` (Go's `user:pass@tcp(host:port)`, optionally `/db?params`) or a `mysql://` URL."""
    from urllib.parse import unquote, urlsplit

    url = url.strip()
    if url.startswith(("mysql://", "mariadb://")):
        parts = urlsplit(url)
        return {
            "user": unquote(parts.username or ""),
            "password": unquote(parts.password or ""),
            "host": parts.hostname or "",
            "port": parts.port or 3306,
            "socket": "",
            "database": parts.path.lstrip("/"),
            "params": dict(parse_qsl(parts.query)),
        }
    at = url.rfind("@")
    credentials, rest = (url[:at], url[at + 1 :]) if at >= 0 else ("", url)
    user, _, password = credentials.partition(":")
    match = _DSN_ADDRESS.match(rest)
    if match:
        net, address, tail = match.group("net"), match.group("addr"), match.group("tail")
    else:
        cut = min([i for i in (rest.find("/"), rest.find("?")) if i >= 0], default=len(rest))
        net, address, tail = "tcp", rest[:cut], rest[cut:]
    database, _, query = tail.lstrip("/").partition("?")
    host, port, socket = "", 3306, ""
    if net == "unix":
        socket = address
    elif address:
        if address.startswith("["):  # [::1]:3306
            host, _, port_text = address[1:].partition("]")
            port_text = port_text.lstrip(":")
        else:
            host, _, port_text = address.rpartition(":") if ":" in address else (address, "", "")
        if port_text:
            if not port_text.isdigit():
                raise ValueError(f"the port {port_text!r} is not a number")
            port = int(port_text)
    else:
        host = "127.0.0.1"
    if net not in ("tcp", "tcp6", "unix"):
        raise ValueError(f"unsupported network {net!r}: use tcp(host:port) or unix(/path/to/socket)")
    return {
        "user": user,
        "password": password,
        "host": host,
        "port": port,
        "socket": socket,
        "database": database,
        "params": dict(parse_qsl(query)),
    }


class MySQLConfig(Model):
    url: str = secret()
    database: str = ""
    username_file: str = ""
    password_file: str = secret()

    @field_validator("url")
    @classmethod
    def _parses(cls, value: str) -> str:
        if not value:
            raise fail("the MYSQL datastore needs url: (user:password@tcp(host:3306))")
        try:
            parse_mysql_dsn(value)
        except ValueError as exc:
            raise fail(f"cannot read the MySQL url: {exc}") from None
        return value

    def connection(self) -> dict[str, Any]:
        """User, password, host, port, socket and database, with usernameFile/passwordFile read."""
        conn = parse_mysql_dsn(self.url)
        if self.database:
            conn["database"] = self.database
        for key, path in (("user", self.username_file), ("password", self.password_file)):
            if path:
                try:
                    conn[key] = Path(path).read_text().strip()
                except OSError as exc:
                    raise UnsupportedConfig(
                        f"spec.datastore.config.{key}File", f"cannot read {path}: {exc.strerror}"
                    ) from exc
        if not conn["database"]:
            raise UnsupportedConfig(
                "spec.datastore.config.database", "name the database (database: or url /db)"
            )
        return conn


class Datastore(Model):
    type: str
    config: Any = None


class MySQLDatastore(Datastore):
    type: Literal["MYSQL"] = "MYSQL"
    config: MySQLConfig


class OtherDatastore(Datastore):
    config: dict[str, Any] = Field(default_factory=dict, json_schema_extra={"secret_keys": True})


DATASTORE_TYPES = ("MYSQL", "FIRESTORE", "FILEDB")
DatastoreItem = tagged_union(
    "type",
    {"MYSQL": MySQLDatastore, "FIRESTORE": OtherDatastore, "FILEDB": OtherDatastore},
    unknown_member("type", "datastore type", DATASTORE_TYPES),
)

# --- Filestore ------------------------------------------------------------------------------------------


class S3Config(Model):
    bucket: str
    region: str = ""
    profile: str = ""
    credentials_file: str = secret()
    role_arn: str = secret(alias="roleARN")
    token_file: str = secret()


class Filestore(Model):
    type: str
    config: Any = None


class S3Filestore(Filestore):
    type: Literal["S3"] = "S3"
    config: S3Config


class OtherFilestore(Filestore):
    config: dict[str, Any] = Field(default_factory=dict, json_schema_extra={"secret_keys": True})


FILESTORE_TYPES = ("S3", "GCS", "MINIO")
FilestoreItem = tagged_union(
    "type",
    {"S3": S3Filestore, "GCS": OtherFilestore, "MINIO": OtherFilestore},
    unknown_member("type", "filestore type", FILESTORE_TYPES),
)

# --- Projects and SSO -----------------------------------------------------------------------------------


class StaticUser(Model):
    username: str
    password_hash: str = secret()


class ControlPlaneProject(Model):
    id: str
    desc: str = ""
    static_admin: StaticUser | None = None


class ProtoModel(Model):
    """PipeCD reads SSO configs as protobuf JSON, which takes `clientId` and `client_id` alike."""

    model_config = ConfigDict(
        alias_generator=AliasGenerator(
            validation_alias=lambda name: AliasChoices(to_camel(name), name),
            serialization_alias=to_camel,
        )
    )


class OIDCConfig(ProtoModel):
    client_id: str
    client_secret: str = secret()
    issuer: str = ""
    redirect_uri: str = ""
    authorization_endpoint: str = ""
    token_endpoint: str = ""
    user_info_endpoint: str = ""
    proxy_url: str = ""
    scopes: list[str] = Field(default_factory=lambda: ["openid", "profile", "email"])
    # The ID-token/userinfo claim holding the person's groups.
    roles_claim_key: str = "groups"
    username_claim_key: str = ""
    avatar_url_claim_key: str = ""
    # PipePortal's own: how the client authenticates at the token endpoint (client_secret_basic,
    # client_secret_post…); empty lets the provider's discovery document decide.
    token_auth_method: str = ""

    @model_validator(mode="after")
    def _findable(self) -> OIDCConfig:
        if not self.issuer and not (self.authorization_endpoint and self.token_endpoint):
            raise fail("give issuer, or authorizationEndpoint and tokenEndpoint", at="issuer")
        return self


class GitHubSSOConfig(ProtoModel):
    client_id: str
    client_secret: str = secret()
    base_url: str = ""
    upload_url: str = ""
    proxy_url: str = ""
    # PipePortal's own: only teams of this organisation map to user groups.
    org: str = ""


class SAMLSSOConfig(ProtoModel):
    """PipePortal's own (PipeCD has no SAML): a SAML 2.0 identity provider such as Entra ID."""

    idp_entity_id: str
    idp_sso_url: str = ""
    idp_x509_cert: str = ""
    idp_metadata_url: str = ""
    # The assertion attribute(s) holding the groups; empty: the usual ones (groups, Entra ID's, memberOf).
    groups_attribute: str | list[str] = ""
    sp_entity_id: str = ""

    @model_validator(mode="after")
    def _findable(self) -> SAMLSSOConfig:
        if not self.idp_metadata_url and not (self.idp_sso_url and self.idp_x509_cert):
            raise fail("give idpMetadataUrl, or idpSsoUrl and idpX509Cert", at="idpMetadataUrl")
        return self


class GoogleSSOConfig(ProtoModel):
    client_id: str
    client_secret: str = secret()


def _session_ttl(value: Any) -> Any:
    # PipeCD's sessionTtl is a number of hours; a duration string is accepted too.
    if isinstance(value, int) and not isinstance(value, bool):
        return timedelta(hours=value)
    if isinstance(value, str) and value.strip().isdigit():
        return timedelta(hours=int(value))
    return parse_duration(value)


SSO_PROVIDERS = ("OIDC", "GITHUB", "GOOGLE", "SAML")


class SharedSSOConfig(ProtoModel):
    name: str
    provider: str
    session_ttl: Duration | None = None
    oidc: OIDCConfig | None = None
    github: GitHubSSOConfig | None = None
    google: GoogleSSOConfig | None = None
    saml: SAMLSSOConfig | None = None

    @field_validator("session_ttl", mode="before")
    @classmethod
    def _hours(cls, value: Any) -> Any:
        return None if value is None else _session_ttl(value)

    @field_validator("provider")
    @classmethod
    def _known_provider(cls, value: str) -> str:
        if value not in SSO_PROVIDERS:
            raise fail(f"unknown SSO provider {value!r}; expected one of {', '.join(SSO_PROVIDERS)}")
        return value

    @model_validator(mode="after")
    def _block_for_provider(self) -> SharedSSOConfig:
        block = self.provider.lower()
        if getattr(self, block) is None:
            raise fail(f"provider {self.provider} needs a {block}: block", at=block)
        return self


class InsightCollectorApplication(Model):
    enabled: bool = True
    schedule: str = "0 * * * *"


class InsightCollectorDeployment(Model):
    enabled: bool = True
    schedule: str = "30 * * * *"
    chunk_max_count: int = 1000


class InsightCollector(Model):
    application: InsightCollectorApplication = Field(default_factory=InsightCollectorApplication)
    deployment: InsightCollectorDeployment = Field(default_factory=InsightCollectorDeployment)


class Cache(Model):
    ttl: Duration = timedelta(minutes=5)


class ControlPlaneSpec(Model):
    address: str = ""
    state_key: str = secret()
    datastore: DatastoreItem | None = None  # type: ignore[valid-type]
    filestore: FilestoreItem | None = None  # type: ignore[valid-type]
    cache: Cache = Field(default_factory=Cache)
    insight_collector: InsightCollector = Field(default_factory=InsightCollector)
    projects: list[ControlPlaneProject] = Field(default_factory=list)
    shared_sso_configs: list[SharedSSOConfig] = Field(default_factory=list, alias="sharedSSOConfigs")

    @model_validator(mode="after")
    def _unique_names(self) -> ControlPlaneSpec:
        for attr, alias, key in (
            ("shared_sso_configs", "sharedSSOConfigs", "name"),
            ("projects", "projects", "id"),
        ):
            seen: set[str] = set()
            for index, item in enumerate(getattr(self, attr)):
                value = getattr(item, key)
                if value in seen:
                    raise fail(f"{key} {value!r} is used twice", at=(alias, index, key))
                seen.add(value)
        return self

    # --- helpers ---

    def sso_config(self, name: str) -> SharedSSOConfig | None:
        return next((c for c in self.shared_sso_configs if c.name == name), None)

    def project(self, project_id: str) -> ControlPlaneProject | None:
        return next((p for p in self.projects if p.id == project_id), None)

    def _mysql(self) -> MySQLConfig:
        if self.datastore is None:
            raise UnsupportedConfig("spec.datastore", "no datastore is configured")
        if self.datastore.type != "MYSQL":
            raise UnsupportedConfig(
                "spec.datastore.type",
                f"PipePortal stores its data in MySQL/MariaDB; datastore type {self.datastore.type} is not supported",
            )
        return self.datastore.config

    def mysql_url(self) -> str:
        """The datastore as a `mysql://user:password@host:port/database` URL (dj-database-url's form)."""
        conn = self._mysql().connection()
        auth = ""
        if conn["user"]:
            auth = quote(conn["user"], safe="")
            if conn["password"]:
                auth += ":" + quote(conn["password"], safe="")
            auth += "@"
        location = quote(conn["socket"], safe="") if conn["socket"] else f"{conn['host']}:{conn['port']}"
        return f"mysql://{auth}{location}/{quote(conn['database'], safe='')}"

    def database_settings(self) -> dict[str, Any]:
        """The datastore as Django's DATABASES["default"] (MySQL backend, utf8mb4)."""
        conn = self._mysql().connection()
        return {
            "ENGINE": "django.db.backends.mysql",
            "NAME": conn["database"],
            "USER": conn["user"],
            "PASSWORD": conn["password"],
            "HOST": conn["socket"] or conn["host"],
            "PORT": "" if conn["socket"] else str(conn["port"]),
            "OPTIONS": {"charset": "utf8mb4"},
        }

    def filestore_settings(self) -> dict[str, Any] | None:
        """The filestore block as a plain dict in PipeCD's shape `{"type": "S3", "config": {…}}`, or None."""
        if self.filestore is None:
            return None
        config = self.filestore.config
        body = config.model_dump(by_alias=True) if isinstance(config, Model) else dict(config or {})
        return {"type": self.filestore.type, "config": body}

    def mask(self) -> dict[str, Any]:
        return mask_model(self)
