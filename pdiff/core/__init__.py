"""The ground floor: config and presets, errors, name registries, the run folder and its safety,
limits, runtime (device, seeds, threads per stage), thread policy, distributed helpers, the
training loop and its blow-up watch, progress bars and plugins. Imports nothing above it."""
