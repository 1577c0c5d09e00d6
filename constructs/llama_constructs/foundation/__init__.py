"""The shared foundation: the isolated VPC, the weights bucket and the weights staging job."""
