"""Hydra finds launchers in the `hydra_plugins` package: `hydra/launcher=forkserver` is this one."""
