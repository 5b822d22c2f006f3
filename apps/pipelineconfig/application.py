"""The application config (`app.pipecd.yaml`): the generic part every kind shares, ECSApp, and the other kinds.

Defaults are PipeCD's. Unknown keys are errors at every level. Each stage's `with:` is validated by the
model of its stage name.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any, ClassVar, Literal

from pydantic import AliasChoices, BeforeValidator, Field, PrivateAttr, field_validator, model_validator

from .constants import (
    ALL_EVENTS,
    ECS_STAGES,
    GENERIC_STAGES,
    KIND_ECS_APP,
    NOTIFICATION_EVENTS,
    OTHER_PLATFORM_STAGES,
)
from .types import Duration, Model, Percentage, fail, suggest, tagged_union, unknown_member


def _none_as_empty(value: Any) -> Any:
    # `with:` followed by nothing is null in YAML; PipeCD treats it as no options.
    return {} if value is None else value


# --- Stage options --------------------------------------------------------------------------------------


class SkipOn(Model):
    commit_message_prefixes: list[str] = Field(default_factory=list)
    paths: list[str] = Field(default_factory=list)


class ECSSyncOptions(Model):
    # Recreate the service's tasks instead of rolling them.
    recreate: bool = False


class ECSCanaryRolloutOptions(Model):
    scale: Percentage


class ECSPrimaryRolloutOptions(Model):
    pass


class ECSCanaryCleanOptions(Model):
    pass


class ECSTrafficRoutingOptions(Model):
    primary: Percentage | None = None
    canary: Percentage | None = None

    @model_validator(mode="after")
    def _whole_and_consistent(self) -> ECSTrafficRoutingOptions:
        for key, value in (("primary", self.primary), ("canary", self.canary)):
            if value is not None and value != int(value):
                raise fail(f"load balancer weights are whole numbers, got {value:g}", at=key)
        if self.primary is not None and self.canary is not None and self.primary + self.canary != 100:
            raise fail(
                f"primary ({self.primary:g}) and canary ({self.canary:g}) must add up to 100; give only one",
                at="canary",
            )
        return self

    def weights(self) -> tuple[int, int]:
        """(primary, canary) as whole percentages; with neither given all traffic goes to primary."""
        if self.primary is not None:
            return int(self.primary), 100 - int(self.primary)
        if self.canary is not None:
            return 100 - int(self.canary), int(self.canary)
        return 100, 0


class WaitOptions(Model):
    duration: Duration = timedelta(minutes=1)
    skip_on: SkipOn = Field(default_factory=SkipOn)


# The largest number the control plane's column holds; nobody waits for more approvers than that.
MAX_APPROVER_NUM = 2**31 - 1


class WaitApprovalOptions(Model):
    timeout: Duration = timedelta(hours=6)
    approvers: list[str] = Field(default_factory=list)
    min_approver_num: int = 1
    skip_on: SkipOn = Field(default_factory=SkipOn)

    @field_validator("min_approver_num")
    @classmethod
    def _at_least_one(cls, value: int) -> int:
        if value < 1:
            raise fail(f"minApproverNum must be 1 or more, got {value}")
        if value > MAX_APPROVER_NUM:
            raise fail(f"minApproverNum must be at most {MAX_APPROVER_NUM:,}, got {value}")
        return value


class AnalysisTemplateRef(Model):
    name: str
    app_args: dict[str, str] = Field(default_factory=dict)
    args: dict[str, str] = Field(default_factory=dict)


class AnalysisExpected(Model):
    min: float | None = None
    max: float | None = None


class AnalysisMetric(Model):
    strategy: Literal["THRESHOLD", "PREVIOUS", "CANARY_BASELINE", "CANARY_PRIMARY"] = "THRESHOLD"
    provider: str = ""
    query: str = ""
    expected: AnalysisExpected = Field(default_factory=AnalysisExpected)
    interval: Duration | None = None
    failure_limit: int = 0
    skip_on_no_data: bool = False
    timeout: Duration = timedelta(seconds=30)
    deviation: Literal["EITHER", "HIGH", "LOW"] = "EITHER"
    canary_args: dict[str, str] = Field(default_factory=dict)
    baseline_args: dict[str, str] = Field(default_factory=dict)
    primary_args: dict[str, str] = Field(default_factory=dict)
    template: AnalysisTemplateRef | None = None

    @model_validator(mode="after")
    def _complete(self) -> AnalysisMetric:
        if self.template is not None:
            return self
        for key in ("provider", "query"):
            if not getattr(self, key):
                raise fail(f"{key} is required (or use template:)", at=key)
        if self.interval is None:
            raise fail("interval is required (or use template:)", at="interval")
        if self.strategy == "THRESHOLD" and self.expected.min is None and self.expected.max is None:
            raise fail("the THRESHOLD strategy needs expected.min or expected.max", at="expected")
        return self


class AnalysisLog(Model):
    query: str = ""
    interval: Duration | None = None
    failure_limit: int = 0
    skip_on_no_data: bool = False
    timeout: Duration | None = None
    provider: str = ""
    template: AnalysisTemplateRef | None = None


class AnalysisHTTPHeader(Model):
    key: str
    value: str


class AnalysisHTTP(Model):
    url: str = ""
    method: str = "GET"
    headers: list[AnalysisHTTPHeader] = Field(default_factory=list)
    expected_code: int = 0
    expected_response: str = ""
    interval: Duration | None = None
    failure_limit: int = 0
    skip_on_no_data: bool = False
    timeout: Duration | None = None
    template: AnalysisTemplateRef | None = None


class AnalysisOptions(Model):
    duration: Duration
    restart_threshold: int = 0
    metrics: list[AnalysisMetric] = Field(default_factory=list)
    logs: list[AnalysisLog] = Field(default_factory=list)
    https: list[AnalysisHTTP] = Field(default_factory=list)
    skip_on: SkipOn = Field(default_factory=SkipOn)

    @field_validator("duration")
    @classmethod
    def _positive(cls, value: timedelta) -> timedelta:
        if value <= timedelta(0):
            raise fail("the ANALYSIS stage needs a duration greater than 0")
        return value


class ScriptRunOptions(Model):
    run: str
    env: dict[str, str] = Field(default_factory=dict)
    timeout: Duration = timedelta(hours=6)
    on_rollback: str = ""
    skip_on: SkipOn = Field(default_factory=SkipOn)

    @field_validator("run")
    @classmethod
    def _not_empty(cls, value: str) -> str:
        if not value.strip():
            raise fail("the SCRIPT_RUN stage needs a command in run:")
        return value


class CustomSyncOptions(Model):
    """PipeCD's older CUSTOM_SYNC stage (superseded by SCRIPT_RUN); read, not run."""

    run: str
    envs: dict[str, str] = Field(default_factory=dict)
    timeout: Duration = timedelta(hours=6)


