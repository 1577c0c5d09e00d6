"""The benchmark's notification topic: run summaries and failures, regression alarms. Encrypted, TLS-only."""

from __future__ import annotations

from dataclasses import dataclass

from aws_cdk import aws_kms as kms
from aws_cdk import aws_sns as sns

from constructs import Construct


@dataclass(frozen=True, kw_only=True)
class NotificationTopicProps:
    key: kms.IKey


class NotificationTopic(Construct):
    """Exposes ``.topic`` (the default child, so its logical id is this construct's)."""

    def __init__(self, scope: Construct, construct_id: str, *, props: NotificationTopicProps) -> None:
        super().__init__(scope, construct_id)
        self.topic = sns.Topic(self, "Default", master_key=props.key, enforce_ssl=True)
