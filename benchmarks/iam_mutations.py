"""One IAM mutation per check family, against a running dev sandbox of a stack: the flow that needs
the removed permission fails as it would on AWS, and the sandbox's IAM report names the denial.

    python -m tapharness.sandbox up --stack clickstream
    python benchmarks/iam_mutations.py --stack clickstream

Each mutation edits a role's policy (inline, or a new default version of its managed policy) or a
key policy through the API as the administrator, runs the flow, waits for the denial to appear in
``/_sandbox/iam``, and puts the policy back whatever happened. The families: a function role's KMS
permission, the ENI permissions of a function in a VPC (checked by Lambda when the function's
configuration changes), an event source read permission (checked when the mapping changes, and
on every read of the running mapping), a Step Functions task permission, a key-policy statement.
It prints one row per mutation and exits 1 if any flow did not fail or no denial was named.
"""

from __future__ import annotations

import argparse
import copy
import importlib.util
import json
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tapharness.deployed import Target, load_target
from tapharness.retry import WaitTimeout, wait_for

Document = dict[str, Any]
PMS_WAIT_S = 10


# --- editing policies ---------------------------------------------------------------------------


def without(document: Document, sid: str, action: str | None = None, service: str | None = None) -> Document:
    """The policy without statement ``sid``, or without one of its actions or service principals."""
    edited = copy.deepcopy(document)
    statements = edited["Statement"] if isinstance(edited["Statement"], list) else [edited["Statement"]]
    kept = []
    found = False
    for statement in statements:
        if statement.get("Sid") != sid:
            kept.append(statement)
            continue
        found = True
        if action:
            actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
            statement["Action"] = [a for a in actions if a != action]
            kept.append(statement)
        elif service:
            services = statement["Principal"]["Service"]
            statement["Principal"]["Service"] = [s for s in (services if isinstance(services, list) else [services])
                                                 if s != service]
            kept.append(statement)
    if not found:
        raise LookupError(f"no statement {sid!r} in the policy")
    edited["Statement"] = kept
    return edited


@contextmanager
def role_policy(target: Target, role_name: str, edit: Callable[[Document], Document]) -> Iterator[None]:
    """``edit`` applied to the role's inline policy holding the statement, or to its managed policy."""
    iam = target.client("iam")
    for name in iam.list_role_policies(RoleName=role_name)["PolicyNames"]:
        original = iam.get_role_policy(RoleName=role_name, PolicyName=name)["PolicyDocument"]
        try:
            edited = edit(original)
        except LookupError:
            continue
        iam.put_role_policy(RoleName=role_name, PolicyName=name, PolicyDocument=json.dumps(edited))
        try:
            yield
        finally:
            iam.put_role_policy(RoleName=role_name, PolicyName=name, PolicyDocument=json.dumps(original))
        return
    for attached in iam.list_attached_role_policies(RoleName=role_name)["AttachedPolicies"]:
        arn = attached["PolicyArn"]
        default = iam.get_policy(PolicyArn=arn)["Policy"]["DefaultVersionId"]
        original = iam.get_policy_version(PolicyArn=arn, VersionId=default)["PolicyVersion"]["Document"]
        try:
            edited = edit(original)
        except LookupError:
            continue
        version = iam.create_policy_version(PolicyArn=arn, PolicyDocument=json.dumps(edited),
                                            SetAsDefault=True)["PolicyVersion"]["VersionId"]
        try:
            yield
        finally:
            iam.set_default_policy_version(PolicyArn=arn, VersionId=default)
            iam.delete_policy_version(PolicyArn=arn, VersionId=version)
        return
    raise LookupError(f"no policy of role {role_name} has the statement to edit")


@contextmanager
def key_policy(target: Target, key_arn: str, edit: Callable[[Document], Document]) -> Iterator[None]:
    kms = target.client("kms")
    original = kms.get_key_policy(KeyId=key_arn, PolicyName="default")["Policy"]
    kms.put_key_policy(KeyId=key_arn, PolicyName="default", Policy=json.dumps(edit(json.loads(original))))
    try:
        yield
    finally:
        kms.put_key_policy(KeyId=key_arn, PolicyName="default", Policy=original)


