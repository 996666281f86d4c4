"""The embedded sandbox: the stack deployed to moto on this machine, with the pipeline running for real.

Layout (each part usable and tested on its own):

- Engine core: ``server`` (the moto server, Step Functions execution, AWS-managed IAM policies,
  one HTTP port for the front doors and the control endpoints), ``iam/`` (the IAM gate: every
  request authorised as AWS would), ``lambda_runner`` (deployed zips and layers in warm
  subprocess workers; ``_bootstrap`` runs inside them), ``deploy`` (the stack applied from a
  scratch working copy), ``clients`` (boto3 clients against the sandbox), ``backing`` /
  ``endpoints`` (real Redis and PostgreSQL behind ElastiCache and Aurora), ``scheduler``
  (EventBridge schedules), ``clock``, ``gcpolicy``, ``state``, ``process`` and ``cli``
  (``python -m tapharness.sandbox up|status|down|plan|fire``), ``adapter`` (a stack's sandbox.yaml);
- Front doors: ``apigw`` (REST APIs, proxy event v1, validators), ``httpapi`` (HTTP APIs),
  ``alb`` (load balancers), over ``web`` (requests, responses, path templates);
- Per service: ``patches`` (the one registry of what the sandbox changes in moto, the IAM guard of
  service-to-service calls, ``install(guard)``) and ``services/`` (one module per AWS service:
  ``services.sqs`` is everything the sandbox changes about SQS); engines they use: ``athena``
  (CTAS run by DuckDB over the sandbox's S3), ``insights`` (Logs Insights queries), ``models``
  (SageMaker endpoints answered by a real model), ``globaltables`` (DynamoDB global tables),
  ``asl`` (definition validation, shared with offline plans);
- Pollers: ``pollers/`` (Kinesis, DynamoDB-stream and SQS event source mappings with AWS
  semantics), with ``filters`` (FilterCriteria).
"""
