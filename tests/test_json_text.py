"""Strict JSON text (retinalnet._core.json_text): what every ``--json`` output is written as."""

from __future__ import annotations

import json

from retinalnet._core.json_text import strict_json


def test_a_file_name_read_under_lang_c_is_written_as_the_text_it_is() -> None:
    # was: "d\udcc3\udca9" (the bytes of 'dé' as LANG=C decodes them), which a UTF-8
    # reader refuses ("surrogates not allowed") and which differs from the same run's
    # JSON under UTF-8
    text = strict_json({"source": "d\udcc3\udca9/scan.jpeg", "class": "Ödem", "p": 0.5})

    assert json.loads(text) == {"source": "dé/scan.jpeg", "class": "Ödem", "p": 0.5}