def function_role(target: Target, function_key: str) -> str:
    name = target.output("lambda_function_names", function_key)
    return str(target.client("lambda").get_function_configuration(FunctionName=name)["Role"]).rsplit("/", 1)[-1]


def machine_role(target: Target) -> str:
    machine = target.client("stepfunctions").describe_state_machine(stateMachineArn=target.output("state_machine_arn"))
    return str(machine["roleArn"]).rsplit("/", 1)[-1]


# --- flows ---------------------------------------------------------------------------------------


def http(method: str, url: str, body: Any = None) -> int:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


def refused(call: Callable[[], Any]) -> str:
    """The error code ``call`` answered with ('accepted' if it succeeded)."""
    try:
        call()
    except ClientError as error:
        return str(error.response["Error"]["Code"])
    return "accepted"


def reconfigure_vpc(target: Target, function_key: str) -> str:
    """UpdateFunctionConfiguration with the function's own VpcConfig: Lambda checks the ENI permissions."""
    lam = target.client("lambda")
    name = target.output("lambda_function_names", function_key)
    vpc = lam.get_function_configuration(FunctionName=name)["VpcConfig"]
    outcome = refused(lambda: lam.update_function_configuration(
        FunctionName=name, VpcConfig={"SubnetIds": vpc["SubnetIds"], "SecurityGroupIds": vpc["SecurityGroupIds"]}))
    return f"UpdateFunctionConfiguration → {outcome}"


def remap(target: Target, function_key: str, source_arn: str) -> str:
    """UpdateEventSourceMapping naming the same function: Lambda checks the role can read the source."""
    lam = target.client("lambda")
    name = target.output("lambda_function_names", function_key)
    [mapping] = [m for m in lam.list_event_source_mappings(FunctionName=name)["EventSourceMappings"]
                 if m["EventSourceArn"] == source_arn]
    outcome = refused(lambda: lam.update_event_source_mapping(UUID=mapping["UUID"], FunctionName=name))
    return f"UpdateEventSourceMapping → {outcome}"


def execution_status(target: Target, execution_input: str) -> str:
    sfn = target.client("stepfunctions")
    arn = sfn.start_execution(stateMachineArn=target.output("state_machine_arn"), name=f"iam-{uuid.uuid4().hex[:12]}",
                              input=execution_input)["executionArn"]
    ended = wait_for("the execution's end", lambda: sfn.describe_execution(executionArn=arn), 120,
                     ready=lambda d: d["status"] != "RUNNING")
    return f"execution {ended['status']} ({ended.get('error', '')})"


# --- the report -------------------------------------------------------------------------------------


def denial_counts(target: Target) -> dict[tuple[str, str, str], int]:
    report = target.control("GET", "iam")
    return {(p["principal"], d["action"], d["resource"]): d["count"] for p in report["principals"] for d in p["denied"]}


def new_denial(target: Target, before: dict[tuple[str, str, str], int], action: str) -> tuple[str, str, str] | None:
    try:
        return wait_for(f"a denial of {action}", lambda: next(
            (key for key, count in denial_counts(target).items() if key[1] == action and count > before.get(key, 0)),
            None), 30)
    except WaitTimeout:
        return None


@dataclass(frozen=True)
class Mutation:
    family: str
    change: str
    apply: Callable[[Target], Any]       # a context manager that changes the policy and puts it back
    flow: Callable[[Target], str]        # runs the flow, returns what it observed
    failed: Callable[[str], bool]        # whether that observation is the failure AWS would give
    denied: str                          # the action the IAM report must name


