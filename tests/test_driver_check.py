"""check_driver: does a driver class implement its robot interface (BBF601)?"""

from arm_spec import ARM, command, robot

from bbflow.runtime import model
from bbflow.runtime.driver import Driver
from bbflow.runtime.driver_check import check_driver
from bbflow.runtime.types import FLOAT


class Complete(Driver):
    async def move_to(self, target, speed=0.5):
        return target

    async def close_gripper(self, force):
        return "closed"

    async def open_gripper(self):
        return "open"

    async def home(self):
        return {"x": 0.0, "y": 0.0, "z": 0.0}

    async def read_force(self):
        return 0.0

    async def arm(self):
        pass

    async def disarm(self):
        pass


def variant(**methods):
    return type("Variant", (Complete,), methods)


def test_a_complete_driver_has_no_problems():
    assert check_driver(Complete, ARM) == []


def test_a_missing_command_is_named_with_its_parameters():
    class Partial(Driver):
        async def open_gripper(self):
            return "open"

        async def home(self):
            return {}

        async def read_force(self):
            return 0.0

    assert check_driver(Partial, ARM) == [
        "missing command move_to(target, speed)",
        "missing command close_gripper(force)",
    ]


def test_a_command_must_be_async():
    def home(self):
        return {}

    assert check_driver(variant(home=home), ARM) == ["home: must be declared with async def"]


def test_a_renamed_parameter_is_reported():
    async def move_to(self, target, velocity):
        return target

    assert check_driver(variant(move_to=move_to), ARM) == [
        "move_to: parameters differ from move_to(target, speed): the driver's move_to(target, velocity) "
        "does not accept speed by keyword and requires undeclared velocity"
    ]


def test_parameters_that_cannot_be_given_by_keyword_are_reported():
    async def close_gripper(self, force, /):
        return "closed"

    problems = check_driver(variant(close_gripper=close_gripper), ARM)
    assert problems == [
        "close_gripper: parameters differ from close_gripper(force): the driver's close_gripper(force, /) "
        "does not accept force by keyword"
    ]


def test_extra_optional_parameters_and_keyword_catch_alls_are_fine():
    async def move_to(self, target, speed, *, blend=0.0):
        return target

    async def close_gripper(self, **kwargs):
        return "closed"

    assert check_driver(variant(move_to=move_to, close_gripper=close_gripper), ARM) == []


def test_static_methods_are_checked_without_dropping_a_parameter():
    async def read_force():
        return 1.0

    assert check_driver(variant(read_force=staticmethod(read_force)), ARM) == []


def test_a_generic_driver_accepts_every_command():
    class Bridge(Driver):
        async def run_command(self, name, kwargs):
            return None

    assert check_driver(Bridge, ARM) == []


def test_a_generic_driver_must_be_async_and_take_name_and_kwargs():
    class SyncBridge(Driver):
        def run_command(self, name, kwargs):
            return None

    class NarrowBridge(Driver):
        async def run_command(self, name):
            return None

    assert check_driver(SyncBridge, ARM) == ["SyncBridge.run_command: must be declared with async def"]
    assert check_driver(NarrowBridge, ARM) == ["NarrowBridge.run_command: must take (name, kwargs)"]


def test_the_constructor_must_take_handle_and_options():
    class NoOptions(Complete):
        def __init__(self, handle):
            self.handle = handle

    assert check_driver(NoOptions, ARM) == ["NoOptions cannot be created as NoOptions(handle, options)"]


def test_hooks_must_be_async():
    def disarm(self):
        pass

    assert check_driver(variant(disarm=disarm), ARM) == ["Variant.disarm: a lifecycle hook must be declared with async def"]


def test_a_command_named_like_a_hook_is_checked_as_a_command():
    spec = robot([command("connect", [model.Param("port", FLOAT)])])

    class Plug(Driver):
        async def connect(self, port):
            return port

    class Unplugged(Driver):
        async def connect(self):
            return 0.0

    assert check_driver(Plug, spec) == []
    assert check_driver(Unplugged, spec)[0].startswith("connect: parameters differ from connect(port)")


def test_something_that_is_not_a_class():
    assert check_driver(42, ARM) == ["42 is not a class"]


def test_a_factory_function_is_checked_by_its_signature_and_what_it_says_it_makes():
    def make(handle, options):  # what it makes is known only when it runs: bbflow run checks it then
        return Complete(handle, options)

    def annotated(handle, options) -> Complete:
        return Complete(handle, options)

    def annotated_incomplete(handle, options) -> Driver:
        return Driver(handle, options)

    def no_options(handle):
        return Complete(handle, {})

    assert check_driver(make, ARM) == []
    assert check_driver(annotated, ARM) == []
    assert check_driver(annotated_incomplete, ARM)[0] == "missing command move_to(target, speed)"
    assert check_driver(no_options, ARM) == ["no_options cannot be created as no_options(handle, options)"]
