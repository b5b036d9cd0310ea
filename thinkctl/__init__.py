"""The `thinkctl` command: one entry point over the server, calibration and benchmarks."""
