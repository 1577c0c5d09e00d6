"""The benchmark stack: its functions, state machine, schedule, janitor, results bucket, topic and alarm."""
