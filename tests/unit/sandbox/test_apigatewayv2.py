"""API Gateway v2 control plane: deployments, stage updates and route responses answer as AWS's do
(moto 5.2.5 answered 404 or 500 to each)."""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import ClientError

from .helpers import unique


def websocket_api(aws: Any, routes: tuple[str, ...] = ("$connect", "$default")) -> tuple[str, dict[str, str]]:
    """A WebSocket API with a MOCK integration behind each route: (api id, route key -> route id)."""
    client = aws("apigatewayv2")
    api_id = client.create_api(Name=unique("ws"), ProtocolType="WEBSOCKET",
                               RouteSelectionExpression="$request.body.action")["ApiId"]
    integration = client.create_integration(ApiId=api_id, IntegrationType="MOCK")["IntegrationId"]
    route_ids = {key: client.create_route(ApiId=api_id, RouteKey=key, Target=f"integrations/{integration}")["RouteId"]
                 for key in routes}
    return api_id, route_ids


def test_a_deployment_named_for_a_stage_becomes_that_stages_deployment(aws: Any) -> None:
    client = aws("apigatewayv2")
    api_id, _ = websocket_api(aws)
    client.create_stage(ApiId=api_id, StageName="live")
    deployment = client.create_deployment(ApiId=api_id, StageName="live", Description="first")
    assert deployment["DeploymentStatus"] == "DEPLOYED" and deployment["Description"] == "first"
    assert client.get_stage(ApiId=api_id, StageName="live")["DeploymentId"] == deployment["DeploymentId"]
    assert [d["DeploymentId"] for d in client.get_deployments(ApiId=api_id)["Items"]] == [deployment["DeploymentId"]]
    assert client.get_deployment(ApiId=api_id, DeploymentId=deployment["DeploymentId"])["Description"] == "first"


def test_an_api_without_routes_cannot_be_deployed(aws: Any) -> None:
    client = aws("apigatewayv2")
    api_id = client.create_api(Name=unique("ws"), ProtocolType="WEBSOCKET",
                               RouteSelectionExpression="$request.body.action")["ApiId"]
    with pytest.raises(ClientError) as refused:
        client.create_deployment(ApiId=api_id)
    assert refused.value.response["Error"]["Code"] == "BadRequestException"
    assert "At least one route is required" in refused.value.response["Error"]["Message"]


def test_a_deployment_that_does_not_exist_is_not_found(aws: Any) -> None:
    api_id, _ = websocket_api(aws)
    with pytest.raises(ClientError) as missing:
        aws("apigatewayv2").get_deployment(ApiId=api_id, DeploymentId="nope42")
    assert missing.value.response["Error"]["Code"] == "NotFoundException"


def test_a_stages_active_deployment_cannot_be_deleted_until_the_stage_moves_on(aws: Any) -> None:
    client = aws("apigatewayv2")
    api_id, _ = websocket_api(aws)
    client.create_stage(ApiId=api_id, StageName="live")
    first = client.create_deployment(ApiId=api_id, StageName="live")["DeploymentId"]
    with pytest.raises(ClientError) as refused:
        client.delete_deployment(ApiId=api_id, DeploymentId=first)
    assert refused.value.response["Error"]["Code"] == "BadRequestException"
    second = client.create_deployment(ApiId=api_id)["DeploymentId"]
    client.update_stage(ApiId=api_id, StageName="live", DeploymentId=second)
    client.delete_deployment(ApiId=api_id, DeploymentId=first)
    assert [d["DeploymentId"] for d in client.get_deployments(ApiId=api_id)["Items"]] == [second]


def test_update_stage_changes_what_it_names_and_keeps_the_rest(aws: Any) -> None:
    client = aws("apigatewayv2")
    api_id, _ = websocket_api(aws)
    client.create_stage(ApiId=api_id, StageName="live", StageVariables={"a": "1"}, Description="before")
    updated = client.update_stage(ApiId=api_id, StageName="live", DefaultRouteSettings={
        "ThrottlingBurstLimit": 50, "ThrottlingRateLimit": 25.0})
    assert updated["DefaultRouteSettings"]["ThrottlingBurstLimit"] == 50
    stage = client.get_stage(ApiId=api_id, StageName="live")
    assert stage["DefaultRouteSettings"]["ThrottlingRateLimit"] == 25.0
    assert (stage["StageVariables"], stage["Description"]) == ({"a": "1"}, "before")


def test_update_stage_of_a_missing_stage_or_to_a_missing_deployment_is_not_found(aws: Any) -> None:
    client = aws("apigatewayv2")
    api_id, _ = websocket_api(aws)
    client.create_stage(ApiId=api_id, StageName="live")
    for kwargs in ({"StageName": "nowhere"}, {"StageName": "live", "DeploymentId": "nope42"}):
        with pytest.raises(ClientError) as missing:
            client.update_stage(ApiId=api_id, **kwargs)
        assert missing.value.response["Error"]["Code"] == "NotFoundException"


def test_route_responses_are_listed_and_updated(aws: Any) -> None:
    client = aws("apigatewayv2")
    api_id, routes = websocket_api(aws)
    created = client.create_route_response(ApiId=api_id, RouteId=routes["$default"], RouteResponseKey="$default")
    listed = client.get_route_responses(ApiId=api_id, RouteId=routes["$default"])["Items"]
    assert [r["RouteResponseId"] for r in listed] == [created["RouteResponseId"]]
    updated = client.update_route_response(ApiId=api_id, RouteId=routes["$default"],
                                           RouteResponseId=created["RouteResponseId"],
                                           ModelSelectionExpression="$request.body.kind")
    assert updated["ModelSelectionExpression"] == "$request.body.kind"
    assert client.get_route_response(ApiId=api_id, RouteId=routes["$default"],
                                      RouteResponseId=created["RouteResponseId"])["RouteResponseKey"] == "$default"
