"""Shared probe library (features, probe, conformal threshold, artifact format)."""