STAGE_OPTIONS: dict[str, type[Model]] = {
    "ECS_SYNC": ECSSyncOptions,
    "ECS_CANARY_ROLLOUT": ECSCanaryRolloutOptions,
    "ECS_PRIMARY_ROLLOUT": ECSPrimaryRolloutOptions,
    "ECS_TRAFFIC_ROUTING": ECSTrafficRoutingOptions,
    "ECS_CANARY_CLEAN": ECSCanaryCleanOptions,
    "WAIT": WaitOptions,
    "WAIT_APPROVAL": WaitApprovalOptions,
    "ANALYSIS": AnalysisOptions,
    "SCRIPT_RUN": ScriptRunOptions,
    "CUSTOM_SYNC": CustomSyncOptions,
}

# --- Stages ---------------------------------------------------------------------------------------------


class Stage(Model):
    """One pipeline stage. `options` is the typed `with:` (a dict for stages of unsupported platforms)."""

    id: str = ""
    name: str
    desc: str = ""
    timeout: Duration | None = None
    options: Any = Field(default=None, alias="with")

    @property
    def with_(self) -> Any:
        """The same as `options` (the file's `with:`)."""
        return self.options


def required_options(stage_name: str) -> list[str]:
    """The `with:` keys a stage cannot do without (`scale` for ECS_CANARY_ROLLOUT)."""
    options = STAGE_OPTIONS.get(stage_name)
    if options is None:
        return []
    return [f.alias or n for n, f in options.model_fields.items() if f.is_required()]


