"""Offline calibration CLI (`thinkctl calibrate`)."""
