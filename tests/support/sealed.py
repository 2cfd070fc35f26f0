"""Secrets as the end-to-end tests hand them to Meltano: sealed, as in production (README: Secrets). Meltano writes a
plugin's settings to .meltano/run/<plugin>/*.config.json, which a killed run leaves behind; so no plain secret goes in,
not even a stand-in's."""

from __future__ import annotations

import json
import re

from ml_connector_core.secrets import KEY_ENV, KEY_FILE_ENV, generate_key, is_sealed, seal

#: This test process's key (what MLC_SECRET_KEY holds for the plugins it starts).
SESSION_KEY = generate_key()

# A plugin's secret settings, as Meltano and `--config ENV` read them from the environment.
SECRET_VARIABLE = re.compile(r"^(TAP|TARGET)_\w+_(SECRET|TOKEN)$")
# Object settings whose every value is a secret (JSON in the environment).
SECRET_OBJECT_VARIABLE = re.compile(r"^TARGET_\w+_(WEBHOOKS|STORAGE_OPTIONS)$")


def sealed_env(env: dict) -> dict:
    """``env`` with every plugin secret in it sealed, and the key that opens them (the one ``env`` names, if any)."""
    key = env.get(KEY_ENV) or (None if env.get(KEY_FILE_ENV) else SESSION_KEY)
    key_bytes = key.encode() if key else None
    sealed = dict(env)
    for name, value in env.items():
        if not value:
            continue
        if SECRET_VARIABLE.match(name) and not is_sealed(value):
            sealed[name] = seal(value, key=key_bytes)
        elif SECRET_OBJECT_VARIABLE.match(name):
            sealed[name] = json.dumps({part: item if is_sealed(item) else seal(item, key=key_bytes)
                                       for part, item in json.loads(value).items()})
    if key:
        sealed[KEY_ENV] = key
    return sealed