def _stage_model(stage_name: str, options: type[Model] | None) -> type[Stage]:
    if options is None:
        annotation: Any = Annotated[dict[str, Any], BeforeValidator(_none_as_empty)]
        default: Any = Field(default_factory=dict, alias="with")
    else:
        annotation = Annotated[options, BeforeValidator(_none_as_empty)]
        required = any(f.is_required() for f in options.model_fields.values())
        default = Field(alias="with") if required else Field(default_factory=options, alias="with")
    model = type(
        f"{stage_name.title().replace('_', '')}Stage",
        (Stage,),
        {"__annotations__": {"options": annotation}, "options": default, "__module__": __name__},
    )
    return model


_STAGE_MODELS: dict[str, type[Stage]] = {name: _stage_model(name, cls) for name, cls in STAGE_OPTIONS.items()}


def _stage_union(kind: str) -> Any:
    names = (
        ECS_STAGES + GENERIC_STAGES if kind == KIND_ECS_APP else GENERIC_STAGES + OTHER_PLATFORM_STAGES[kind]
    )
    members = {name: _STAGE_MODELS.get(name) or _stage_model(name, None) for name in names}
    hint = f" for {kind}" if kind == KIND_ECS_APP else ""
    return tagged_union("name", members, unknown_member("name", "stage name", names, hint))


# The control plane keeps a stage id in a column of this many characters.
MAX_STAGE_ID_LENGTH = 100


def _unique_stage_ids(stages: list[Stage]) -> list[Stage]:
    """Every stage's id, given or implicit (`stage-<n>`), names one stage.

    Ids are compared as MySQL compares them (case and trailing spaces ignored): the control plane keeps
    them unique per deployment, and the API finds a stage by its id.
    """
    seen: dict[str, tuple[int, str]] = {}
    for index, stage in enumerate(stages):
        if len(stage.id) > MAX_STAGE_ID_LENGTH:
            raise fail(f"a stage id is at most {MAX_STAGE_ID_LENGTH} characters", at=(index, "id"))
        if any(ord(c) < 32 or ord(c) == 127 for c in stage.id):
            # A newline or tab cannot be part of the URL the portal and the API address the stage by.
            raise fail("a stage id cannot contain control characters (newline, tab…)", at=(index, "id"))
        effective = stage.id or f"stage-{index}"
        key = effective.rstrip(" ").lower()
        if key in seen:
            first, first_id = seen[key]
            same = (
                "" if first_id == effective else f" ({first_id!r}: ids are compared without regard to case)"
            )
            if stage.id:
                raise fail(
                    f"stage id {effective!r} is already used by stages[{first}]{same}", at=(index, "id")
                )
            raise fail(
                f"this stage has no id, and its implicit id {effective!r} is already used by stages[{first}]",
                at=(index,),
            )
        seen[key] = (index, effective)
    return stages


class _PipelineBase(Model):
    stages: list[Stage] = Field(default_factory=list)

    def stage_id(self, index: int) -> str:
        """PipeCD's id of the stage at `index`: its `id`, else `stage-<index>`."""
        stage = self.stages[index]
        return stage.id or f"stage-{index}"


def _pipeline_model(kind: str) -> type[_PipelineBase]:
    stage_type = _stage_union(kind)

    class Pipeline(_PipelineBase):
        stages: list[stage_type] = Field(default_factory=list)  # type: ignore[valid-type]

        @field_validator("stages")
        @classmethod
        def _ids(cls, stages: list[Stage]) -> list[Stage]:
            return _unique_stage_ids(stages)

    Pipeline.__name__ = Pipeline.__qualname__ = f"{kind}Pipeline"
    return Pipeline


