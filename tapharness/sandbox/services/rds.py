"""RDS: new instances with AWS's default CA, the Performance Insights settings moto drops, and
ScalingConfigurationInfo only for serverless v1 clusters."""

from __future__ import annotations

from typing import Any

from moto.rds.models import DBCluster, RDSBackend

from tapharness.sandbox.patches import patch

_CREATE_DB_INSTANCE = RDSBackend.create_db_instance
RDS_DEFAULT_CA = "rds-ca-rsa2048-g1"


@patch(RDSBackend, "create_db_instance")
def _create_db_instance(self: RDSBackend, db_kwargs: dict[str, Any]) -> Any:
    """New instances get AWS's current default CA (moto says "rds-ca-default", which makes the
    provider modify and reboot every new instance, with a 30 s wait each)."""
    instance = _CREATE_DB_INSTANCE(self, db_kwargs)
    if not db_kwargs.get("ca_certificate_identifier"):
        instance.ca_certificate_identifier = RDS_DEFAULT_CA
    _set_performance_insights(instance, db_kwargs)
    return instance


_MODIFY_DB_INSTANCE = RDSBackend.modify_db_instance


def _set_performance_insights(instance: Any, db_kwargs: dict[str, Any]) -> None:
    """Keep the Performance Insights settings moto accepts but drops."""
    if db_kwargs.get("enable_performance_insights") is not None:
        instance.performance_insights_enabled = bool(db_kwargs["enable_performance_insights"])
    for key in ("performance_insights_kms_key_id", "performance_insights_retention_period"):
        if db_kwargs.get(key) is not None:
            setattr(instance, key, db_kwargs[key])


@patch(RDSBackend, "modify_db_instance")
def _modify_db_instance(self: RDSBackend, db_instance_identifier: str, db_kwargs: dict[str, Any]) -> Any:
    instance = _MODIFY_DB_INSTANCE(self, db_instance_identifier, db_kwargs)
    _set_performance_insights(instance, db_kwargs)
    return instance


def _scaling_configuration_info(self: DBCluster) -> dict[str, Any] | None:
    """Only serverless v1 clusters have ScalingConfigurationInfo (moto answers {} for every cluster,
    which the provider turns into a scaling_configuration block with defaults to change)."""
    if not self.scaling_configuration:
        return None
    return _SCALING_CONFIGURATION_INFO.fget(self)


_SCALING_CONFIGURATION_INFO = DBCluster.scaling_configuration_info


patch.replace(DBCluster, "scaling_configuration_info", property(_scaling_configuration_info))
