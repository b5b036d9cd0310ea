"""vLLM behind one package: the only code outside tests and bench/ that imports vLLM.

client.py            the engine as the HTTP side sees it (AsyncLLM, plain data in and out)
launch.py            starting AsyncLLM with thinkctl's logits processors and worker extension
args.py              vLLM's engine arguments, parsed by vLLM and passed through
logits_processor.py  the adapter from the controllers (control/) to vLLM's v1 API
worker.py            the worker extension: the probe's capture hooks, the CPU seed fix
recorder.py          calibration's cue recorder (a logits processor that never acts)
offline.py           vLLM's offline LLM for calibration, the testbed and the benchmarks
trace_channel.py     control events from the worker to the HTTP process
"""
