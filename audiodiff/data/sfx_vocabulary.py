"""The hand-written vocabulary that turns sound-effect file names into captions.

Read by :mod:`audiodiff.data.sfx_captions`. Each line of :data:`VOCABULARY_TEXT` (the file
``sfx_vocabulary.txt`` beside this module) is
``kind[/group] words = phrase | alone ; label``:

- ``noun`` names a thing that makes sound; ``phrase`` is its noun phrase ("a wolf"), ``alone``
  the sound it makes when the name says nothing more ("a wolf howling");
- ``act`` is what a noun does, ``{who}`` being the noun ("{who} dying"); ``act/GROUP`` overrides
  the act for nouns of that group ("act/person die = {who} screaming as he dies");
- ``mat`` is a material or surface, filling ``{mat}`` slots ("footsteps[ on {mat}]");
- ``event`` is a whole sound ("rain falling"), possibly with a ``{mat}`` or ``{who}`` slot.

Longer word lists match first, so ``lumber tree`` wins over ``tree``. Words are matched after
:data:`SYNONYMS` and simple plural folding; :data:`STOPWORDS` never reach a caption.
"""

from __future__ import annotations

from pathlib import Path

# Path and file-name words that say nothing about the sound: folders, game names, kit names,
# authors, velocity-layer tags, UI jargon. They are dropped from the raw-word captions too.
STOPWORDS = frozenset("""
usr share games game data core sounds sound sfx audio samples sample effects effect fx mods mod
public zip wav ogg flac oga mp3 stereo mono default misc custom generic new original single stable
actor resource resources interface ambience ambient fauna weapon weapons primary secondary
singlesteps gathering mining lumbering foraging farming construction dayscape weather movement
destruction kit drumkit drumkits stringsnpads instruments basses bullets item items
belofilms rumpf forzee millo multi layered black pearl gimme colombo circ afrique empire ee
audiophob electric paiste sabian zildjian tama zagrebin superstar rude alpha edge maple floating
free ecb ptm gh the of and by to on in out then
oxygen im sys app tech atlanteans barbarians civ greek iber theme mehackit elec olpc
adam keshen berklee boulanger flavio gaete michael bierylo nils van ottorloo audioaugust yo
frankie cbeeching anillogic trimo connersaw cubix lewis sabmute dayvonjersen sstokes crunchtime
walter odington stomachache zgump minorr menegass aard gna sara lenautile ab dr ss bs nz sz sp
mn hse cc rc rs ft br ho op cl dry lite te ke na tas tun ghe dhec re ne
mic mics med medium hardest softest semi sel select selected ack standing idle trained
order unit units player lvl env immediate
oddly breakable hand put set got into takes cant very not all desktops file foes special universal
""".split())

