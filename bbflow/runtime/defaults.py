"""The defaults of a robot's settings that ``bbflow.toml`` may change, given once for the runtime and for
the project file's reader (``bbflow.project``, which must not load the rest of the runtime)."""

#: runs that may wait for a robot busy with another (``[robot.NAME] queue``)
DEFAULT_QUEUE = 16
#: seconds a driver's ``connect`` hook may take before the start fails (``[robot.NAME] connect_timeout``)
DEFAULT_CONNECT_TIMEOUT = 30.0
