"""AWS resources for the demo and the end-to-end tests, created in the AWS emulator (moto server).

What an ECS application of the seed needs around it: a VPC with DNS hostnames (moto cannot start awsvpc
tasks without), two subnets, a security group, an ECS cluster, an ALB with a listener forwarding to two
target groups (primary 100, canary 0). Never pointed at a real account: `endpoint_url` is required.
"""

from __future__ import annotations

import boto3
from botocore.config import Config


def create_ecs_environment(
    endpoint_url: str, region: str = "us-east-1", *, name: str = "demo"
) -> dict[str, str]:
    """Create the resources; answers the values the demo's `${...}` placeholders take."""
    if not endpoint_url:
        raise ValueError(
            "an emulator endpoint URL is required (this never creates resources in a real account)"
        )
    config = Config(retries={"total_max_attempts": 1})
    kwargs = {"region_name": region, "endpoint_url": endpoint_url, "config": config}
    ec2 = boto3.client("ec2", **kwargs)
    ecs = boto3.client("ecs", **kwargs)
    elbv2 = boto3.client("elbv2", **kwargs)
    vpc = ec2.create_vpc(CidrBlock="10.10.0.0/16")["Vpc"]["VpcId"]
    ec2.modify_vpc_attribute(VpcId=vpc, EnableDnsHostnames={"Value": True})
    ec2.modify_vpc_attribute(VpcId=vpc, EnableDnsSupport={"Value": True})
    subnet_a = ec2.create_subnet(VpcId=vpc, CidrBlock="10.10.1.0/24", AvailabilityZone=f"{region}a")[
        "Subnet"
    ]["SubnetId"]
    subnet_b = ec2.create_subnet(VpcId=vpc, CidrBlock="10.10.2.0/24", AvailabilityZone=f"{region}b")[
        "Subnet"
    ]["SubnetId"]
    group = ec2.create_security_group(GroupName=f"{name}-sg", Description=f"{name} tasks", VpcId=vpc)[
        "GroupId"
    ]
    cluster = ecs.create_cluster(clusterName=f"{name}-cluster")["cluster"]["clusterArn"]
    balancer = elbv2.create_load_balancer(
        Name=f"{name}-alb", Subnets=[subnet_a, subnet_b], SecurityGroups=[group]
    )["LoadBalancers"][0]["LoadBalancerArn"]
    groups = {}
    for role in ("primary", "canary"):
        groups[role] = elbv2.create_target_group(
            Name=f"{name}-{role}", Protocol="HTTP", Port=8080, VpcId=vpc, TargetType="ip"
        )["TargetGroups"][0]["TargetGroupArn"]
    listener = elbv2.create_listener(
        LoadBalancerArn=balancer,
        Protocol="HTTP",
        Port=80,
        DefaultActions=[
            {
                "Type": "forward",
                "ForwardConfig": {
                    "TargetGroups": [
                        {"TargetGroupArn": groups["primary"], "Weight": 100},
                        {"TargetGroupArn": groups["canary"], "Weight": 0},
                    ]
                },
            }
        ],
    )["Listeners"][0]["ListenerArn"]
    return {
        "REGION": region,
        "VPC_ID": vpc,
        "SUBNET_A": subnet_a,
        "SUBNET_B": subnet_b,
        "SECURITY_GROUP": group,
        "CLUSTER_ARN": cluster,
        "LOAD_BALANCER_ARN": balancer,
        "LISTENER_ARN": listener,
        "PRIMARY_TARGET_GROUP_ARN": groups["primary"],
        "CANARY_TARGET_GROUP_ARN": groups["canary"],
    }


def ecs_client(endpoint_url: str, region: str = "us-east-1"):
    """A read-side ECS client on the emulator, for the demo's summary and the tests' checks."""
    return boto3.client(
        "ecs", region_name=region, endpoint_url=endpoint_url, config=Config(retries={"total_max_attempts": 1})
    )
