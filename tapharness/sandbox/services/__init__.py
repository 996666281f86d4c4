"""What the sandbox adds to or changes in moto 5.2.5, one module per AWS service.

Each module registers its changes with ``tapharness.sandbox.patches`` (``@patch``,
``patch.replace``, ``patch.url``) when imported; ``patches.install(guard)`` imports them all
(``load()``) and applies them. A service's engine that is more than a patch stays its own module
of ``tapharness.sandbox`` (``athena``: DuckDB, ``insights``: Logs Insights, ``globaltables``,
``models``: SageMaker endpoints, ``asl``), imported by its service module here; the event source
pollers are ``tapharness.sandbox.pollers``.

- ``core``: moto's server itself (service resolution, backend look-up, handler methods), for speed;
- ``apigateway``: UpdateMethod;
- ``apigatewayv2``: deployments, UpdateStage and a stage's deploymentId, route responses;
- ``applicationautoscaling``: the Tags of scalable targets;
- ``athena``: StartQueryExecution/GetQueryExecution run by the DuckDB engine, workgroup calls;
- ``cloudwatch``: a new alarm's first state (``tapharness.sandbox.alarms`` evaluates alarms);
- ``dynamodb``: Contributor Insights, transactions (conflicts, client tokens), Query, the serializer,
  Streams GetRecords, global tables, Time to Live's stream records;
- ``ec2``: security group rule descriptions;
- ``elasticache``: parameter groups, replication group members, AuthToken, deletions that finish;
- ``kinesis``: CreateStream's Tags, shard reads and writes;
- ``kms``: key rotation periods;
- ``lambda_``: GetRuntimeManagementConfig, DeadLetterConfig and LoggingConfig, the execution role's checks;
- ``logs``: query definitions, Logs Insights queries, embedded metric format, log group keys;
- ``rds``: the default CA, Performance Insights, ScalingConfigurationInfo;
- ``rekognition``: DetectLabels from the image (read with the caller's permissions), AWS's errors;
- ``s3``: Intelligent-Tiering, event notifications, bucket policies;
- ``sagemaker``: InvokeEndpoint;
- ``sns``: GetDataProtectionPolicy, topic attributes, deliveries under IAM;
- ``sqs``: queue attributes and policy, ReceiveMessage's retention check;
- ``stepfunctions``: definition validation, versions, unnamed executions, tasks as the machine's role.
"""

from __future__ import annotations

import importlib
from types import ModuleType

SERVICES = (
    "core", "apigateway", "apigatewayv2", "applicationautoscaling", "athena", "cloudwatch", "dynamodb", "ec2", "elasticache",
    "kinesis",
    "kms", "lambda_", "logs", "rds", "rekognition", "s3", "sagemaker", "sns", "sqs", "stepfunctions",
)


def load() -> list[ModuleType]:
    """Import every service module (each registers its patches once, when first imported)."""
    return [importlib.import_module(f"{__name__}.{name}") for name in SERVICES]