# Different spellings and abbreviations onto one vocabulary word.
SYNONYMS: dict[str, str] = {
    "footsteps": "footstep", "fs": "footstep", "steps": "footstep", "step": "footstep",
    "mstep": "footstep", "hstep": "hoofstep", "concstep": "footstep", "foorstep": "footstep",
    "swimstep": "swim", "walking": "walk", "running": "run", "moving": "move",
    "birds": "bird", "animals": "animal", "explode": "explosion", "exploding": "explosion",
    "explosions": "explosion", "hits": "hit", "impacts": "impact", "deaths": "die", "death": "die",
    "dies": "die", "dying": "die", "died": "die", "kill": "die", "swordsman": "swordman",
    "swordmen": "swordman", "archers": "archer", "hihat": "hat", "hhat": "hat", "hihats": "hat",
    "hh": "hat", "hhclosed": "closedhat", "chh": "closedhat", "closehihat": "closedhat",
    "hhopen": "openhat", "ohh": "openhat", "hhpedal": "pedalhat", "pedalhihat": "pedalhat",
    "opened": "open", "bassdrum": "kick", "kik": "kick", "bd": "kick", "sn": "snare", "sd": "snare",
    "cra": "crash",
    "tomh": "tom", "floortom": "tom", "tomhi": "tom", "jsnare": "snare", "rsnare": "snare",
    "swordhit": "swordhit", "fieldexpire": "field", "fruitexpire": "fruit", "meatexpire": "meat",
    "treeexpire": "tree", "lumber": "lumber", "con": "construct", "construction": "construct",
    "orni": "ornithopter", "regeneration": "regen", "eleattack": "elephant", "elewalk": "elephant", "ele": "elephant", "minarett": "minaret",
    "amb": "ambience", "sheeps": "sheep", "hoofs": "hoofstep", "jav": "javelin", "ballist": "ballista",
    "fleshimp": "fleshhit", "fleshstab": "stab", "siegeprojectilehit": "boulder",
    "arrowfly": "arrowfly", "firearrowhit": "firearrow", "indiattack": "attack", "dmg": "damage",
    "hurt": "pain", "ow": "pain", "ugh": "pain", "ooff": "pain", "grunts": "grunt", "groan": "pain",
    "scream": "scream", "screams": "scream", "shots": "shot", "shoot": "shot", "shooting": "shot",
    "fire": "fire", "burning": "burn", "burnfire": "burn", "explosionlarge": "explosion",
    "thunderstorm": "thunder", "thunders": "thunder", "raining": "rain", "windgust": "gust",
    "windstorm": "storm", "snowstorm": "blizzard", "windleaves": "leaves", "wavecrash": "surf",
    "waverocky": "surf", "waves": "wave", "cycadas": "cicada", "nightcrickets": "cricket",
    "crickets": "cricket", "stormbolts": "thunder", "stormrain": "rain", "stormwind": "wind",
    "alienwind": "wind", "blowwind": "wind", "dizzywind": "wind", "hollowwind": "wind",
    "wastewind": "wind", "cavedrip": "drip", "waterdrip": "drip", "droplet": "drip",
    "watersplash": "splash", "splashin": "splash", "splashout": "splash", "splosh": "splash",
    "lavarumble": "lava", "waterglass": "glass", "fingersnap": "snap", "snaps": "snap",
    "snaph": "snap", "maracas": "maraca", "claps": "clap", "tambourines": "tambourine",
    "woodblock": "woodblock", "ricochets": "ricochet", "reloading": "reload", "shotgunfire": "shotgun",
    "shotgunreload": "reload", "sniperreload": "reload", "reloaded": "reload", "guns": "gun",
    "minigun": "machinegun", "smg": "machinegun", "glauncher": "grenade", "rlauncher": "rocket",
    "rockets": "rocket", "lasers": "laser", "phaser": "laser", "bzap": "zap", "bzzt": "zap",
    "zaps": "zap", "zapper": "zap", "chatmessage": "chat", "msg": "message", "sms": "message",
    "mail": "message", "notification": "message", "bell": "bell", "bells": "bell", "cars": "car",
    "tyres": "skid", "skidding": "skid", "horses": "horse", "hooves": "hoofstep", "canter": "gallop",
    "galloping": "gallop", "chickens": "chicken", "rooster": "rooster", "cattle": "cow",
    "cows": "cow", "ox": "cow", "bull": "bull", "pigs": "pig", "wild_sow": "pig", "sow": "pig",
    "boar": "pig", "goats": "goat", "wolves": "wolf", "dogs": "dog", "cats": "cat",
    "rubberduck": "duck", "ducks": "duck", "coyote": "coyote", "moose": "deer", "stag": "deer",
    "stags": "deer", "bee": "bee", "bees": "bee", "beehive": "bee", "beewater": "bee",
    "dununba": "african", "kenkeni": "african", "sangban": "african", "djembe": "djembe",
    "guit": "guitar", "bassslap": "slapbass", "accord": "chord", "e_organ": "organ",
    "daemon": "demon", "behemoth": "monster", "golem": "golem", "dug": "dig", "digging": "dig", "choppy": "wood", "cracky": "stone",
    "tires": "tire", "tyre": "tire", "rolling": "roll", "screech": "screech", "trafic": "traffic",
    "telein": "telein", "wvulfire": "vulcan", "vulcanf": "vulcan", "wvulwind": "vulcan", "rockfly": "rocket",
    "rocklf": "rocket", "rocklx": "explosion", "fstatck": "chainsaw", "machgf": "machinegun",
    "buletby": "whizz", "ric": "ricochet", "windmillhtech": "windmill", "windmill": "windmill",
    "professor": "", "mdl": "",
    "leaves": "leaves", "crumbly": "dirt", "snappy": "leaves", "stones": "stone",
}

# Words that become an adjective of the first clause ("a huge explosion").
ADJECTIVES: dict[str, str] = {
    "big": "big", "large": "big", "huge": "huge", "giant": "huge", "small": "small", "tiny": "tiny",
    "little": "small", "sml": "small", "soft": "soft", "softer": "soft", "hard": "hard", "harder": "hard",
    "heavy": "heavy", "light": "light", "long": "long", "short": "short", "distant": "distant",
    "deep": "deep", "fast": "fast", "slow": "slow", "loud": "loud", "quiet": "quiet",
    "distorted": "distorted", "muffled": "muffled", "electro": "electronic", "acoustic": "acoustic",
    "raging": "raging", "low": "low", "high": "high", "dirty": "dirty", "puny": "weak",
}

# The term table is a plain text file beside this module (package data), easy to edit and review.
VOCABULARY_TEXT = (Path(__file__).with_name("sfx_vocabulary.txt")).read_text(encoding="utf-8")

__all__ = ["ADJECTIVES", "STOPWORDS", "SYNONYMS", "VOCABULARY_TEXT"]
