"""The benchmark stack: functions, state machine, schedule, janitor, model role, results bucket, regression alarm."""
