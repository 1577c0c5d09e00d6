"""Where an engine's container image (TGI or vLLM) lives, for a concrete region or for any region at deploy time.

The registry account differs by region, and an environment-agnostic stack only learns its region at deploy
time. So the vendored table of the image's family (``catalog.images``: ``data/tgi_images.json``,
``data/vllm_images.json``) becomes a ``CfnMapping`` region -> account, read with
``Fn::FindInMap`` on ``AWS::Region``, and a template rule refuses a region without an image before any resource
is created. With a concrete region the URI and ARN are plain literals from the same table.
"""

from __future__ import annotations

import aws_cdk as cdk

from catalog.images import ContainerImage
from constructs import Construct


class ImageLocation(Construct):
    """Image URI and ECR repository ARN of one engine's image; used by the model and by its execution role."""

    def __init__(self, scope: Construct, construct_id: str, *, image: ContainerImage) -> None:
        super().__init__(scope, construct_id)
        self.image = image
        region = cdk.Stack.of(self).region
        self.mapping: cdk.CfnMapping | None = None
        if not cdk.Token.is_unresolved(region):
            # Raises ConfigError naming the region and the regions that have an image.
            self.uri: str = image.uri(region)
            self.repository_arn: str = image.repository_arn(region)
            return
        self.mapping = cdk.CfnMapping(
            self,
            "Registries",
            mapping={name: {"account": account} for name, account in sorted(image.registries.items())},
        )
        account = self.mapping.find_in_map(cdk.Aws.REGION, "account")
        self.uri = image.uri_in(account=account, region=cdk.Aws.REGION, domain=cdk.Aws.URL_SUFFIX)
        self.repository_arn = image.repository_arn_in(
            partition=cdk.Aws.PARTITION, region=cdk.Aws.REGION, account=account
        )
        cdk.CfnRule(
            self,
            "RegionHasImage",
            assertions=[
                cdk.CfnRuleAssertion(
                    assert_=cdk.Fn.condition_contains(sorted(image.registries), cdk.Aws.REGION),
                    assert_description=f"{image.engine_name} {image.version} has no SageMaker image in this region; "
                    f"deploy to one of: {', '.join(sorted(image.registries))}",
                )
            ],
        )


TgiImageLocation = ImageLocation  # its name when TGI was the only engine (the benchmark state machine imports it)
