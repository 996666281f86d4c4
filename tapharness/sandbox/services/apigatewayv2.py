"""API Gateway v2: what moto 5.2.5 lacks for WebSocket APIs and for stages the provider updates.

- Deployments (CreateDeployment, GetDeployment(s), UpdateDeployment, DeleteDeployment): moto does
  not route ``/v2/apis/{apiId}/deployments`` (404), so ``aws_apigatewayv2_deployment`` failed. A
  deployment of an API without a route is refused as AWS refuses it ("At least one route is
  required before deploying the Api."); naming a stage makes it that stage's deployment.
- UpdateStage (moto answered 500), and a stage's ``deploymentId`` in every answer (moto kept the
  one given at creation but never returned it, so the provider planned to set it forever).
- GetRouteResponses and UpdateRouteResponse (moto answered 500).

State lives on moto's own models (a deployment table per API, the deployment on its stage), so
a reset clears it with them. A deployment keeps a copy of the API's routes and integrations as
they were: a stage without ``autoDeploy`` serves that copy (``websocket``, the data plane), so a
change takes effect with the next deployment, as on AWS.
"""

from __future__ import annotations

import copy
import json
import random
import string
from datetime import UTC, datetime
from typing import Any
from urllib.parse import unquote

from moto.apigatewayv2 import urls as apigatewayv2_urls
from moto.apigatewayv2.exceptions import BadRequestException, StageNotFound
from moto.apigatewayv2.models import Api, Stage
from moto.apigatewayv2.responses import ApiGatewayV2Response
from moto.core.exceptions import JsonRESTError

from tapharness.sandbox.patches import patch

_STAGE_FIELDS = {  # UpdateStage's body field -> the Stage attribute moto keeps it in
    "accessLogSettings": "access_log_settings", "autoDeploy": "auto_deploy",
    "clientCertificateId": "client_certificate_id", "defaultRouteSettings": "default_route_settings",
    "description": "description", "routeSettings": "route_settings", "stageVariables": "stage_variables",
}


class DeploymentNotFound(JsonRESTError):
    code = 404

    def __init__(self, deployment_id: str) -> None:
        super().__init__("NotFoundException", f"Invalid Deployment identifier specified {deployment_id}")


def _deployments(api: Api) -> dict[str, dict[str, Any]]:
    return api.__dict__.setdefault("_sandbox_deployments", {})


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _segments(response: ApiGatewayV2Response) -> list[str]:
    """The request path's segments after /v2 (``apis``, the API id, ...)."""
    return [unquote(s) for s in response.path.split("?", 1)[0].split("/")[2:]]


# --- Deployments -----------------------------------------------------------------------------

@patch(ApiGatewayV2Response, "create_deployment")
def create_deployment(self: ApiGatewayV2Response) -> Any:
    api = self.apigatewayv2_backend.get_api(_segments(self)[1])
    params = json.loads(self.body or "{}")
    if not api.routes:
        raise BadRequestException("At least one route is required before deploying the Api.")
    stage = api.get_stage(params["stageName"]) if params.get("stageName") else None
    deployment = {"autoDeployed": False, "createdDate": _now(), "deploymentStatus": "DEPLOYED",
                  "deploymentId": "".join(random.choices(string.ascii_lowercase + string.digits, k=6))}
    if params.get("description"):
        deployment["description"] = params["description"]
    _deployments(api)[deployment["deploymentId"]] = deployment
    api.__dict__.setdefault("_sandbox_snapshots", {})[deployment["deploymentId"]] = (
        copy.deepcopy(api.routes), copy.deepcopy(api.integrations))
    if stage is not None:
        stage.config["deploymentId"] = deployment["deploymentId"]
        stage.updated = datetime.now()
    return json.dumps(deployment), {"status": 201}


def _deployment(self: ApiGatewayV2Response) -> tuple[Api, dict[str, Any]]:
    segments = _segments(self)
    api = self.apigatewayv2_backend.get_api(segments[1])
    found = _deployments(api).get(segments[3])
    if found is None:
        raise DeploymentNotFound(segments[3])
    return api, found


