"""Our shipped MJCF -> USD for Isaac Lab, with mujoco-usd-converter, cached on disk, never downloaded.

The USD keeps the MJCF's frames and SI units (m, kg, rad); MuJoCo-specific physics (actuators, tendons,
gravity compensation, contact parameters) travels as ``mjc:*`` attributes that Newton's MuJoCo solver reads.

Cache: ``$XDG_CACHE_HOME/rcs/isaac`` (else ``~/.cache/rcs/isaac``), or ``$RCS_ISAAC_CACHE`` when set. The key is a
content hash of the MJCF, every file it includes or loads (meshes, textures, height fields), the converter
version and :data:`FIX_VERSION`; editing any of them gives a new file, an unchanged model reuses the old one.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import tempfile
import xml.etree.ElementTree as ET
from importlib import metadata
from pathlib import Path
from typing import Any

from rcs.errors import ConfigError

log = logging.getLogger(__name__)

#: bumped whenever the post-conversion fixes below change, so cached files made by older fixes are not reused
FIX_VERSION = 2
CONVERTER = "mujoco-usd-converter"


def usd_cache_dir() -> Path:
    """Where converted models live: ``$RCS_ISAAC_CACHE``, else ``$XDG_CACHE_HOME/rcs/isaac``, else
    ``~/.cache/rcs/isaac``."""
    if os.environ.get("RCS_ISAAC_CACHE"):
        return Path(os.environ["RCS_ISAAC_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "rcs" / "isaac"


def model_files(mjcf: Path) -> list[Path]:
    """The MJCF and every file it depends on (``<include>`` files, recursively, and the ``file=`` of assets).

    Raises:
        ConfigError: a file is missing or is not XML (the message names it).
    """
    out: list[Path] = []
    _collect(Path(mjcf).resolve(), Path(mjcf).resolve().parent, {}, out)
    return out


def _collect(path: Path, model_dir: Path, dirs: dict[str, str], out: list[Path]) -> None:
    if not path.is_file():
        raise ConfigError(f"{path}: model file not found")
    if path in out:
        return
    out.append(path)
    try:
        root = ET.parse(path).getroot()
    except ET.ParseError as e:
        raise ConfigError(f"{path}: not a valid MJCF file ({e})") from None
    for compiler in root.iter("compiler"):  # meshdir/texturedir/assetdir: relative to the main model's folder
        dirs.update({k: v for k, v in compiler.attrib.items() if k in ("meshdir", "texturedir", "assetdir")})
    for el in root.iter():
        name = el.attrib.get("file")
        if name is None:
            continue
        if el.tag == "include":  # MuJoCo resolves includes relative to the main model's folder
            _collect((model_dir / name).resolve(), model_dir, dirs, out)
            continue
        sub = dirs.get("texturedir" if el.tag == "texture" else "meshdir") or dirs.get("assetdir", "")
        asset = (model_dir / sub / name).resolve()
        if not asset.is_file():
            raise ConfigError(f"{asset}: file of <{el.tag}> in {path} not found")
        if asset not in out:
            out.append(asset)


def cache_key(mjcf: Path) -> str:
    """Hex content hash of the model's files, the converter's version and :data:`FIX_VERSION`."""
    mjcf = Path(mjcf).resolve()
    h = hashlib.sha256(f"{CONVERTER}={metadata.version(CONVERTER)};fix={FIX_VERSION}".encode())
    for f in model_files(mjcf):
        h.update(os.path.relpath(f, mjcf.parent).encode() + b"\0")
        h.update(f.read_bytes() + b"\0")
    return h.hexdigest()


def cached_usd_path(mjcf: Path, cache_dir: Path | None = None) -> Path:
    """Where :func:`convert_mjcf` puts (or finds) the USD of ``mjcf``."""
    mjcf = Path(mjcf).resolve()
    return (cache_dir or usd_cache_dir()) / f"{mjcf.stem}-{cache_key(mjcf)[:20]}" / f"{mjcf.stem}.usdc"


def convert_mjcf(mjcf: Path, cache_dir: Path | None = None) -> Path:
    """The USD file of ``mjcf`` (robot alone, no physics scene prim), converted on first use, then reused.

    Conversion goes to a temporary folder beside the cache entry and is renamed into place whole, so a
    concurrent or interrupted conversion never leaves a half-written file behind.

    Raises:
        ConfigError: the MJCF or one of its files is missing, or the converter fails (the message names the file).
    """
    mjcf = Path(mjcf).resolve()
    target = cached_usd_path(mjcf, cache_dir)
    if target.is_file():
        log.debug("USD cache hit: %s", target)
        return target
    target.parent.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".convert-", dir=target.parent.parent))
    try:
        import mujoco
        from mujoco_usd_converter import Converter
        from pxr import Usd

        try:  # MuJoCo's compiler first: the converter accepts some models MuJoCo rejects
            model = mujoco.MjModel.from_xml_path(str(mjcf))
        except ValueError as e:
            raise ConfigError(f"{mjcf}: MuJoCo cannot compile it: {' '.join(str(e).split())}") from None
        try:
            result = Converter(layer_structure=False, scene=False).convert(str(mjcf), str(tmp))
            written = Path(result.path)
        except Exception as e:  # the converter raises anything from mujoco's compiler to USD errors
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise ConfigError(
                f"{mjcf}: {CONVERTER} {metadata.version(CONVERTER)} could not convert it: {first}"
            ) from None
        stage = Usd.Stage.Open(str(written))
        renamed = rename_gravcomp_for_newton(stage)
        keep_mjcf_self_collision_rule(stage, model, mjcf)
        stage.GetRootLayer().Save()
        log.info("converted %s -> %s (%d bodies with gravity compensation)", mjcf, target, renamed)
        if written.name != target.name:
            written.rename(written.with_name(target.name))
        try:
            tmp.rename(target.parent)
        except OSError:  # another process finished the same conversion first: keep its file
            if not target.is_file():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def rename_gravcomp_for_newton(stage: Any) -> int:
    """Rename each body's ``mjc:body:gravcomp`` attribute to ``mjc:gravcomp``; returns how many were renamed.

    Why: mujoco-usd-converter 0.6.1 writes a body's gravity compensation as ``mjc:body:gravcomp`` while
    newton 1.6.1 (SolverMuJoCo, the MuJoCo-Warp solver Isaac Lab 3.0 uses) reads ``mjc:gravcomp``. Without the
    rename Newton silently drops gravity compensation and the Panda sags under its own weight. Remove this
    when both packages agree on the name (the test ``tests/isaac`` gravity-hold check shows it).
    """
    from pxr import Sdf

    count = 0
    for prim in stage.Traverse():
        old = prim.GetAttribute("mjc:body:gravcomp")
        if not (old and old.HasAuthoredValue()):
            continue
        prim.CreateAttribute("mjc:gravcomp", Sdf.ValueTypeNames.Float, custom=True).Set(float(old.Get()))
        prim.RemoveProperty("mjc:body:gravcomp")
        count += 1
    return count


def keep_mjcf_self_collision_rule(stage: Any, m: Any, mjcf: Path) -> bool:
    """Turn off the articulation's self collision when the MJCF lets no two robot geoms collide; returns whether
    it did. ``m`` is the compiled MuJoCo model of ``mjcf`` (named in errors).

    Why: MuJoCo decides collisions by the ``contype``/``conaffinity`` bit masks (our Panda: arm geoms contype 2,
    conaffinity 0, so arm links never touch each other but touch the scene). mujoco-usd-converter 0.6.1 drops
    the masks (it keeps only "no collision at all") and writes ``newton:selfCollisionEnabled = true`` on the
    articulation root, so in newton 1.6.1 neighbouring links of the folded arm collide and jam joints 4 and 5
    (they stop short of their targets at the torque limit).

    Raises:
        ConfigError: the MJCF has robot geoms that do collide with each other: per-pair filtering is not
            implemented, and silently changing the model's contacts is not acceptable.
    """
    from pxr import UsdPhysics

    geoms = [g for g in range(m.ngeom) if m.geom_contype[g] or m.geom_conaffinity[g]]
    for i, a in enumerate(geoms):
        for b in geoms[i + 1 :]:
            ba, bb = int(m.body_weldid[m.geom_bodyid[a]]), int(m.body_weldid[m.geom_bodyid[b]])
            if ba == bb or m.body_parentid[ba] == bb or m.body_parentid[bb] == ba:
                continue  # same or parent-child (welded) bodies: MuJoCo never collides these either
            if (m.geom_contype[a] & m.geom_conaffinity[b]) or (m.geom_contype[b] & m.geom_conaffinity[a]):
                raise ConfigError(
                    f"{mjcf}: geoms {m.geom(a).name!r} and {m.geom(b).name!r} collide with each other "
                    "(contype/conaffinity); the Isaac conversion supports robots without self collision only"
                )
    changed = False
    for prim in stage.Traverse():
        if prim.HasAPI(UsdPhysics.ArticulationRootAPI):
            attr = prim.GetAttribute("newton:selfCollisionEnabled")
            if attr:
                attr.Set(False)
                changed = True
    return changed
