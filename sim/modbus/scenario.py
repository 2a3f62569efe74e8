"""Scripted scenarios: timed value changes, ramps and faults on simulated devices.

A scenario is a list of steps, each at a time since the scenario started::

    steps:
      - {at: 5s, set: {water: true}}                          # flood
      - {at: 0s, ramp: {temperature: {to: 55, over: 60s}}}    # cabinet heating up
      - {at: 10s, fault: {stuck: true}, device: 3}            # lock 3 jams: commands
                                                              # accepted, arm stays put

A step without ``device`` applies to every device whose map has all the properties it
names (``fault`` steps without ``device`` apply to all devices).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from sim.modbus.device import SimulatedDevice
from sim.modbus.errors import ScenarioError
from thingmodels.errors import ModelFileError
from thingmodels.schema import parse_duration
from thingmodels.yamlfile import read_yaml, validate_located

__all__ = ["Ramp", "ScenarioFile", "Step", "load_scenario", "run_scenario"]


def _seconds(value: Any) -> Any:
    return parse_duration(value) if isinstance(value, str) else value


Seconds = Annotated[float, Field(ge=0)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Ramp(_Strict):
    """Move a numeric property linearly from its value at the step to ``to``."""

    to: float
    over: Seconds
    every: Annotated[float, Field(gt=0)] = 0.1

    @field_validator("over", "every", mode="before")
    @classmethod
    def _durations(cls, value: Any) -> Any:
        return _seconds(value)


class Step(_Strict):
    """What happens ``at`` seconds after the scenario starts."""

    at: Seconds = 0.0
    device: int | None = Field(default=None, ge=1, le=247)
    set: dict[str, Any] = {}
    ramp: dict[str, Ramp] = {}
    fault: dict[str, bool] = {}
    note: str | None = None

    @field_validator("at", mode="before")
    @classmethod
    def _duration(cls, value: Any) -> Any:
        return _seconds(value)


class ScenarioFile(_Strict):
    """A scenario file: ``steps:`` and nothing else."""

    steps: list[Step]


def load_scenario(path: Path | str) -> list[Step]:
    """Read a scenario file (errors name the file and line)."""
    try:
        return validate_located(read_yaml(path), ScenarioFile).steps
    except ModelFileError as exc:
        raise ScenarioError(str(exc)) from exc


def _targets(step: Step, devices: Sequence[SimulatedDevice]) -> list[SimulatedDevice]:
    named = set(step.set) | set(step.ramp)
    if step.device is not None:
        chosen = [d for d in devices if d.device_id == step.device]
        if not chosen:
            raise ScenarioError(f"step at {step.at}s: no device {step.device}")
        missing = named - set(chosen[0].regmap.properties)
        if missing:
            raise ScenarioError(f"step at {step.at}s: device {step.device} has no "
                                f"{', '.join(sorted(missing))}")
        return chosen
    chosen = [d for d in devices if named <= set(d.regmap.properties)]
    if not chosen:
        raise ScenarioError(f"step at {step.at}s: no device has "
                            f"{', '.join(sorted(named))}")
    return chosen


async def run_scenario(devices: Sequence[SimulatedDevice], steps: Sequence[Step]) -> None:
    """Play ``steps`` on ``devices`` (returns once the last step and its ramps are done).

    Every step is checked against the devices before anything runs.
    """
    plan = [(step, _targets(step, devices)) for step in sorted(steps, key=lambda s: s.at)]
    loop = asyncio.get_running_loop()
    start = loop.time()
    async with asyncio.TaskGroup() as group:
        for step, targets in plan:
            await asyncio.sleep(max(0.0, start + step.at - loop.time()))
            for device in targets:
                for name, active in step.fault.items():
                    if active:
                        device.faults.add(name)
                    else:
                        device.faults.discard(name)
                device.update(step.set)
                for prop, ramp in step.ramp.items():
                    group.create_task(_ramp(device, prop, ramp),
                                      name=f"ramp {prop} on device {device.device_id}")


async def _ramp(device: SimulatedDevice, prop: str, ramp: Ramp) -> None:
    current = device.get(prop)
    if isinstance(current, bool) or not isinstance(current, int | float | Decimal):
        raise ScenarioError(f"cannot ramp {prop!r}: it is not numeric")
    begin = float(current)
    steps = max(1, round(ramp.over / ramp.every))
    for index in range(1, steps + 1):
        await asyncio.sleep(ramp.over / steps)
        device.set(prop, begin + (ramp.to - begin) * index / steps)
