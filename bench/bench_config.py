"""Config parsing speed: 1,000 app configs with their service and task definition files.

`python -m bench config`. Writes 1,000 application directories (the canary example's pipeline, a
service and a task definition of realistic size, each app with its own names and ports) into a
temporary folder, then times, per application: load_app_config + load_ecs_definitions (what the piped
does on every change), and the full validateconfig check (that plus the cross-checks). A warm-up
application loads first so that one-off costs (building the models, botocore's ECS model) are reported
apart. `--quick` writes 100 applications.
"""

import statistics
import sys
import tempfile
import time
from pathlib import Path

FULL = 1_000
QUICK = 100
TARGET = "p95 < 10 ms per app"

APP = """\
apiVersion: pipecd.dev/v1beta1
kind: ECSApp
spec:
  name: app-{n}
  labels:
    env: dev
    team: team-{team}
  input:
    serviceDefinitionFile: servicedef.yaml
    taskDefinitionFile: taskdef.yaml
    targetGroups:
      primary:
        targetGroupArn: arn:aws:elasticloadbalancing:ap-northeast-1:123456789012:targetgroup/app-{n}-blue/{n:016x}
        containerName: app-{n}
        containerPort: {port}
      canary:
        targetGroupArn: arn:aws:elasticloadbalancing:ap-northeast-1:123456789012:targetgroup/app-{n}-green/{n:016x}
        containerName: app-{n}
        containerPort: {port}
  trigger:
    onCommit:
      paths: [app-{n}/]
  notification:
    mentions:
      - event: DEPLOYMENT_WAIT_APPROVAL
        slackusers: [U{n:06d}]
  pipeline:
    stages:
      - name: ECS_CANARY_ROLLOUT
        with:
          scale: 30
      - name: ECS_TRAFFIC_ROUTING
        with:
          canary: 20
      - name: ANALYSIS
        with:
          duration: 10m
          metrics:
            - provider: cloudwatch
              query: errors
              expected: {{max: 0.01}}
              interval: 1m
      - name: WAIT_APPROVAL
        with:
          approvers: [alice, bob]
          timeout: 2h
      - name: ECS_PRIMARY_ROLLOUT
      - name: ECS_TRAFFIC_ROUTING
        with:
          primary: 100
      - name: ECS_CANARY_CLEAN
"""

SERVICE = """\
cluster: arn:aws:ecs:ap-northeast-1:123456789012:cluster/bench
serviceName: app-{n}
desiredCount: 4
launchType: FARGATE
platformVersion: LATEST
schedulingStrategy: REPLICA
deploymentConfiguration:
  maximumPercent: 200
  minimumHealthyPercent: 100
networkConfiguration:
  awsvpcConfiguration:
    subnets: [subnet-aaaa, subnet-bbbb, subnet-cccc]
    securityGroups: [sg-{n:08x}]
    assignPublicIp: DISABLED
propagateTags: SERVICE
enableECSManagedTags: true
deploymentController:
  type: EXTERNAL
tags:
  - key: app
    value: app-{n}
  - key: team
    value: team-{team}
"""

TASK = """\
family: app-{n}
networkMode: awsvpc
requiresCompatibilities: [FARGATE]
cpu: 512
memory: 1024
executionRoleArn: arn:aws:iam::123456789012:role/ecsTaskExecutionRole
taskRoleArn: arn:aws:iam::123456789012:role/app-{n}
containerDefinitions:
  - name: app-{n}
    image: 123456789012.dkr.ecr.ap-northeast-1.amazonaws.com/app-{n}:v{n}
    essential: true
    cpu: 256
    memory: 512
    portMappings:
      - containerPort: {port}
        protocol: tcp
    environment:
      - {{name: APP_NAME, value: app-{n}}}
      - {{name: PORT, value: {port}}}
      - {{name: LOG_LEVEL, value: info}}
    secrets:
      - {{name: DB_PASSWORD, valueFrom: arn:aws:secretsmanager:ap-northeast-1:123456789012:secret:app-{n}}}
    healthCheck:
      command: [CMD-SHELL, "curl -f http://localhost:{port}/healthz || exit 1"]
      interval: 30
      timeout: 5
      retries: 3
    logConfiguration:
      logDriver: awslogs
      options:
        awslogs-group: /ecs/app-{n}
        awslogs-region: ap-northeast-1
        awslogs-stream-prefix: ecs
  - name: envoy
    image: public.ecr.aws/appmesh/aws-appmesh-envoy:v1.27
    essential: false
    memoryReservation: 128
"""


def log(message: str) -> None:
    print(f"# config: {message}", file=sys.stderr, flush=True)


def write_apps(root: Path, count: int) -> list[Path]:
    folders = []
    for n in range(count + 1):  # +1: the warm-up app
        folder = root / f"app-{n}"
        folder.mkdir()
        values = {"n": n, "team": n % 20, "port": 8000 + n % 1000}
        (folder / "app.pipecd.yaml").write_text(APP.format(**values))
        (folder / "servicedef.yaml").write_text(SERVICE.format(**values))
        (folder / "taskdef.yaml").write_text(TASK.format(**values))
        folders.append(folder)
    return folders


def _timed(folders: list[Path], step) -> list[float]:
    times = []
    for folder in folders:
        started = time.perf_counter()
        step(folder)
        times.append((time.perf_counter() - started) * 1000)
    return times


def _row(case: str, times: list[float], note: str) -> dict:
    ordered = sorted(times)
    return {
        "bench": "config",
        "case": case,
        "n": len(times),
        "p50_ms": statistics.median(ordered),
        "p95_ms": ordered[int(len(ordered) * 0.95) - 1],
        "total_s": sum(times) / 1000,
        "target": TARGET,
        "note": note,
    }


def run(args) -> list[dict]:
    count = QUICK if getattr(args, "quick", False) else FULL
    started = time.perf_counter()
    from apps.pipelineconfig import load_app_config, load_ecs_definitions, validate_app_dir

    import_ms = (time.perf_counter() - started) * 1000

    def load(folder: Path) -> None:
        spec = load_app_config(folder / "app.pipecd.yaml").spec
        definitions = load_ecs_definitions(folder, spec)
        assert definitions.task["family"] == folder.name

    def check(folder: Path) -> None:
        spec = load_app_config(folder / "app.pipecd.yaml").spec
        problems = validate_app_dir(folder, spec)
        assert not problems, problems

    with tempfile.TemporaryDirectory(prefix="bench-config-") as tmp:
        folders = write_apps(Path(tmp), count)
        log(f"{count} applications written to {tmp}")
        warmup, folders = folders[0], folders[1:]
        first = _timed([warmup], load)[0]
        loads = _timed(folders, load)
        checks = _timed(folders, check)
    return [
        {
            "bench": "config",
            "case": "first app (import, model build, botocore ECS model)",
            "n": 1,
            "total_s": (import_ms + first) / 1000,
            "note": f"import {import_ms:.0f} ms + first load {first:.0f} ms",
        },
        _row(
            f"load {count} app configs + service/task definitions",
            loads,
            "per app: app.pipecd.yaml, servicedef.yaml, taskdef.yaml",
        ),
        _row(f"validateconfig check of {count} apps", checks, "load + cross-checks per app"),
    ]
