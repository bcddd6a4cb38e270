"""The process around the app: the embedded Granian server, thread scheduling, background tasks,
the operator lock, and the state one worker holds while serving (``runtime``)."""