# --- Generic application spec ---------------------------------------------------------------------------


class Planner(Model):
    always_use_pipeline: bool = False
    auto_rollback: bool = True


class CommitMatcher(Model):
    quick_sync: str = ""
    pipeline: str = ""


class OnCommit(Model):
    disabled: bool = False
    paths: list[str] = Field(default_factory=list)
    ignores: list[str] = Field(default_factory=list)


class OnCommand(Model):
    disabled: bool = False


class OnOutOfSync(Model):
    disabled: bool = True
    min_window: Duration = timedelta(minutes=5)


class OnChain(Model):
    disabled: bool = True


class Trigger(Model):
    on_commit: OnCommit = Field(default_factory=OnCommit)
    on_command: OnCommand = Field(default_factory=OnCommand)
    on_out_of_sync: OnOutOfSync = Field(default_factory=OnOutOfSync)
    on_chain: OnChain = Field(default_factory=OnChain)


class ChainApplication(Model):
    name: str = ""
    kind: str = ""
    labels: dict[str, str] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _has_filter(self) -> ChainApplication:
        if not (self.name or self.kind or self.labels):
            raise fail('at least one of "name", "kind" or "labels" must be set to find applications')
        return self


class DeploymentChain(Model):
    applications: list[ChainApplication]

    @field_validator("applications")
    @classmethod
    def _not_empty(cls, value: list) -> list:
        if not value:
            raise fail("list at least one application to trigger in the chain")
        return value


class PostSync(Model):
    chain: DeploymentChain | None = None


class Encryption(Model):
    encrypted_secrets: dict[str, str] = Field(default_factory=dict)
    decryption_targets: list[str] = Field(default_factory=list)

    @field_validator("encrypted_secrets")
    @classmethod
    def _no_empty_values(cls, value: dict[str, str]) -> dict[str, str]:
        for key, secret in value.items():
            if not secret:
                raise fail(f"the encrypted secret {key!r} is empty")
        return value


class Attachment(Model):
    sources: dict[str, str] = Field(default_factory=dict)
    targets: list[str] = Field(default_factory=list)

    @field_validator("sources")
    @classmethod
    def _no_empty_values(cls, value: dict[str, str]) -> dict[str, str]:
        for key, path in value.items():
            if not path:
                raise fail(f"the attachment source {key!r} names no file")
        return value


class NotificationMention(Model):
    event: str
    # Deprecated by PipeCD in favour of slackusers; still read and merged by `slack_users`.
    slack: list[str] = Field(default_factory=list)
    slackusers: list[str] = Field(default_factory=list, alias="slackusers")
    slackgroups: list[str] = Field(default_factory=list, alias="slackgroups")
    email: list[str] = Field(default_factory=list)

    @field_validator("event")
    @classmethod
    def _known_event(cls, value: str) -> str:
        if value != ALL_EVENTS and value not in NOTIFICATION_EVENTS:
            raise fail(
                f'unknown event {value!r}{suggest(value, NOTIFICATION_EVENTS)}; expected "*" or one of '
                + ", ".join(NOTIFICATION_EVENTS)
            )
        return value

    @property
    def slack_users(self) -> list[str]:
        return list(dict.fromkeys([*self.slack, *self.slackusers]))


class DeploymentNotification(Model):
    mentions: list[NotificationMention] = Field(default_factory=list)

    def slack_users_for(self, event: str) -> list[str]:
        found: dict[str, None] = {}
        for mention in self.mentions:
            if mention.event in (ALL_EVENTS, event):
                found.update(dict.fromkeys(mention.slack_users))
        return list(found)

    def slack_groups_for(self, event: str) -> list[str]:
        found: dict[str, None] = {}
        for mention in self.mentions:
            if mention.event in (ALL_EVENTS, event):
                found.update(dict.fromkeys(mention.slackgroups))
        return list(found)


