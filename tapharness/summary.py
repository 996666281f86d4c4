"""Plan every environment offline and print what each would create.

    python -m tapharness.summary [dev staging prod]
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

from tapharness.offline_aws import moto_server
from tapharness.plan import ENVS, PlanSummary, Workspace, offline_aws_env

# Capacity attributes worth a glance per environment: (resource type, attribute).
CAPACITY = (
    ("aws_kinesis_stream", "shard_count"),
    ("aws_elasticache_replication_group", "num_cache_clusters"),
    ("aws_api_gateway_method_settings", "settings"),
    ("aws_rds_cluster", "serverlessv2_scaling_configuration"),
)


def describe(summary: PlanSummary) -> list[str]:
    lines = [f"{summary.env}: {len(summary.types)} resources of {len(summary.counts)} types"]
    for rtype, attribute in CAPACITY:
        for address, values in summary.of_type(rtype).items():
            lines.append(f"  {address}.{attribute} = {values.get(attribute)}")
    memory = {addr.split('"')[1]: v.get("memory_size") for addr, v in summary.of_type("aws_lambda_function").items()
              if '"' in addr}
    lines.append(f"  lambda memory (MB): {memory}")
    return lines


def main(envs: list[str]) -> int:
    with moto_server() as endpoint, tempfile.TemporaryDirectory(prefix="tapstack-plan-") as tmp:
        start = time.monotonic()
        workspace = Workspace(Path(tmp) / "lib", offline_aws_env(endpoint))
        print(f"init: {time.monotonic() - start:.1f}s", flush=True)
        summaries = []
        for env in envs:
            start = time.monotonic()
            summaries.append(workspace.plan(env))
            print(f"plan {env}: {time.monotonic() - start:.1f}s", flush=True)
    for summary in summaries:
        print("\n".join(describe(summary)))
    graphs = {s.env: sorted(s.types.items()) for s in summaries}
    same = all(graph == graphs[envs[0]] for graph in graphs.values())
    print(f"resource graph identical across {', '.join(envs)}: {'yes' if same else 'NO'}")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:] or list(ENVS)))
