import os

import boto3
from words import phrase

TABLE = boto3.resource("dynamodb").Table(os.environ["TABLE"])


def handle(event, context):
    said = phrase(os.environ["GREETING"], event["name"])
    TABLE.put_item(Item={"name": event["name"], "said": said})
    return {"said": said}
