"""One endpoint on TGI or vLLM: its image, execution role, endpoint with blue/green updates, autoscaling and alarms."""
