"""Structured JSON logging (Powertools Logger); the service name comes from POWERTOOLS_SERVICE_NAME."""

from __future__ import annotations

from aws_lambda_powertools import Logger

from tap_common import config


def logger() -> Logger:
    return Logger(level=config.optional("LOG_LEVEL", "INFO").upper())
