"""Plan-level checks every stack passes, as pytest tests.

A stack's ``tests/unit/stack/test_<check>.py`` imports the test functions of the check it runs
(pytest collects them there), so each stack's suite names the checks it is held to.
"""