@patch(ApiGatewayV2Response, "get_deployment")
def get_deployment(self: ApiGatewayV2Response) -> Any:
    return json.dumps(_deployment(self)[1]), {"status": 200}


@patch(ApiGatewayV2Response, "get_deployments")
def get_deployments(self: ApiGatewayV2Response) -> Any:
    api = self.apigatewayv2_backend.get_api(_segments(self)[1])
    return json.dumps({"items": list(_deployments(api).values())}), {"status": 200}


@patch(ApiGatewayV2Response, "update_deployment")
def update_deployment(self: ApiGatewayV2Response) -> Any:
    _, deployment = _deployment(self)
    description = json.loads(self.body or "{}").get("description")
    if description is not None:
        deployment["description"] = description
    return json.dumps(deployment), {"status": 200}


@patch(ApiGatewayV2Response, "delete_deployment")
def delete_deployment(self: ApiGatewayV2Response) -> Any:
    api, deployment = _deployment(self)
    in_use = [s.name for s in api.stages.values() if s.config.get("deploymentId") == deployment["deploymentId"]]
    if in_use:  # AWS keeps a stage's active deployment
        raise BadRequestException(f"Active stages pointing to this deployment must be moved or deleted: {in_use}")
    del _deployments(api)[deployment["deploymentId"]]
    return "", {"status": 204}


patch.url(apigatewayv2_urls, "{0}/v2/apis/(?P<api_id>[^/]+)/deployments$", ApiGatewayV2Response.dispatch)
patch.url(apigatewayv2_urls, "{0}/v2/apis/(?P<api_id>[^/]+)/deployments/(?P<deployment_id>[^/]+)$",
          ApiGatewayV2Response.dispatch)


# --- Stages ----------------------------------------------------------------------------------

_stage_to_json = Stage.to_json


@patch(Stage, "to_json")
def stage_to_json(self: Stage) -> dict[str, Any]:
    answer = _stage_to_json(self)
    if self.config.get("deploymentId"):
        answer["deploymentId"] = self.config["deploymentId"]
    return answer


@patch(ApiGatewayV2Response, "update_stage")
def update_stage(self: ApiGatewayV2Response) -> Any:
    segments = _segments(self)
    api = self.apigatewayv2_backend.get_api(segments[1])
    if segments[3] not in api.stages:
        raise StageNotFound()
    stage = api.stages[segments[3]]
    params = json.loads(self.body or "{}")
    if params.get("deploymentId") and params["deploymentId"] not in _deployments(api):
        raise DeploymentNotFound(params["deploymentId"])
    for field, attribute in _STAGE_FIELDS.items():
        if field in params:
            setattr(stage, attribute, params[field])
    if "deploymentId" in params:
        stage.config["deploymentId"] = params["deploymentId"]
    stage.updated = datetime.now()
    return json.dumps(stage.to_json()), {"status": 200}


# --- Route responses -------------------------------------------------------------------------

@patch(ApiGatewayV2Response, "get_route_responses")
def get_route_responses(self: ApiGatewayV2Response) -> Any:
    segments = _segments(self)
    route = self.apigatewayv2_backend.get_route(segments[1], segments[3])
    return json.dumps({"items": [r.to_json() for r in route.route_responses.values()]}), {"status": 200}


@patch(ApiGatewayV2Response, "update_route_response")
def update_route_response(self: ApiGatewayV2Response) -> Any:
    segments = _segments(self)
    route = self.apigatewayv2_backend.get_route(segments[1], segments[3])
    route_response = route.get_route_response(segments[5])
    params = json.loads(self.body or "{}")
    for field, attribute in (("routeResponseKey", "route_response_key"), ("responseModels", "response_models"),
                             ("modelSelectionExpression", "model_selection_expression")):
        if field in params:
            setattr(route_response, attribute, params[field])
    return json.dumps(route_response.to_json()), {"status": 200}