class EventWatcherMatcher(Model):
    name: str
    labels: dict[str, str] = Field(default_factory=dict)


class EventWatcherReplacement(Model):
    file: str
    yaml_field: str = Field("", alias="yamlField")
    json_field: str = Field("", alias="jsonField")
    hcl_field: str = Field("", alias="HCLField")
    regex: str = ""

    @model_validator(mode="after")
    def _one_field(self) -> EventWatcherReplacement:
        given = [v for v in (self.yaml_field, self.json_field, self.hcl_field, self.regex) if v]
        if not given:
            raise fail("a replacement needs one of yamlField, jsonField, HCLField or regex")
        if len(given) > 1:
            raise fail("a replacement takes only one of yamlField, jsonField, HCLField or regex")
        return self


class EventWatcherHandlerConfig(Model):
    commit_message: str = ""
    make_pull_request: bool = False
    replacements: list[EventWatcherReplacement] = Field(default_factory=list)


class EventWatcherHandler(Model):
    type: Literal["GIT_UPDATE"] = "GIT_UPDATE"
    config: EventWatcherHandlerConfig = Field(default_factory=EventWatcherHandlerConfig)


class EventWatcherConfig(Model):
    matcher: EventWatcherMatcher
    handler: EventWatcherHandler = Field(default_factory=EventWatcherHandler)


class DriftDetection(Model):
    ignore_fields: list[str] = Field(default_factory=list)

    @field_validator("ignore_fields")
    @classmethod
    def _form(cls, value: list[str]) -> list[str]:
        for item in value:
            if item.count("#") != 1:
                raise fail(
                    f"ignoreFields entries look like 'apiVersion:kind:namespace:name#fieldPath', got {item!r}"
                )
        return value


class AppSpec(Model):
    """The part of `spec:` every application kind shares."""

    KIND: ClassVar[str] = ""
    # Where the spec was read from (file name and key positions), for cross-checks made later.
    _origin: Any = PrivateAttr(default=None)
    # Whether PipePortal deploys this kind; the others are read and refused when a deployment is planned.
    SUPPORTED: ClassVar[bool] = False

    name: str = ""
    env_name: str = ""  # deprecated by PipeCD; read so that old files still load
    labels: dict[str, str] = Field(default_factory=dict)
    description: str = ""
    planner: Planner = Field(default_factory=Planner)
    commit_matcher: CommitMatcher = Field(default_factory=CommitMatcher)
    trigger_paths: list[str] = Field(default_factory=list)  # deprecated by PipeCD: trigger.onCommit.paths
    trigger: Trigger = Field(default_factory=Trigger)
    post_sync: PostSync | None = None
    timeout: Duration = timedelta(hours=6)
    encryption: Encryption | None = None
    attachment: Attachment | None = None
    notification: DeploymentNotification | None = None
    event_watcher: list[EventWatcherConfig] = Field(default_factory=list)
    drift_detection: DriftDetection | None = None

    @property
    def kind(self) -> str:
        return self.KIND

    @property
    def unsupported_reason(self) -> str | None:
        """Why a deployment of this application is refused, or None when PipePortal deploys it."""
        if self.SUPPORTED:
            return None
        return f"{self.KIND} applications are not supported yet (platform not supported yet): PipePortal deploys ECSApp only"

    @property
    def stages(self) -> list[Stage]:
        pipeline = getattr(self, "pipeline", None)
        return list(pipeline.stages) if pipeline is not None else []

    def has_stage(self, name: str) -> bool:
        return any(stage.name == name for stage in self.stages)

    @property
    def auto_rollback(self) -> bool:
        """Roll back on failure unless the input or the planner turns it off (both default to true)."""
        input_ = getattr(self, "input", None)
        from_input = True
        if isinstance(input_, dict):
            from_input = input_.get("autoRollback", True) is not False
        elif input_ is not None:
            from_input = bool(getattr(input_, "auto_rollback", True))
        return from_input and self.planner.auto_rollback


