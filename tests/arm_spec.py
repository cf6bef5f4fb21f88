"""The Arm interface of docs/language.md (robots), the one copy the tests share: as ``.flow`` text and built by hand.

``ARM_FLOW`` is the interface as a program declares it (``Pose``, ``Grip``
and ``robot Arm``); ``arm_robot(*extra)`` is its ``robot Arm`` block with
more lines for a test that needs them. ``ARM`` is the same interface as the
``model.Robot`` generated code builds, for the runtime tests that run
without the compiler (tests/test_arm_spec.py keeps the two in step).
"""

from bbflow.runtime import model
from bbflow.runtime.types import FLOAT, Enum, Record

POSE_TYPE = "type Pose = {x: float, y: float, z: float}"
GRIP_ENUM = "enum Grip { open, closed }"
_ARM_LINES = (
    "states idle, busy",
    "limit motion 1",
    "command move_to(target: Pose, speed: float = 0.5) -> Pose category motion timeout 10s",
    "command close_gripper(force: float = 20.0) -> Grip undo open_gripper()",
    "command open_gripper() -> Grip",
    "command home() -> Pose category motion",
    "command read_force() -> float readonly",
    "event force: {newtons: float}",
)


def arm_robot(*extra: str) -> str:
    """The ``robot Arm { ... }`` block, with ``extra`` lines (``command wave() -> bool``) at its end."""
    return "robot Arm {\n" + "".join(f"    {line}\n" for line in (*_ARM_LINES, *extra)) + "}"


ARM_FLOW = f"{POSE_TYPE}\n{GRIP_ENUM}\n\n{arm_robot()}\n"

POSE = Record((("x", FLOAT), ("y", FLOAT), ("z", FLOAT)))
GRIP = Enum("Grip", ("open", "closed"))


def const(value):
    return lambda scope: value


def command(name, params=(), result=FLOAT, **options):
    return model.Command(name, tuple(params), result, **options)


def robot(commands, *, states=("idle", "busy"), limits=(("motion", 1),), events=None, name="Arm"):
    return model.Robot(
        name=name,
        qualname=f"cell.{name}",
        states=states,
        limits=limits,
        commands={c.name: c for c in commands},
        events={e.name: e for e in (events or ())},
    )


ARM = robot(
    [
        command(
            "move_to",
            [model.Param("target", POSE), model.Param("speed", FLOAT, const(0.5))],
            POSE,
            category="motion",
            timeout=10.0,
        ),
        command("close_gripper", [model.Param("force", FLOAT, const(20.0))], GRIP,
                undo=model.CommandCall("open_gripper", lambda scope: {})),
        command("open_gripper", [], GRIP),
        command("home", [], POSE, category="motion"),
        command("read_force", [], FLOAT, readonly=True),
    ],
    events=[model.Event("force", Record((("newtons", FLOAT),)))],
)
