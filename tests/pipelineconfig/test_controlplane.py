"""Control-plane configs: PipeCD's MySQL url, the datastore as Django settings, SSO configs, refusals."""

import base64
import textwrap
from datetime import timedelta

import pytest

from apps.pipelineconfig import (
    ConfigError,
    UnsupportedConfig,
    load_control_plane_config,
    load_control_plane_config_from_env,
    parse_mysql_dsn,
)

HEAD = "apiVersion: pipecd.dev/v1beta1\nkind: ControlPlane\nspec:\n"


def control_plane(body: str):
    return load_control_plane_config(text=HEAD + textwrap.indent(textwrap.dedent(body), "  "), env={}).spec


def errors_of(body: str):
    with pytest.raises(ConfigError) as caught:
        control_plane(body)
    return caught.value.errors


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        (
            "pipecd:secret@tcp(pipecd-mysql:3306)",
            {"user": "pipecd", "password": "secret", "host": "pipecd-mysql", "port": 3306, "database": ""},
        ),
        (
            "root:p@ss:w0rd@tcp(db.internal:3307)/pipecd?parseTime=true",
            {
                "user": "root",
                "password": "p@ss:w0rd",
                "host": "db.internal",
                "port": 3307,
                "database": "pipecd",
            },
        ),
        ("tcp(db)", {"user": "", "password": "", "host": "db", "port": 3306, "database": ""}),
        (
            "root@tcp([::1]:3306)",
            {"user": "root", "password": "", "host": "::1", "port": 3306, "database": ""},
        ),
        ("db:3306", {"user": "", "password": "", "host": "db", "port": 3306, "database": ""}),
        (
            "mysql://u:p%40ss@db.example:3308/portal",
            {"user": "u", "password": "p@ss", "host": "db.example", "port": 3308, "database": "portal"},
        ),
    ],
)
def test_it_reads_pipecds_mysql_url(url, expected):
    parsed = parse_mysql_dsn(url)
    assert {k: parsed[k] for k in expected} == expected


def test_a_unix_socket_url_becomes_a_socket_host():
    spec = control_plane(
        """\
        datastore:
          type: MYSQL
          config: {url: 'app:pw@unix(/run/mysqld/mysqld.sock)', database: portal}
        """
    )
    settings = spec.database_settings()
    assert (settings["HOST"], settings["PORT"], settings["NAME"]) == ("/run/mysqld/mysqld.sock", "", "portal")
    assert spec.mysql_url() == "mysql://app:pw@%2Frun%2Fmysqld%2Fmysqld.sock/portal"


def test_username_and_password_files_are_read_when_used(tmp_path):
    (tmp_path / "user").write_text("portal\n")
    (tmp_path / "pass").write_text("from-file\n")
    spec = control_plane(
        f"""\
        datastore:
          type: MYSQL
          config:
            url: tcp(mysql.internal:3306)
            database: controlplane
            usernameFile: {tmp_path}/user
            passwordFile: {tmp_path}/pass
        """
    )
    assert spec.mysql_url() == "mysql://portal:from-file@mysql.internal:3306/controlplane"
    assert spec.mask()["datastore"]["config"]["passwordFile"] == "******"


def test_a_datastore_without_database_or_of_another_type_is_refused_when_used():
    spec = control_plane("datastore: {type: MYSQL, config: {url: 'u:p@tcp(db:3306)'}}\n")
    with pytest.raises(UnsupportedConfig, match="name the database"):
        spec.mysql_url()
    spec = control_plane(
        "datastore: {type: FILEDB}\nfilestore: {type: MINIO, config: {endpoint: 'http://minio'}}\n"
    )
    with pytest.raises(UnsupportedConfig, match="datastore type FILEDB is not supported"):
        spec.database_settings()
    assert spec.filestore_settings() == {"type": "MINIO", "config": {"endpoint": "http://minio"}}


