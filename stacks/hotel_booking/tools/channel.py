"""The hotel-booking stack as its callers reach it: the booking API as a booking channel calls it
(signed as the stack's booking-client role) and the inventory table as onboarding loads it
(contract.md, "Items"). Shared by the integration suite and benchmarks/booking_load.py."""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request
import uuid
from datetime import UTC, datetime
from typing import Any

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from tapharness.deployed import Target


class BookingApi:
    """The booking API as a booking channel calls it: signed (SigV4) as the stack's booking-client
    role, which POST /book requires; ``signed=False`` calls as an anonymous client."""

    def __init__(self, target: Target) -> None:
        self.target = target
        self.base = str(target.output("api_invoke_url")).rstrip("/")
        self._credentials: Credentials | None = None
        self._lock = threading.Lock()

    def credentials(self) -> Credentials:
        with self._lock:
            if self._credentials is None:
                issued = self.target.client("sts").assume_role(
                    RoleArn=self.target.output("booking_client_role_arn"),
                    RoleSessionName="booking-channel")["Credentials"]
                self._credentials = Credentials(issued["AccessKeyId"], issued["SecretAccessKey"],
                                                issued["SessionToken"])
            return self._credentials

    def call(self, method: str, path: str, body: bytes | None = None,
             content_type: str = "application/json", signed: bool = True) -> tuple[int, Any]:
        headers = {"Content-Type": content_type}
        if signed:
            unsigned = AWSRequest(method=method, url=f"{self.base}{path}", data=body, headers=headers)
            SigV4Auth(self.credentials(), "execute-api", self.target.region).add_auth(unsigned)
            headers = dict(unsigned.headers.items())
        request = urllib.request.Request(f"{self.base}{path}", data=body, method=method, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                return response.status, json.loads(response.read() or b"null")
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read() or b"null")

    def book(self, property_id: str, room_id: str, check_in: str, nights: int = 1, units: int = 1,
             request_id: str | None = None, guest_id: str | None = None) -> tuple[int, Any]:
        body = {"request_id": request_id or str(uuid.uuid4()), "property_id": property_id, "room_id": room_id,
                "check_in": check_in, "nights": nights, "units": units,
                "guest_id": guest_id or f"guest-{uuid.uuid4().hex[:8]}"}
        return self.call("POST", "/book", json.dumps(body).encode())


class Inventory:
    """The inventory table, written directly as onboarding (outside the stack) would."""

    def __init__(self, target: Target) -> None:
        self.target = target
        self.name = str(target.output("dynamodb_table_name"))
        self.table = target.client("dynamodb")

    def add_property(self, rooms: dict[str, tuple[str, int]], pms_id: str = "opera") -> str:
        """A new property with rooms {room_id: (room_class, total_units)}; returns its id."""
        property_id = f"p{uuid.uuid4().hex[:10]}"
        self.table.put_item(TableName=self.name, Item={
            "pk": {"S": f"PROPERTY#{property_id}"}, "sk": {"S": "PROPERTY"}, "pms_id": {"S": pms_id},
            "rooms": {"M": {room: {"M": {"room_class": {"S": cls}, "total_units": {"N": str(total)}}}
                            for room, (cls, total) in rooms.items()}}})
        return property_id

    def open_night(self, property_id: str, room_id: str, stay_date: str, total: int) -> str:
        pk = f"{property_id}#{room_id}#{stay_date}"
        self.table.put_item(TableName=self.name, Item={
            "pk": {"S": pk}, "sk": {"S": "INVENTORY"}, "available_units": {"N": str(total)},
            "total_units": {"N": str(total)}, "version": {"N": "1"},
            "updated_at": {"S": datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")}})
        return pk

    def night(self, pk: str, region: str | None = None) -> dict[str, Any] | None:
        client = self.table if region is None else self.target.regional_client("dynamodb", region)
        item = client.get_item(TableName=self.name, Key={"pk": {"S": pk}, "sk": {"S": "INVENTORY"}},
                               ConsistentRead=region is None).get("Item")
        return None if item is None else {k: int(v["N"]) if "N" in v else v.get("S") for k, v in item.items()}

    def allocations(self, pk: str) -> list[str]:
        items = self.table.query(TableName=self.name, ConsistentRead=True,
                                 KeyConditionExpression="pk = :pk AND begins_with(sk, :b)",
                                 ExpressionAttributeValues={":pk": {"S": pk}, ":b": {"S": "BOOKING#"}})["Items"]
        return sorted(i["sk"]["S"] for i in items)
