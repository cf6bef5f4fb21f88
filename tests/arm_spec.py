"""The Arm interface of LANGUAGE.md section 4, built by hand for the driver tests."""

from bbflow.runtime import model
from bbflow.runtime.types import FLOAT, Enum, Record

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
        command("close_gripper", [model.Param("force", FLOAT, const(20.0))], GRIP),
        command("open_gripper", [], GRIP),
        command("home", [], POSE, category="motion"),
        command("read_force", [], FLOAT, readonly=True),
    ],
    events=[model.Event("force", Record((("newtons", FLOAT),)))],
)
