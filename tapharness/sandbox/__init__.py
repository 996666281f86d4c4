"""The embedded sandbox: the stack deployed to moto on this machine, with the pipeline running for real.

Parts (each usable and tested on its own):

- ``server``: the moto server (Step Functions execution, AWS-managed IAM policies) with the
  sandbox's patches, plus one HTTP port for the API front door and the control endpoints;
- ``lambda_runner``: runs deployed Lambda zips (and layers) in warm subprocess workers;
- ``pollers`` / ``filters``: Kinesis, DynamoDB-stream and SQS event source mappings with AWS semantics;
- ``scheduler``: EventBridge schedules (rate/cron) and on-demand firing;
- ``apigw``: the deployed REST APIs served over HTTP (proxy event v1, validators);
- ``shims``: the provider calls moto lacks (``asl``: definition validation, shared with offline plans);
- ``models``: SageMaker endpoints answered by a real model trained on the stack's data;
- ``athena``: CREATE TABLE AS SELECT executed by DuckDB over the sandbox's S3;
- ``cli``: ``python -m tapharness.sandbox up|status|down|plan|fire``.
"""
