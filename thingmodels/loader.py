"""Load thing-model files and validate payloads against them."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from thingmodels.errors import ModelFileError, UnknownModelError
from thingmodels.schema import EventSpec, PropertySpec, ServiceSpec, ThingModelFile
from thingmodels.validate import validate_params
from thingmodels.yamlfile import read_yaml, validate_located

BUILTIN_DIR = Path(__file__).parent / "models"


@dataclass(frozen=True)
class ThingModel:
    """One product's model, with payload validation."""

    spec: ThingModelFile
    file: str

    @property
    def product(self) -> str:
        """The product name (a topic level)."""
        return self.spec.product

    def property(self, name: str) -> PropertySpec:
        """A declared property."""
        try:
            return self.spec.properties[name]
        except KeyError:
            raise UnknownModelError(f"{self.product} has no property {name!r}") from None

    def event(self, name: str) -> EventSpec:
        """A declared event."""
        try:
            return self.spec.events[name]
        except KeyError:
            raise UnknownModelError(f"{self.product} has no event {name!r}") from None

    def service(self, name: str) -> ServiceSpec:
        """A declared service."""
        try:
            return self.spec.services[name]
        except KeyError:
            raise UnknownModelError(f"{self.product} has no service {name!r}") from None

    def validate_properties(self, params: Any, *, lenient: bool = False) -> dict[str, Any]:
        """A property report: any subset of the declared properties."""
        return validate_params(
            self.spec.properties, params, f"{self.product}.prop", partial=True,
            allow_unknown=lenient,
        )

    def validate_event(self, name: str, params: Any, *, lenient: bool = False) -> dict[str, Any]:
        """An event's params."""
        return validate_params(
            self.event(name).params, params, f"{self.product}.{name}", allow_unknown=lenient
        )

    def validate_event_reply(self, name: str, params: Any) -> dict[str, Any]:
        """The cloud's decision on an event that waits for one."""
        spec = self.event(name)
        if spec.reply is None:
            raise UnknownModelError(f"{self.product}.{name} takes no reply")
        return validate_params(spec.reply, params, f"{self.product}.{name}.reply")

    def validate_input(self, name: str, params: Any) -> dict[str, Any]:
        """A service call's input."""
        return validate_params(self.service(name).input, params, f"{self.product}.{name}.input")

    def validate_output(self, name: str, params: Any) -> dict[str, Any]:
        """A service call's output."""
        return validate_params(
            self.service(name).output, params, f"{self.product}.{name}.output"
        )


def load_model(path: Path | str) -> ThingModel:
    """Load and validate one thing-model file."""
    doc = read_yaml(path)
    spec = validate_located(doc, ThingModelFile)
    stem = Path(path).stem
    if spec.product != stem:
        raise ModelFileError(
            str(path), "product", f"product {spec.product!r} must match the file name {stem!r}",
            doc.line_of(("product",)),
        )
    return ThingModel(spec=spec, file=str(path))


class ModelRegistry(Mapping[str, ThingModel]):
    """All thing models by product name."""

    def __init__(self, models: Mapping[str, ThingModel]) -> None:
        self._models = dict(models)

    def __getitem__(self, product: str) -> ThingModel:
        try:
            return self._models[product]
        except KeyError:
            raise UnknownModelError(f"no thing model for product {product!r}") from None

    def __iter__(self) -> Iterator[str]:
        return iter(self._models)

    def __len__(self) -> int:
        return len(self._models)

    @classmethod
    def load_dir(cls, directory: Path | str) -> ModelRegistry:
        """Load every ``*.yaml`` in a directory."""
        models: dict[str, ThingModel] = {}
        for path in sorted(Path(directory).glob("*.yaml")):
            model = load_model(path)
            models[model.product] = model
        return cls(models)


_BUILTIN: ModelRegistry | None = None


def builtin_models() -> ModelRegistry:
    """The models shipped with voltmesh (loaded once)."""
    global _BUILTIN  # noqa: PLW0603
    if _BUILTIN is None:
        _BUILTIN = ModelRegistry.load_dir(BUILTIN_DIR)
    return _BUILTIN