def run(target: Target, mutations: list[Mutation]) -> bool:
    ok = True
    print("| family | mutation | flow | denial in `sandbox iam` | as on AWS |")
    print("|---|---|---|---|---|")
    for mutation in mutations:
        before = denial_counts(target)
        with mutation.apply(target):
            outcome = mutation.flow(target)
            denial = new_denial(target, before, mutation.denied)
        passed = mutation.failed(outcome) and denial is not None
        ok &= passed
        resource = denial[2].split(":", 5)[-1] if denial else ""
        named = f"`{denial[1]}` on `{resource}` by `{denial[0].rsplit('/', 1)[-1]}`" if denial else "none"
        print(f"| {mutation.family} | {mutation.change} | {outcome} | {named} | {'yes' if passed else 'NO'} |",
              flush=True)
    return ok


# --- the stacks' mutations -------------------------------------------------------------------------


def _refused_by_lambda(outcome: str) -> bool:
    return "InvalidParameterValue" in outcome


def function_permission(family: str, function_key: str, sid: str, action: str | None, flow: Callable[[Target], str],
                        failed: Callable[[str], bool], denied: str) -> Mutation:
    """A statement of a function role's policy, or one action of it, taken away."""
    change = f"`{action}` out of `{sid}`" if action else f"`{sid}` removed"
    return Mutation(family, f"{function_key} role: {change}",
                    lambda t: role_policy(t, function_role(t, function_key), lambda d: without(d, sid, action)),
                    flow, failed, denied)


def eni(function_key: str) -> Mutation:
    return function_permission("ENI permissions", function_key, "ManageVpcNetworkInterfaces", None,
                               lambda t: reconfigure_vpc(t, function_key), _refused_by_lambda,
                               "ec2:CreateNetworkInterface")


def source_read(function_key: str, sid: str, action: str, source_arn: str) -> Mutation:
    return function_permission("event source read", function_key, sid, action,
                               lambda t: remap(t, function_key, source_arn), _refused_by_lambda, action)


def task(sid: str, execution_input: str) -> Mutation:
    return Mutation("Step Functions task", f"states role: `{sid}` removed",
                    lambda t: role_policy(t, machine_role(t), lambda d: without(d, sid)),
                    lambda t: execution_status(t, execution_input), lambda o: "FAILED" in o,
                    "lambda:InvokeFunction")


def key_statement(key_arn: str, sid: str, service: str | None, flow: Callable[[Target], str],
                  failed: Callable[[str], bool], denied: str) -> Mutation:
    change = f"`{service}` out of `{sid}`" if service else f"`{sid}` removed"
    return Mutation("key policy", f"key: {change}",
                    lambda t: key_policy(t, key_arn, lambda d: without(d, sid, service=service)),
                    flow, failed, denied)



def _video(target: Target) -> list[Mutation]:
    sys.path.insert(0, str(ROOT / "tests" / "integration"))
    from flows import Clock, ViewingEvent, new_id

    def watch(kind: str = "watch", position: float = 120.0) -> int:
        event = ViewingEvent(kind, new_id("user"), new_id("content"), position, 1000.0, Clock().tick())
        return http("POST", target.output("api_endpoints", kind), event.body())

    return [
        function_permission("KMS permission", "event_processor", "UseDataKey", "kms:GenerateDataKey",
                            lambda t: f"POST /watch → {watch()}", lambda o: o.endswith("500"), "kms:GenerateDataKey"),
        eni("event_processor"),
        source_read("activity_consumer", "ReadViewingEvents", "kinesis:GetRecords", target.output("kinesis_stream_arn")),
        task("InvokeExpirationTasks", json.dumps({"run_date": "2040-01-01"})),
        key_statement(target.output("kms_key_arns", "data"), "ServicesUseKeyForThisAccount", "sns.amazonaws.com",
                      lambda t: f"POST /complete → {watch('complete', 950.0)}; SNS delivers to the encrypted queues",
                      lambda o: o.startswith("POST /complete → 202"), "kms:GenerateDataKey"),
    ]


def load_flows(conftest: Path) -> Any:
    """A stack's integration conftest as a module (its API and data helpers)."""
    spec = importlib.util.spec_from_file_location(f"{conftest.parent.parent.parent.name}_flows", conftest)
    assert spec is not None and spec.loader is not None
    flows = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(flows)
    return flows


