"""Names PipeCD's files use: API version, kinds, stage names, notification events and groups."""

API_VERSION = "pipecd.dev/v1beta1"

KIND_ECS_APP = "ECSApp"
KIND_PIPED = "Piped"
KIND_CONTROL_PLANE = "ControlPlane"
# Application kinds PipeCD has. Only ECSApp is deployed by PipePortal; the others are read (their generic
# part validated, their platform part kept as given) and refused when a deployment is planned.
APP_KINDS = ("ECSApp", "KubernetesApp", "TerraformApp", "CloudRunApp", "LambdaApp")
KNOWN_KINDS = (*APP_KINDS, KIND_PIPED, KIND_CONTROL_PLANE)
# Kinds PipeCD has that PipePortal does not read at all.
UNSUPPORTED_KINDS = ("AnalysisTemplate", "EventWatcher", "Application", "LauncherConfig")

ECS_STAGES = (
    "ECS_SYNC",
    "ECS_CANARY_ROLLOUT",
    "ECS_PRIMARY_ROLLOUT",
    "ECS_TRAFFIC_ROUTING",
    "ECS_CANARY_CLEAN",
)
GENERIC_STAGES = ("WAIT", "WAIT_APPROVAL", "ANALYSIS", "SCRIPT_RUN", "CUSTOM_SYNC")
# Stages of the platforms PipePortal does not deploy yet: their `with:` is kept as given.
OTHER_PLATFORM_STAGES = {
    "KubernetesApp": (
        "K8S_SYNC",
        "K8S_PRIMARY_ROLLOUT",
        "K8S_CANARY_ROLLOUT",
        "K8S_CANARY_CLEAN",
        "K8S_BASELINE_ROLLOUT",
        "K8S_BASELINE_CLEAN",
        "K8S_TRAFFIC_ROUTING",
    ),
    "TerraformApp": ("TERRAFORM_SYNC", "TERRAFORM_PLAN", "TERRAFORM_APPLY"),
    "CloudRunApp": ("CLOUDRUN_SYNC", "CLOUDRUN_PROMOTE"),
    "LambdaApp": ("LAMBDA_SYNC", "LAMBDA_CANARY_ROLLOUT", "LAMBDA_PROMOTE"),
}

# PipeCD's notification events without their EVENT_ prefix, with their groups. PipePortal adds
# PIPED_OFFLINE (its control plane raises it when a piped stops heartbeating) and the STAGE group (a stage
# started or ended). APPLICATION_HEALTHY / _UNHEALTHY are accepted in configs but never sent.
NOTIFICATION_EVENT_GROUPS = {
    "DEPLOYMENT_TRIGGERED": "DEPLOYMENT",
    "DEPLOYMENT_PLANNED": "DEPLOYMENT",
    "DEPLOYMENT_STARTED": "DEPLOYMENT",
    "DEPLOYMENT_APPROVED": "DEPLOYMENT",
    "DEPLOYMENT_ROLLING_BACK": "DEPLOYMENT",
    "DEPLOYMENT_SUCCEEDED": "DEPLOYMENT",
    "DEPLOYMENT_FAILED": "DEPLOYMENT",
    "DEPLOYMENT_CANCELLED": "DEPLOYMENT",
    "DEPLOYMENT_WAIT_APPROVAL": "DEPLOYMENT",
    "DEPLOYMENT_TRIGGER_FAILED": "DEPLOYMENT",
    "APPLICATION_SYNCED": "APPLICATION_SYNC",
    "APPLICATION_OUT_OF_SYNC": "APPLICATION_SYNC",
    "APPLICATION_HEALTHY": "APPLICATION_HEALTH",
    "APPLICATION_UNHEALTHY": "APPLICATION_HEALTH",
    "PIPED_STARTED": "PIPED",
    "PIPED_STOPPED": "PIPED",
    "PIPED_OFFLINE": "PIPED",
    "STAGE_STARTED": "STAGE",
    "STAGE_SUCCEEDED": "STAGE",
    "STAGE_FAILED": "STAGE",
    "STAGE_CANCELLED": "STAGE",
    "STAGE_SKIPPED": "STAGE",
}
NOTIFICATION_EVENTS = tuple(NOTIFICATION_EVENT_GROUPS)
NOTIFICATION_GROUPS = ("DEPLOYMENT", "APPLICATION_SYNC", "APPLICATION_HEALTH", "PIPED", "STAGE")
ALL_EVENTS = "*"
