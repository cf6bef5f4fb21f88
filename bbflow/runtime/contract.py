"""What the compiler and the runtime agree on, in a module that imports nothing.

The compiler reads these while checking; from here, a check never builds the
executable model's classes (``bbflow.runtime.model``) or loads the signal
machinery, which it does not use.
"""

#: The ABI of the executable model (``bbflow.runtime.model``): bumped whenever the shape of the model
#: changes; generated modules record the ABI they target and refuse to load against another one.
ABI = 4

#: The signal type of a robot's event ``e`` is this prefix and ``e``: routes may match it.
ROBOT_EVENT_PREFIX = "robot.event."
