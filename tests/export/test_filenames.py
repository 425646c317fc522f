"""Download names safe on Windows, macOS and Linux, letters of any script kept."""

from __future__ import annotations

import pytest

from maskweb.export.filenames import MAX_BYTES, download_name

WINDOWS_REFUSES = set('<>:"/\\|?*') | {chr(c) for c in range(32)}


@pytest.mark.parametrize("parts,expected", [
    (("IMG_1", "Sky"), "IMG_1-Sky.png"),
    (("IMG_1", "Sky / left"), "IMG_1-Sky _ left.png"),
    (("IMG_1", "..\\..\\etc\\passwd"), "IMG_1-_.._etc_passwd.png"),
    (("IMG_1", 'a<b>c:d"e|f?g*h'), "IMG_1-a_b_c_d_e_f_g_h.png"),
    (("IMG_1", "tab\there\nnewline\x00nul\u202eRTL"), "IMG_1-tab here newline_nul_RTL.png"),
    (("IMG_1", "  trailing dots... "), "IMG_1-trailing dots.png"),
    (("写真", "空"), "写真-空.png"),
    (("été", "Straße"), "été-Straße.png"),
    (("", "CON"), "_CON.png"),
    (("", "lpt1.backup"), "_lpt1.backup.png"),
    (("", "..."), "download.png"),
    (("IMG_1", "Sky", "soft"), "IMG_1-Sky-soft.png"),
])
def test_names_lose_what_an_os_refuses_and_keep_the_rest(parts, expected):
    assert download_name(*parts, extension="png") == expected


def test_a_decomposed_accent_is_composed():
    assert download_name("e\u0301t\u00e9", extension="svg") == "\u00e9t\u00e9.svg"


def test_a_long_name_is_cut_between_characters_under_the_byte_limit():
    name = download_name("IMG_1", "写" * 200, "soft", extension="png")
    assert len(name.encode()) <= MAX_BYTES
    assert name.endswith(".png") and name.startswith("IMG_1-写")
    name.encode().decode()  # still valid UTF-8: not cut inside a character


def test_no_refused_character_survives_any_input():
    hostile = "".join(chr(c) for c in range(0, 128)) + "\u2028\u2029\ufeff"
    name = download_name(hostile, hostile, extension="png")
    assert not WINDOWS_REFUSES & set(name)
    assert "\u2028" not in name and "\ufeff" not in name
    assert not name[:-4].endswith((" ", "."))
