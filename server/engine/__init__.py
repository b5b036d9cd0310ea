"""Everything that touches vLLM: engine start-up, the logits-processor adapter,
the worker extension and the channel that carries control events out of the worker."""
