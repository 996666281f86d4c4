"""Every environment variable a handler reads is set on its function, in every environment."""

from tapharness.checks.environment import (
    test_every_variable_the_handler_reads_is_set_on_its_function,
    test_function_is_built_from_the_package_the_inventory_names,
)

__all__ = ["test_every_variable_the_handler_reads_is_set_on_its_function",
           "test_function_is_built_from_the_package_the_inventory_names"]
