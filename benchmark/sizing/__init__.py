"""From measurement to deployment: SLO and goodput, capacity per instance, capacity plan, all-in cost, config file.

``python -m benchmark size sweep`` measures, ``python -m benchmark size plan`` decides and writes the config file
that ``cdk synth -c config=FILE`` deploys. No CDK or settings import here (the config is checked through the
catalog's ``DeploymentConfig``, as synth checks it).
"""
