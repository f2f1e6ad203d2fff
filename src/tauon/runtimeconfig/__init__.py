"""Spin's runtime configuration (`spin up --runtime-config-file`) for tauon apps: the TOML file an app
file's `runtime_config` names, or the daemon's `--runtime-config`. model.py is the typed result,
parse.py reads the TOML as Spin does, attach.py ties files to app specs, providers.py resolves
variables providers."""
