"""A driver for a toy arm: the worked example of docs/drivers.md.

It implements the ``Arm`` interface of docs/language.md (robots)::

    robot Arm {
        states idle, busy
        limit motion 1
        command move_to(target: Pose, speed: float = 0.5) -> Pose category motion timeout 10s
        command close_gripper(force: float = 20.0) -> Grip undo open_gripper()
        command open_gripper() -> Grip
        command home() -> Pose category motion
        command read_force() -> float readonly
        event force: {newtons: float}
    }

The "hardware" is a few fields in memory moved by a 100 Hz control loop, so
the example runs anywhere; a real driver sends the same decisions to its
controller. Configure it in bbflow.toml::

    [robot.arm]
    interface = "cell.Arm"
    driver = "toy_arm:ToyArm"

    [robot.arm.options]
    max_speed = 0.8            # metres per second at speed 1.0
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Mapping
from typing import Any

from bbflow.runtime.driver import Driver, DriverHandle

HOME = {"x": 0.0, "y": 0.0, "z": 0.5}
CONTROL_PERIOD = 0.01  # seconds between two control-loop ticks
GRIPPER_TIME = 0.2  # seconds to open or close the gripper
FORCE_PERIOD = 0.05  # the wrist's force sensor reports at 20 Hz while the gripper holds


class ToyArm(Driver):
    def __init__(self, handle: DriverHandle, options: Mapping[str, Any]) -> None:
        super().__init__(handle, options)
        self.max_speed = float(options.get("options", {}).get("max_speed", 1.0))
        self.position = dict(HOME)
        self.gripper = "open"
        self.grip_force = 0.0
        self.powered = False
        self.connected = False
        self._sensor: asyncio.Task[None] | None = None

    # --- lifecycle -----------------------------------------------------------------

    async def connect(self) -> None:
        self.connected = True  # a real driver opens its connection here
        self._sensor = asyncio.create_task(self._force_sensor())

    async def disconnect(self) -> None:
        if self._sensor is not None:  # the driver owns this task: stop it and wait for it
            self._sensor.cancel()
            try:
                await self._sensor
            except asyncio.CancelledError:
                pass
        self.connected = False

    async def arm(self) -> None:
        self.powered = True  # release the brakes

    async def disarm(self) -> None:
        self.powered = False  # brakes on: nothing moves any more

    # --- commands --------------------------------------------------------------------

    async def move_to(self, target: dict[str, float], speed: float) -> dict[str, float]:
        self.handle.set_state("busy")
        try:
            await self._travel(target, speed)
        finally:  # also when cancelled: the arm has stopped where it is
            self.handle.set_state("idle")
        return dict(self.position)

    async def home(self) -> dict[str, float]:
        return await self.move_to(HOME, 1.0)

    async def close_gripper(self, force: float) -> str:
        await asyncio.sleep(GRIPPER_TIME)
        self.gripper, self.grip_force = "closed", force
        return "closed"  # the force sensor reports the grip from its next reading on

    async def open_gripper(self) -> str:
        await asyncio.sleep(GRIPPER_TIME)
        self.gripper, self.grip_force = "open", 0.0
        return "open"

    async def read_force(self) -> float:
        return self.grip_force

    # --- the control loop and the sensor -----------------------------------------------

    async def _force_sensor(self) -> None:
        """Publish the grip force periodically while the gripper holds, like a wrist sensor.

        A flow waits for a reading with ``wait_event(force) where ...`` after it
        closes the gripper: readings keep coming, so it never misses the grip.
        """
        while True:
            await asyncio.sleep(FORCE_PERIOD)
            if self.gripper == "closed":
                self.handle.publish("force", {"newtons": self.grip_force})

    async def _travel(self, target: Mapping[str, float], speed: float) -> None:
        """Move in a straight line; a cancellation stops the arm at the current tick."""
        if not 0.0 < speed <= 1.0:
            raise ValueError(f"speed must be in (0, 1], got {speed}")
        step = self.max_speed * speed * CONTROL_PERIOD
        while (left := _distance(self.position, target)) > 0.0:
            await asyncio.sleep(CONTROL_PERIOD)
            if left <= step:
                self.position = {k: float(target[k]) for k in "xyz"}
            else:
                for k in "xyz":
                    self.position[k] += (target[k] - self.position[k]) * step / left


def _distance(a: Mapping[str, float], b: Mapping[str, float]) -> float:
    return math.dist([a[k] for k in "xyz"], [b[k] for k in "xyz"])