@pytest.mark.parametrize(
    ("body", "path", "message"),
    [
        ("datastore: {type: POSTGRES}\n", "spec.datastore.type", "unknown datastore type 'POSTGRES'"),
        (
            "datastore: {type: MYSQL, config: {url: 'u:p@tcp(db:port)'}}\n",
            "spec.datastore.config.url",
            "port 'port'",
        ),
        (
            "filestore: {type: S3, config: {region: x}}\n",
            "spec.filestore.config.bucket",
            "bucket is required",
        ),
        (
            "sharedSSOConfigs:\n  - {name: a, provider: OKTA}\n",
            "spec.sharedSSOConfigs[0].provider",
            "unknown SSO provider 'OKTA'; expected one of OIDC, GITHUB, GOOGLE, SAML",
        ),
        (
            "sharedSSOConfigs:\n  - {name: a, provider: GITHUB}\n",
            "spec.sharedSSOConfigs[0].github",
            "provider GITHUB needs a github: block",
        ),
        (
            "sharedSSOConfigs:\n  - {name: a, provider: OIDC, oidc: {clientId: c, clientSecret: s}}\n",
            "spec.sharedSSOConfigs[0].oidc.issuer",
            "give issuer, or authorizationEndpoint and tokenEndpoint",
        ),
        (
            "sharedSSOConfigs:\n  - {name: a, provider: GOOGLE, google: {clientId: c}}\n  - {name: a, provider: GOOGLE, google: {clientId: c}}\n",
            "spec.sharedSSOConfigs[1].name",
            "name 'a' is used twice",
        ),
        ("cache: {ttl: forever}\n", "spec.cache.ttl", "expected a duration"),
    ],
)
def test_it_refuses_broken_control_plane_configs(body, path, message):
    [problem] = errors_of(body)
    assert problem.path == path
    assert message in problem.message


def test_sso_configs_take_protobuf_json_names_and_session_ttl_in_hours():
    spec = control_plane(
        """\
        sharedSSOConfigs:
          - name: keycloak
            provider: OIDC
            session_ttl: 12
            oidc:
              client_id: portal
              client_secret: s
              issuer: https://sso.example.test/realms/main
              rolesClaimKey: roles
              tokenAuthMethod: client_secret_post
          - name: entra
            provider: SAML
            sessionTtl: 30m
            saml:
              idpEntityId: https://sts.windows.net/tenant/
              idpMetadataUrl: https://login.microsoftonline.com/tenant/metadata.xml
          - name: gh
            provider: GITHUB
            github: {clientId: c, clientSecret: s, baseUrl: 'https://ghe.example.test', org: acme}
        """
    )
    keycloak, entra, github = spec.shared_sso_configs
    assert keycloak.session_ttl == timedelta(hours=12)
    assert (keycloak.oidc.client_id, keycloak.oidc.roles_claim_key) == ("portal", "roles")
    assert keycloak.oidc.scopes == ["openid", "profile", "email"]  # default
    assert keycloak.oidc.token_auth_method == "client_secret_post"
    assert entra.session_ttl == timedelta(minutes=30)
    assert entra.saml.idp_metadata_url.endswith("metadata.xml")
    assert (github.github.base_url, github.github.org) == ("https://ghe.example.test", "acme")
    assert spec.sso_config("gh") is github
    assert spec.mask()["sharedSSOConfigs"][2]["github"]["clientSecret"] == "******"


def test_a_saml_config_takes_the_idp_certificate_as_docs_sso_md_spells_it():
    spec = control_plane(
        """\
        sharedSSOConfigs:
          - name: entra
            provider: SAML
            saml:
              idpEntityId: https://sts.windows.net/tenant/
              idpSsoUrl: https://login.microsoftonline.com/tenant/saml2
              idpX509Cert: MIIC-test-cert
        """
    )
    assert spec.sso_config("entra").saml.idp_x509_cert == "MIIC-test-cert"


def test_the_config_can_come_base64_from_the_environment():
    text = HEAD + "  stateKey: ${STATE}\n  projects:\n    - {id: demo, desc: Demo}\n"
    environ = {"PIPEPORTAL_CONFIG_DATA": base64.b64encode(text.encode()).decode(), "STATE": "k"}
    loaded = load_control_plane_config_from_env(environ)
    assert loaded.spec.state_key == "k"
    assert loaded.spec.project("demo").desc == "Demo"
    assert load_control_plane_config_from_env({}) is None
    with pytest.raises(ConfigError, match="not base64"):
        load_control_plane_config_from_env({"PIPEPORTAL_CONFIG_DATA": "###"})
