"""How the command line spells the library's settings: an error's `setting` shown as the flag that changes it.

Library messages name settings in plain words (errors.py); a command adds its flag for the one setting an error
names. A setting's flag is its name with dashes (`max_input_mp` → `--max-input-mp`) unless the command's `FLAGS`
spells it otherwise (`output` → `-o`).
"""

from __future__ import annotations

from collections.abc import Mapping

from enlarge.errors import EnlargeError

__all__ = ["flag_for", "with_flag"]


def flag_for(setting: str, spellings: Mapping[str, str]) -> str:
    """The flag of `setting`: the command's own spelling, else `--` and the name with dashes."""
    return spellings.get(setting, "--" + setting.replace("_", "-"))


def with_flag(exc: EnlargeError, spellings: Mapping[str, str]) -> str:
    """The error's message, followed by the flag of the setting it names, if it names one."""
    if exc.setting is None:
        return str(exc)
    return f"{exc} ({flag_for(exc.setting, spellings)})"
