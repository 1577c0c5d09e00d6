"""One TGI endpoint: its image, execution role, endpoint with blue/green updates, autoscaling and alarms."""