# --- ECSApp ---------------------------------------------------------------------------------------------


class ECSTargetGroup(Model):
    """A load balancer entry of a task set, in CreateTaskSet's `loadBalancers` shape."""

    target_group_arn: str
    container_name: str
    container_port: int
    load_balancer_name: str = ""

    def as_aws(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "targetGroupArn": self.target_group_arn,
            "containerName": self.container_name,
            "containerPort": self.container_port,
        }
        if self.load_balancer_name:
            out["loadBalancerName"] = self.load_balancer_name
        return out


class ECSTargetGroups(Model):
    primary: ECSTargetGroup | None = None
    canary: ECSTargetGroup | None = None


class ECSVpcConfiguration(Model):
    subnets: list[str] = Field(default_factory=list)
    security_groups: list[str] = Field(default_factory=list)
    assign_public_ip: Literal["ENABLED", "DISABLED"] | None = Field(
        default=None,
        validation_alias=AliasChoices("assignPublicIp", "assignPublicIP"),
        alias="assignPublicIp",
    )

    def as_aws(self) -> dict[str, Any]:
        """RunTask's `networkConfiguration.awsvpcConfiguration`."""
        out: dict[str, Any] = {"subnets": list(self.subnets)}
        if self.security_groups:
            out["securityGroups"] = list(self.security_groups)
        if self.assign_public_ip:
            out["assignPublicIp"] = self.assign_public_ip
        return out


class ECSInput(Model):
    cluster_arn: str = ""
    launch_type: Literal["FARGATE", "EC2", "EXTERNAL"] = "FARGATE"
    awsvpc_configuration: ECSVpcConfiguration | None = None
    service_definition_file: str = ""
    task_definition_file: str = "taskdef.json"
    target_groups: ECSTargetGroups = Field(default_factory=ECSTargetGroups)
    access_type: Literal["ELB", "SERVICE_DISCOVERY"] = "ELB"
    run_standalone_task: bool = True
    auto_rollback: bool = True

    @property
    def is_standalone_task(self) -> bool:
        """No service definition: the task definition is run as a standalone task."""
        return not self.service_definition_file


class ECSAppSpec(AppSpec):
    KIND: ClassVar[str] = KIND_ECS_APP
    SUPPORTED: ClassVar[bool] = True

    input: ECSInput = Field(default_factory=ECSInput)
    quick_sync: ECSSyncOptions = Field(default_factory=ECSSyncOptions)
    pipeline: _pipeline_model(KIND_ECS_APP) | None = None  # type: ignore[valid-type]


# --- The kinds PipePortal reads but does not deploy -----------------------------------------------------


def _other_kind_spec(kind: str, extra_fields: tuple[str, ...] = ()) -> type[AppSpec]:
    annotations: dict[str, Any] = {
        "KIND": ClassVar[str],
        "input": dict[str, Any],
        "quick_sync": dict[str, Any] | None,
        "pipeline": _pipeline_model(kind) | None,
    }
    namespace: dict[str, Any] = {
        "__module__": __name__,
        "__doc__": f"{kind}: generic part validated; the platform's own blocks kept as given.",
        "KIND": kind,
        "input": Field(default_factory=dict),
        "quick_sync": None,
        "pipeline": None,
    }
    for field in extra_fields:
        annotations[field] = Any
        namespace[field] = None
    namespace["__annotations__"] = annotations
    return type(f"{kind}Spec", (AppSpec,), namespace)


APP_SPECS: dict[str, type[AppSpec]] = {
    KIND_ECS_APP: ECSAppSpec,
    "KubernetesApp": _other_kind_spec(
        "KubernetesApp", ("service", "workloads", "traffic_routing", "variant_label")
    ),
    "TerraformApp": _other_kind_spec("TerraformApp"),
    "CloudRunApp": _other_kind_spec("CloudRunApp"),
    "LambdaApp": _other_kind_spec("LambdaApp"),
}
