"""The model catalogue: public concise / length-controllable checkpoints, as data.

    models.json      the entries: how each model is asked for length or mode, its think
                     delimiters, recommended sampling and prompt, licence, reported numbers
    schema.py        the pydantic models that validate it, and `load()` / `find()`
    preset.py        a catalogue entry as the server applies it (`Preset`)
    apply.py         request -> request with the preset applied (effort -> the model's own
                     mechanism, sampling defaults, the recommended instruction)
    serving.py       `serve --model ID` / `--preset ID`: where the weights are, clear refusals
    cli.py           `thinkctl models` (never imports vLLM)

Model-specific behaviour is data in models.json, never a branch on a model's name.
"""
