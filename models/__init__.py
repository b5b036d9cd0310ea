"""Which models thinkctl knows, and how a name becomes a folder. The catalogue (public
concise / length-controllable checkpoints) is data.

    models.json      the entries: how each model is asked for length or mode, its think
                     delimiters, recommended sampling and prompt, licence, reported numbers
    schema.py        the pydantic models that validate it, and `load()` / `find()`
    preset.py        a catalogue entry as the server applies it (`Preset`)
    embedded.py      the models that ship with thinkctl, built into folders on first use
    resolve.py       the one resolver: a name, a folder or a hub id -> what to load, under
                     which name and preset (serve, calibrate, bench, testbed, recipes)
    cli.py           `thinkctl models` (never imports vLLM)

Model-specific behaviour is data in models.json, never a branch on a model's name.
"""
