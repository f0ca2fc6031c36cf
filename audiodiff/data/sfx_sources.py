"""Which Debian packages hold recorded sound effects, and which of their files to use.

Each :class:`SfxSource` names a package, the regular expressions (on the package-relative path)
of files to keep and to drop, and the path prefix to strip before captioning. Music, speech and
unit voices are dropped here by path; what remains is decoded and checked by
:mod:`audiodiff.data.sfx`. Zip archives inside a package (0 A.D.'s ``public.zip``) are opened in
place, and Hydrogen drum kits get their instrument names from ``drumkit.xml``.

Reserved packages (:mod:`audiodiff.data.reserved`) are not in :data:`SFX_SOURCES`; a builder
given one anyway puts its clips in the "test" split only.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import io
import re
import xml.etree.ElementTree as ET
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path

from .debian import AUDIO_EXTENSIONS

# Anywhere in a path: folders of music, speech and voice acting, and musical loops.
GLOBAL_EXCLUDE: tuple[str, ...] = (
    r"(^|/)(music|musics|soundtracks?|songs?|jingles?)(/|$)",
    r"(^|/)(voices?|speech|voice_samples|narration|dialogu?es?|taunts?|announcer)(/|$)",
    r"(^|/)(intro|titles|credits)(/|$)",
    r"_music\.|music_|(^|/)menu_music",
)


@dataclasses.dataclass(frozen=True)
class SfxSource:
    """One package of sound effects.

    include / exclude: regular expressions searched in the package-relative path (``re.search``).
    strip: a regular expression; the path up to the end of its first match is not captioned.
    context: words that say what the package is, for the card (never put in a caption).
    zips: glob patterns of zip archives inside the package whose audio members are used too.
    keep: regular expressions of files kept even if an exclude pattern matches them.
    words: words that say where every sound of the package is (matched with the vocabulary).
    """

    package: str
    include: tuple[str, ...] = (r".",)
    exclude: tuple[str, ...] = ()
    strip: str = r"/(sounds?|samples|sfx|audio)/"
    context: str = ""
    zips: tuple[str, ...] = ()
    keep: tuple[str, ...] = ()  # kept even when an exclude matches (animal calls named "_select")
    words: tuple[str, ...] = ()  # context words put before the file's words ("city" + "health")

    def keeps(self, rel: str) -> str:
        """"" if ``rel`` is used, else the reason it is not."""
        low = rel.lower()
        if not any(re.search(p, low) for p in self.include):
            return "not in this package's sound folders"
        if any(re.search(p, low) for p in self.keep):
            return ""
        for pattern in GLOBAL_EXCLUDE + self.exclude:
            if re.search(pattern, low):
                return f"filtered out (music, speech or voice: /{pattern}/)"
        return ""

    def caption_path(self, rel: str) -> str:
        """The part of ``rel`` that describes the sound (after the sound folder)."""
        match = re.search(self.strip, rel, flags=re.IGNORECASE) if self.strip else None
        return rel[match.end():] if match else rel


# Unit voices in real-time strategy games: acknowledgements, selection lines, battle cries.
_RTS_VOICES = (r"(^|[/_])(ack|select|sel|selected)\d*[a-z]?\.\w+$",
               r"[._](ready|underattack|completed|attacked)\.", r"unit\.(ready|underattack)")

SFX_SOURCES: dict[str, SfxSource] = {s.package: s for s in (
    SfxSource("0ad-data", include=(r"^public\.zip!audio/",), zips=("usr/share/games/0ad/mods/public/public.zip",),
              exclude=(r"/voice/", r"/music/", r"audio/interface/alarm/alarm_?(victory|defeat)",
                       r"/interface/(select|complete)/building/", r"/ambient/.*music"),
              keep=(r"/voice/global/civ_dog_",),
              strip=r"^public\.zip!audio/", context="sound effects of the strategy game 0 A.D."),
    SfxSource("megaglest-data", include=(r"/sounds?/", r"/tilesets/", r"water_sounds"),
              exclude=_RTS_VOICES + (r"/menu/", r"minarett"),
              strip=r"/units/|/commondata/sounds/|/tilesets/|/core/water_sounds/|/core/menu/sound/",
              keep=(r"/units/(chicken|bull|thunderbird|wild_sow|sheep|cow|dragon|evil_dragon)/sounds/",),
              context="sound effects of the strategy game MegaGlest"),
    SfxSource("wesnoth-1.16-data", include=(r"/sounds/",), exclude=(r"witches-laugh", r"fanfare"),
              context="sound effects of the strategy game Battle for Wesnoth"),
    SfxSource("hydrogen-drumkits", include=(r"/drumkits/",), exclude=(r"/varibreaks/",), words=("drum",),
              strip=r"/drumkits/", context="drum kit samples of the Hydrogen drum machine"),
    SfxSource("hydrogen-drumkits-effects", include=(r"/drumkits/",), strip=r"/drumkits/",
              context="guitar strums and effects for the Hydrogen drum machine"),
    SfxSource("lmms-common", include=(r"/samples/(drums|effects|misc|instruments|basses|stringsnpads)/",),
              exclude=(r"/misc/(raving_crowd|undefined)",), strip=r"/samples/",
              context="samples of the LMMS music studio"),
    SfxSource("sonic-pi-samples", include=(r"/samples/",), exclude=(r"/loop_", r"ambi_choir"),
              context="samples of the Sonic Pi live-coding synth"),
    SfxSource("minetest-data", include=(r"/sounds/",), exclude=(r"soundstuff",),
              context="sound effects of the voxel game Minetest"),
    SfxSource("widelands-data", include=(r"/sound/",),
              exclude=(r"/sound/(message|lobby|menu|click|under_attack|site_occupied|create_construction)",),
              strip=r"/sound/", context="sound effects of the strategy game Widelands"),
    SfxSource("boswars-data", include=(r"/sounds/", r"/units/"),
              exclude=_RTS_VOICES + (r"/campaigns/", r"[._]action\."),
              strip=r"/(sounds|units)/", context="sound effects of the strategy game Bos Wars"),
    SfxSource("freedroidrpg-data", include=(r"/sound/effects/",),
              exclude=(r"tux_ingame_comments", r"first_contact", r"start_attack", r"thouartdefeated",
                       r"mission_status", r"takeover_game"),
              strip=r"/sound/effects/", context="sound effects of the role-playing game FreedroidRPG"),
    SfxSource("hedgewars-data", include=(r"/sounds/",), exclude=(r"/voices/", r"ride_of_the_valkyries",
                                                                 r"hogchant", r"yoohoo", r"/[1-9][a-g]\.ogg$"),
              context="sound effects of the artillery game Hedgewars"),
    SfxSource("endless-sky-data", include=(r"/sounds/",), context="sound effects of the space game Endless Sky"),
    SfxSource("supertux-data", include=(r"/sounds/",), exclude=(r"excellent", r"/speech/"),
              context="sound effects of the platform game SuperTux"),
    SfxSource("supertuxkart-data", include=(r"/sfx/",), exclude=(r"/music/",), strip=r"/sfx/",
              context="sound effects of the racing game SuperTuxKart"),
    SfxSource("redeclipse-data", include=(r"/sounds?/",),
              exclude=(r"/(voice|announcer)s?/", r"/sounds/(theme|original)"),
              context="sound effects of the shooter Red Eclipse"),
    SfxSource("cube2-data", include=(r"/packages/sounds/",), exclude=(r"/0ad/",),
              strip=r"/packages/sounds/", context="sound effects of the shooter Cube 2: Sauerbraten"),
    SfxSource("torcs-data", include=(r"/data/sound/",), strip=r"/data/sound/",
              context="sound effects of the racing simulator TORCS"),
    SfxSource("flightgear-data-base", include=(r"/sounds/", r"/instruments-3d/glider/"),
              exclude=(r"/atc/", r"/voices?/", r"/speech/", r"/mk-viii/", r"/tcas/", r"checklist",
                       r"intro\.mp3"),
              context="sound effects of the flight simulator FlightGear"),
    SfxSource("openarena-data", include=(r"^pak0\.pk3!sound/(weapons|world|items|movers|misc)/",
                                         r"^pak0\.pk3!sound/player/footsteps/"),
              zips=("usr/share/games/openarena/baseoa/pak0.pk3",), strip=r"!sound/",
              context="sound effects of the shooter OpenArena"),
    SfxSource("warzone2100-data", include=(r"^base\.wz!audio/sfx/",),
              zips=("usr/share/games/warzone2100/base.wz",), strip=r"!audio/sfx/",
              context="sound effects of the strategy game Warzone 2100"),
    SfxSource("warmux-data", include=(r"/sound/default/(weapons|misc)/",),
              exclude=(r"music", r"victory", r"sherif", r"newcomer"), strip=r"/sound/default/",
              context="sound effects of the artillery game Warmux"),
    SfxSource("extremetuxracer-data", include=(r"/sounds/",),
              context="sound effects of the racing game Extreme Tux Racer"),
    SfxSource("heroes-sound-effects", include=(r"/sfx/",), exclude=(r"/(ho_yeh|oh|no|go)\.wav$",),
              context="sound effects of the game Heroes"),
    SfxSource("lincity-ng-data", include=(r"/sounds/",), words=("city",),
              context="city sounds of the game LinCity-NG"),
    SfxSource("frozen-bubble-data", include=(r"/snd/",), exclude=(r"zik", r"hurry", r"noh", r"/lose"),
              strip=r"/snd/", context="sound effects of the puzzle game Frozen Bubble"),
    SfxSource("chromium-bsu-data", include=(r"/wav/",), strip=r"/wav/",
              context="sound effects of the shooter Chromium B.S.U."),
    SfxSource("alienblaster-data", include=(r"/sound/",), exclude=(r"intro", r"playon"), strip=r"/sound/",
              context="sound effects of the shooter Alien Blaster"),
    SfxSource("bucklespring-data", include=(r"/buckle/wav/",), strip=r"/buckle/wav/",
              context="key sounds of an IBM Model M keyboard (bucklespring)"),
    SfxSource("deepin-sound-theme", include=(r"/sounds/deepin/",), strip=r"/stereo/",
              context="the Deepin desktop sound theme"),
    SfxSource("yaru-theme-sound", include=(r"/sounds/yaru/",), strip=r"/stereo/",
              context="the Yaru (Ubuntu) desktop sound theme"),
    SfxSource("pingus-data", include=(r"/sounds/",), exclude=(r"letsgo|yipee|ohno|goodidea",),
              context="sound effects of the puzzle game Pingus"),
    SfxSource("lbreakout2-data", include=(r"/sounds/",),
              exclude=(r"damn|dammit|excellent|verygood|wontgiveup",),
              context="sound effects of the arcade game LBreakout2"),
    SfxSource("pinball-data", include=(r"/pinball/",), exclude=(r"\.ogg$", r"gameover|opentux|/up\.wav"),
              strip=r"/pinball/(tux|professor)/", words=("pinball",),
              context="sound effects of the game Emilia Pinball"),
    SfxSource("stormbaancoureur-data", include=(r"/sounds/",),
              context="sound effects of the driving game Stormbaan Coureur"),
    SfxSource("kgoldrunner", include=(r"/themes/",), exclude=(r"victory|completed|gameover",),
              strip=r"/themes/default/", context="sound effects of the game KGoldrunner"),
    SfxSource("kbounce", include=(r"/sounds/",), context="sound effects of the game KBounce"),
    SfxSource("knavalbattle", include=(r"/sounds/",), context="sound effects of the game Naval Battle"),
    SfxSource("granatier", include=(r"/sounds/",), exclude=(r"wow|winlevel",),
              context="sound effects of the game Granatier"),
    SfxSource("kapman", include=(r"/sounds/",), exclude=(r"gameover|levelup",),
              context="sound effects of the game Kapman"),
    SfxSource("kolf", include=(r"/sounds/",), exclude=(r"woohoo",), context="sound effects of the game Kolf"),
    SfxSource("kblocks", include=(r"/sounds/",), context="sound effects of the game KBlocks"),
    SfxSource("kdiamond", include=(r"/sounds/",), context="sound effects of the game KDiamond"),
    SfxSource("klickety", include=(r"/sounds/",), exclude=(r"finished",),
              context="sound effects of the game Klickety"),
    SfxSource("gnome-robots", include=(r"/sounds/",), exclude=(r"victory|yahoo|/die\.",),
              context="sound effects of the game GNOME Robots"),
    SfxSource("quadrapassel", include=(r"/sounds/",), exclude=(r"quadrapassel\.ogg|gameover",),
              words=("block",), context="sound effects of the falling-blocks game Quadrapassel"),
    SfxSource("gnome-nibbles", include=(r"/sounds/",), exclude=(r"gameover",),
              context="sound effects of the snake game GNOME Nibbles"),
    SfxSource("aisleriot", include=(r"/sounds/",), exclude=(r"victory",), words=("card",),
              context="sound effects of the card game AisleRiot"),
    SfxSource("oxygen-sounds", include=(r"/sounds/",), context="the KDE Oxygen desktop sound theme"),
    SfxSource("sound-theme-freedesktop", include=(r"/sounds/freedesktop/",),
              exclude=(r"audio-channel-", r"audio-test-signal"), strip=r"/stereo/",
              context="the freedesktop.org desktop sound theme"),
)}


def source_for(package: str) -> SfxSource:
    """The rule of a listed package, or a permissive default for any other package name."""
    return SFX_SOURCES.get(package, SfxSource(package, context=f"sounds of the Debian package {package}"))


# -- the audio items of an unpacked package ---------------------------------------------------

@dataclasses.dataclass(frozen=True)
class AudioItem:
    """One audio file of a package: ``rel`` is its package-relative path (``x.zip!member`` for a
    zip member); ``read()`` returns its bytes; ``label`` is a name found in metadata, if any."""

    rel: str
    read: Callable[[], bytes]
    size: int
    label: str = ""

    def digest(self) -> str:
        return hashlib.sha1(self.read()).hexdigest()


def _is_audio(name: str) -> bool:
    return name.rsplit(".", 1)[-1].lower() in AUDIO_EXTENSIONS if "." in name else False


def iter_package_audio(root: Path, source: SfxSource,
                       skip: Callable[[str, str], None] | None = None) -> Iterator[AudioItem]:
    """Every audio file of the unpacked package at ``root`` that ``source`` keeps, sorted.

    Files the rules drop are passed to ``skip(rel, reason)`` (music and voices, for the report);
    files outside the package's sound folders are ignored silently. A broken zip is one skip.
    """
    root = Path(root)
    labels = _hydrogen_labels(root) if source.package.startswith("hydrogen") else {}
    files = sorted(p for p in root.rglob("*") if p.is_file() and _is_audio(p.name))
    items: list[AudioItem] = []
    for path in files:
        rel = path.relative_to(root).as_posix()
        items.append(AudioItem(rel, path.read_bytes, path.stat().st_size, labels.get(rel, "")))
    for pattern in source.zips:
        for zpath in sorted(root.glob(pattern)):
            items.extend(_zip_items(zpath, skip))
    for item in sorted(items, key=lambda i: i.rel):
        why = source.keeps(item.rel)
        if not why:
            yield item
        elif skip is not None and not why.startswith("not in"):
            skip(item.rel, why)


def _zip_items(zpath: Path, skip: Callable[[str, str], None] | None) -> list[AudioItem]:
    try:
        archive = zipfile.ZipFile(zpath)
        infos = [i for i in archive.infolist() if not i.is_dir() and _is_audio(i.filename)]
    except (zipfile.BadZipFile, OSError) as err:
        if skip is not None:
            skip(zpath.name, f"unreadable zip archive ({err})")
        return []

    def reader(name: str) -> Callable[[], bytes]:
        def read() -> bytes:
            return _open_zip(str(zpath)).read(name)
        return read

    return [AudioItem(f"{zpath.name}!{i.filename}", reader(i.filename), i.file_size) for i in infos]


@functools.lru_cache(maxsize=4)
def _open_zip(path: str) -> zipfile.ZipFile:
    """One open handle per archive: 0 A.D.'s zip has ~40k entries, too many to re-read per file."""
    return zipfile.ZipFile(path)


def _hydrogen_labels(root: Path) -> dict[str, str]:
    """package-relative sample path -> instrument name, from each kit's ``drumkit.xml``."""
    labels: dict[str, str] = {}
    for xml_path in root.rglob("drumkit.xml"):
        try:
            tree = ET.parse(xml_path)
        except (ET.ParseError, OSError):
            continue
        for inst in tree.iter():
            if not inst.tag.endswith("instrument"):
                continue
            name = next((c.text for c in inst if c.tag.endswith("name") and c.text), "")
            if name.strip().lower().startswith("sample:"):
                name = ""  # a placeholder, not an instrument name
            for node in inst.iter():
                if node.tag.endswith("filename") and node.text:
                    path = (xml_path.parent / node.text.strip())
                    try:
                        rel = path.relative_to(root).as_posix()
                    except ValueError:
                        continue
                    labels[rel] = name.strip()
    return labels


def read_audio_bytes(data: bytes) -> tuple:
    """Decode audio bytes with soundfile: (float32 array (T, C), sample rate)."""
    import soundfile as sf

    return sf.read(io.BytesIO(data), dtype="float32", always_2d=True)