def hotel_booking_flow(target: Target) -> Callable[[Target], str]:
    """A booking of a new room-night, and how many availability updates the opera PMS stand-in got."""
    flows = load_flows(ROOT / "stacks" / "hotel_booking" / "tests" / "integration" / "conftest.py")
    api, inventory = flows.BookingApi(target), flows.Inventory(target)

    def book(t: Target) -> str:
        t.control("POST", "partners/opera", {})
        property_id = inventory.add_property({"king": ("deluxe", 4)})
        night = time.strftime("%Y-%m-%d", time.gmtime(time.time() + 50 * 86400))
        inventory.open_night(property_id, "king", night, 4)
        status, _ = api.book(property_id, "king", night)
        time.sleep(PMS_WAIT_S)  # a booking normally reaches the PMS stand-in within a second
        received = [r for r in t.control("GET", "partners/opera")["received"]
                    if r["path"] == f"/properties/{property_id}/availability"]
        return f"POST /book → {status}, PMS updates after {PMS_WAIT_S} s: {len(received)}"

    return book


def _hotel_booking(target: Target) -> list[Mutation]:
    book = hotel_booking_flow(target)

    def booked_not_sent(outcome: str) -> bool:
        return outcome.startswith("POST /book → 201") and outcome.endswith(": 0")

    return [
        function_permission("KMS permission", "booking_handler", "UseDataKey", "kms:GenerateDataKey", book,
                            booked_not_sent, "kms:GenerateDataKey"),
        eni("booking_handler"),
        source_read("cache_updater", "ReadInventoryStream", "dynamodb:GetRecords",
                    target.output("dynamodb_stream_arn")),
        task("InvokeReconciliationTasks", "{}"),
        key_statement(target.output("kms_key_arns", "data"), "ServicesUseKeyForThisAccount", "sns.amazonaws.com",
                      book, booked_not_sent, "kms:GenerateDataKey"),
    ]


def _clickstream(target: Target) -> list[Mutation]:
    key = target.output("kms_key_arn")
    alb = str(target.output("alb_url")).rstrip("/")

    def probe_log_group(t: Target) -> str:
        name = f"/aws/lambda/clickstream-dev-iam-probe-{uuid.uuid4().hex[:8]}"
        outcome = refused(lambda: t.client("logs").create_log_group(logGroupName=name, kmsKeyId=key))
        if outcome == "accepted":
            t.client("logs").delete_log_group(logGroupName=name)
        return f"CreateLogGroup with the key → {outcome}"

    return [
        function_permission("KMS permission", "insights_api", "DecryptBehaviourThroughDynamoDB", None,
                            lambda t: f"GET /pages/home → {http('GET', f'{alb}/pages/home')}",
                            lambda o: o.endswith("502"), "kms:Decrypt"),
        eni("stream_processor"),
        source_read("stream_processor", "ReadClickstream", "kinesis:GetRecords", target.output("kinesis_stream_arn")),
        key_statement(key, "CloudWatchLogsEncryptsThisStacksLogGroups", None, probe_log_group,
                      lambda o: o.endswith("AccessDeniedException"), "kms:GenerateDataKey"),
    ]


STACKS = {"video_streaming": _video, "hotel_booking": _hotel_booking, "clickstream": _clickstream}


def dev_sandbox(doc: str, stack_names: list[str], tool: str) -> tuple[str, Target]:
    """A mutation benchmark's command line (``--stack``) and the stack's running dev sandbox."""
    parser = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    parser.add_argument("--stack", choices=sorted(stack_names), default="video_streaming")
    stack = parser.parse_args().stack
    target = load_target({"TAPSTACK_STACK": stack, "TAPSTACK_ENV": "dev"})
    if not target.is_sandbox:
        raise SystemExit(f"{tool} runs against a sandbox: start one with `python -m tapharness.sandbox up`")
    print(f"{stack} (dev sandbox)")
    return stack, target


def main() -> int:
    stack, target = dev_sandbox(__doc__, list(STACKS), "iam_mutations")
    return 0 if run(target, STACKS[stack](target)) else 1


if __name__ == "__main__":
    raise SystemExit(main())
