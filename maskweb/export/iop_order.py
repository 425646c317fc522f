"""darktable's pipeline order (``darktable:iop_order_list``), needed for a second instance.

darktable places a module instance in its pipeline by looking ``(operation, instance)``
up in the image's order list. A sidecar without ``darktable:iop_order_list`` uses the
built-in list of its ``iop_order_version``, which has only instance 0 of every module, so a
second ``exposure`` instance is "not used" ("cannot get iop-order for exposure instance 1").
darktable itself then writes the whole list with the extra instances; so do we.

The module names below are darktable's built-in orders (v3.0 for raw files, v3.0 JPEG for
everything else; the v5.0 variants only move ``finalscale`` before ``colorout``), with the
modules of recent releases included: darktable ignores names it does not know, and fills
in its own newer modules itself when it reads an older list.
"""

from __future__ import annotations


def _names(text: str) -> list[str]:
    return text.split()


# iop_order_version values (src/common/iop_order.h).
CUSTOM, LEGACY, V30, V30_JPG, V50, V50_JPG = 0, 1, 2, 3, 4, 5

_V30 = _names("""
rawprepare invert temperature rasterfile highlights cacorrect hotpixels rawdenoise demosaic
denoiseprofile bilateral rotatepixels scalepixels lens cacorrectrgb hazeremoval ashift flip
enlargecanvas overlay clipping liquify spots retouch exposure mask_manager tonemap toneequal
crop graduatednd profile_gamma equalizer colorin channelmixerrgb diffuse censorize negadoctor
blurs primaries nlmeans colorchecker defringe atrous lowpass highpass sharpen colortransfer
colormapping channelmixer basicadj colorbalance colorequal colorbalancergb rgbcurve rgblevels
basecurve filmic sigmoid agx filmicrgb lut3d colisa tonecurve levels shadhi zonesystem
globaltonemap relight bilat colorcorrection colorcontrast velvia vibrance colorzones bloom
colorize lowlight monochrome grain soften splittoning vignette colorreconstruct colorout clahe
finalscale overexposed rawoverexposed dither borders watermark gamma
""")

_LEGACY = _names("""
rawprepare invert temperature rasterfile highlights cacorrect hotpixels rawdenoise demosaic
mask_manager denoiseprofile tonemap exposure spots retouch lens cacorrectrgb ashift liquify
rotatepixels scalepixels flip enlargecanvas clipping toneequal crop overlay graduatednd
basecurve bilateral profile_gamma hazeremoval colorin channelmixerrgb diffuse censorize
negadoctor blurs basicadj primaries colorreconstruct colorchecker defringe equalizer vibrance
colorbalance colorequal colorbalancergb colorize colortransfer colormapping bloom nlmeans
globaltonemap shadhi atrous bilat colorzones lowlight monochrome sigmoid agx filmic filmicrgb
colisa zonesystem tonecurve levels rgblevels rgbcurve relight colorcorrection sharpen lowpass
highpass grain lut3d colorcontrast colorout channelmixer soften vignette splittoning velvia
clahe finalscale overexposed rawoverexposed dither borders watermark gamma
""")

# The JPEG order runs colorin right after demosaic, then the geometric and exposure modules.
_JPG_MOVED = _names("""
denoiseprofile bilateral rotatepixels scalepixels lens cacorrectrgb hazeremoval ashift flip
enlargecanvas overlay clipping liquify spots retouch exposure mask_manager tonemap toneequal
crop graduatednd profile_gamma equalizer
""")


def _jpg(order: list[str]) -> list[str]:
    rest = [op for op in order if op not in _JPG_MOVED and op != "colorin"]
    at = rest.index("demosaic") + 1
    return rest[:at] + ["colorin", *_JPG_MOVED] + rest[at:]


def _v50(order: list[str]) -> list[str]:
    out = [op for op in order if op != "finalscale"]
    out.insert(out.index("colorout"), "finalscale")
    return out


BUILTIN: dict[int, list[str]] = {
    LEGACY: _LEGACY,
    V30: _V30,
    V30_JPG: _jpg(_V30),
    V50: _v50(_V30),
    V50_JPG: _v50(_jpg(_V30)),
}


def parse(text: str) -> list[tuple[str, int]]:
    """``"rawprepare,0,invert,0,..."`` -> [(operation, instance), ...]; ValueError if bad."""
    parts = [p.strip() for p in text.split(",")]
    if len(parts) % 2 or not parts[0]:
        raise ValueError("an iop order list has operation,instance pairs")
    return [(parts[i], int(parts[i + 1])) for i in range(0, len(parts), 2)]


def serialize(entries: list[tuple[str, int]]) -> str:
    return ",".join(f"{op},{instance}" for op, instance in entries)


def builtin(version: int) -> list[tuple[str, int]] | None:
    """The built-in list of an ``iop_order_version``, or None when we do not know it."""
    names = BUILTIN.get(version)
    return None if names is None else [(op, 0) for op in names]


def with_instances(entries: list[tuple[str, int]], operation: str,
                   instances: list[int]) -> list[tuple[str, int]]:
    """Add new instances of ``operation`` right after its last one (so they run after it)."""
    new = [(operation, i) for i in instances if (operation, i) not in entries]
    if not new:
        return list(entries)
    at = max((k for k, (op, _) in enumerate(entries) if op == operation), default=None)
    if at is None:
        raise ValueError(f"the order list has no {operation!r}")
    return entries[: at + 1] + new + entries[at + 1:]
