"""Second line of defence: delete benchmark endpoints (and their configs and models) that outlived their TTL.

Only resources tagged ``llama-benchmark=true`` are candidates; an untagged endpoint is never touched, whatever
its name. The TTL comes from the resource's ``llama-benchmark-ttl-hours`` tag (the default when absent).
The role's delete permissions carry the same tag condition, so a bug here cannot widen what is deleted.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from botocore.exceptions import ClientError

TAG_KEY = "llama-benchmark"
TTL_TAG_KEY = "llama-benchmark-ttl-hours"


@dataclass
class JanitorReport:
    deleted_endpoints: list[str] = field(default_factory=list)
    deleted_configs: list[str] = field(default_factory=list)
    deleted_models: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def _tags(client: Any, arn: str) -> dict[str, str]:
    tags = client.list_tags(ResourceArn=arn).get("Tags", [])
    return {t["Key"]: t["Value"] for t in tags}


def expired(tags: dict[str, str], created: datetime, now: datetime, default_ttl_hours: float) -> bool:
    if tags.get(TAG_KEY) != "true":
        return False
    try:
        ttl = float(tags.get(TTL_TAG_KEY, default_ttl_hours))
    except ValueError:
        ttl = default_ttl_hours
    return created + timedelta(hours=ttl) <= now


def _delete(report: JanitorReport, bucket: list[str], name: str, call: Any, **kwargs: str) -> None:
    try:
        call(**kwargs)
        bucket.append(name)
    except ClientError as err:
        if "Could not find" not in str(err) and err.response["Error"]["Code"] != "ResourceNotFound":
            report.errors.append(f"{name}: {err}")


def sweep(client: Any, *, now: datetime, default_ttl_hours: float = 6.0, name_prefix: str = "") -> JanitorReport:
    """One pass over endpoints, then over orphan configs and models (from creates that failed half-way)."""
    report = JanitorReport()
    for page in client.get_paginator("list_endpoints").paginate():
        for ep in page["Endpoints"]:
            name = ep["EndpointName"]
            if not expired(_tags(client, ep["EndpointArn"]), ep["CreationTime"], now, default_ttl_hours):
                report.kept.append(name)
                continue
            _delete(report, report.deleted_endpoints, name, client.delete_endpoint, EndpointName=name)
    for page in client.get_paginator("list_endpoint_configs").paginate(NameContains=name_prefix):
        for cfg in page["EndpointConfigs"]:
            name = cfg["EndpointConfigName"]
            if expired(_tags(client, cfg["EndpointConfigArn"]), cfg["CreationTime"], now, default_ttl_hours):
                _delete(report, report.deleted_configs, name, client.delete_endpoint_config, EndpointConfigName=name)
    for page in client.get_paginator("list_models").paginate(NameContains=name_prefix):
        for model in page["Models"]:
            name = model["ModelName"]
            if expired(_tags(client, model["ModelArn"]), model["CreationTime"], now, default_ttl_hours):
                _delete(report, report.deleted_models, name, client.delete_model, ModelName=name)
    return report
