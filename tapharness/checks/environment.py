"""Every environment variable a handler reads is set on its function, in every environment."""

from __future__ import annotations

from pathlib import Path

import pytest

from tapharness.handler_env import env_reads
from tapharness.inventory import Inventory
from tapharness.lambdas import LAMBDAS
from tapharness.plan import PlanSummary

FUNCTIONS = sorted(Inventory.load().functions)
# Set by the Lambda runtime itself, never by the stack.
RUNTIME_VARIABLES = {"AWS_REGION", "AWS_DEFAULT_REGION", "AWS_LAMBDA_FUNCTION_NAME", "AWS_LAMBDA_FUNCTION_VERSION",
                     "AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "AWS_LAMBDA_LOG_GROUP_NAME", "_HANDLER", "LAMBDA_TASK_ROOT"}


def function_values(plan: PlanSummary, function: str) -> dict:
    return plan.values[f'aws_lambda_function.this["{function}"]']


def package_of(plan: PlanSummary, function: str) -> str:
    return Path(function_values(plan, function)["filename"]).stem


@pytest.mark.parametrize("function", FUNCTIONS)
def test_function_is_built_from_the_package_the_inventory_names(dev: PlanSummary, function: str) -> None:
    assert package_of(dev, function) == Inventory.load().functions[function]["source"]


@pytest.mark.parametrize("function", FUNCTIONS)
def test_every_variable_the_handler_reads_is_set_on_its_function(plan: PlanSummary, function: str) -> None:
    values = function_values(plan, function)
    reads = env_reads(LAMBDAS, package_of(plan, function), values["handler"]) - RUNTIME_VARIABLES
    assert reads, f"found no environment reads in {function}'s handler: the scan is broken"
    variables = set(plan.outputs["lambda_environment_variable_names"][function])
    missing = sorted(reads - variables)
    assert not missing, f"{function} reads {missing}, which the stack does not set (the handler would default or fail)"
