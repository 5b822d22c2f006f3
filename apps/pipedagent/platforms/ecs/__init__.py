"""ECS: the provider (boto3, one per `platformProviders` entry of type ECS) and the ECS_* stage executors."""
