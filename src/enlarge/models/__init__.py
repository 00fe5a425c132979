"""The model family: registry, network modules and model cards."""

from enlarge.models.registry import SPECS, Descriptor, LoadedModel, build, create, load_model, parameter_count

__all__ = ["SPECS", "Descriptor", "LoadedModel", "build", "create", "load_model", "parameter_count"]
