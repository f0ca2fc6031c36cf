"""The evaluation taxonomy: sound categories found by keyword rules over captions, each with
held-out prompts.

The corpora have captions but no label field, so a clip's category is the first rule (in the
order below) whose pattern matches its first caption, lower-cased; clips no rule matches take no
part in the evaluation. The prompts are paraphrases that are in no manifest's captions (a test
checks this), so a model is asked for a category in words it never saw in training.

Released names and prompts never change in place: add a category, or a new taxonomy version.
"""

from __future__ import annotations

import dataclasses
import re

TAXONOMY_VERSION = 1


@dataclasses.dataclass(frozen=True)
class Category:
    name: str
    pattern: str               # regex searched in the lower-cased first caption
    prompts: tuple[str, ...]   # held-out prompts (never training captions)
    exclude: str | None = None  # regex that vetoes a match

    def matches(self, caption: str) -> bool:
        text = caption.lower()
        return re.search(self.pattern, text) is not None and not (self.exclude and re.search(self.exclude, text))


def _c(name: str, pattern: str, *prompts: str, exclude: str | None = None) -> Category:
    return Category(name, pattern, tuple(prompts), exclude)


# Order matters: the first match wins ("flames roaring" is fire, not a monster; "birds and rain"
# is rain; the chorale instruments come before the generic ones).
CATEGORIES: tuple[Category, ...] = (
    _c("chorale_organ", r"chorale.*organ", "a hymn in four parts on a pipe organ",
       "a church organ playing a slow four-voice hymn"),
    _c("chorale_piano", r"chorale.*piano", "a four-part hymn performed on a grand piano",
       "a baroque chorale arranged for solo piano"),
    _c("chorale_strings", r"chorale.*string", "a hymn performed by violins, viola and cello",
       "a baroque chorale on a bowed string ensemble"),
    _c("chorale_brass", r"chorale.*brass", "trumpets and trombones playing a four-part hymn",
       "a baroque hymn performed by a brass ensemble"),
    _c("folk_tune", r"folk (song|tune)", "a simple traditional dance melody on a solo instrument",
       "a lively old village tune played solo"),
    _c("guitar_strum", r"guitar strum|\bstrum", "a chord strummed once on a steel-string guitar",
       "one strum across the strings of an acoustic guitar"),
    _c("human_pain", r"scream|dying|\bdies\b|in pain|\bcry\b|death", "a man groaning after being hurt",
       "a person yelling out in agony",
       exclude=r"demon|dragon|monster|mummy|skeleton|wolf|goat|horse|\bcow|sheep|\bpig|\bbull|elephant|orc\b"),
    _c("rain_thunder", r"\brain\b|thunder", "heavy rain falling on a roof", "a rainstorm with rolling thunder"),
    _c("flowing_water", r"water|river|waterfall|splash|stream|waves|bubbling|droplet|dripping",
       "a brook babbling over rocks", "waves lapping against a wooden pier", exclude=r"cymbal"),
    _c("wind", r"\bwind\b|\bgust", "a cold gale howling across open land", "gusts of wind blowing through trees"),
    _c("fire", r"\bfire\b|flames?\b|burning|flamethrower", "a campfire crackling and popping",
       "a roaring blaze consuming dry wood", exclude=r"firecracker|\bgun|cannon"),
    _c("gunfire", r"\bgun\b|gunfire|rifle|pistol|shotgun|autocannon|cannon|\bbullet",
       "a handgun fired three times", "rapid automatic weapon fire", exclude=r"acoustic gunshot"),
    _c("explosion", r"explosion|explod|\bblast\b|\bbomb", "a massive detonation with debris falling",
       "a distant bomb going off with a deep boom"),
    _c("sword_clash", r"sword|blades?\b|clashing", "two steel blades striking each other in a duel",
       "metal blades ringing in a sword fight"),
    _c("bow_arrow", r"arrow|\bbow\b|archer", "an arrow released from a longbow",
       "a bowstring twang and an arrow flying"),
    _c("footsteps", r"footsteps?|\bsteps on\b|walking", "a person walking across a wooden floor",
       "boots stepping on gravel"),
    _c("engine_vehicle", r"engine|\bcar\b|vehicle|motor|tyres|racing", "a truck engine idling",
       "a sports car accelerating past"),
    _c("birds", r"\bbirds?\b|\bcrow|gulls?\b|eagle|chicken|\bchick\b|clucking|\bowl\b|\bduck|rooster",
       "songbirds twittering at dawn", "a flock of birds calling in a meadow", exclude=r"hi-hat"),
    _c("farm_animal", r"\bcow\b|cattle|sheep|goat|\bpig\b|\bbull\b|mooing|bleating|\bhorse\b|donkey",
       "livestock bellowing in a barn", "a farmyard animal calling out"),
    _c("wolf_dog", r"wolf|wolves|\bdogs?\b|howl|bark", "a pack of wolves howling at night",
       "a hound growling and yelping", exclude=r"storm|\bwind"),
    _c("monster_roar", r"roar|demon|dragon|monster|snarl|growl", "a huge beast bellowing angrily",
       "a fearsome creature letting out a roar"),
    _c("choir", r"choir|\bsung\b|singing", "voices singing together in harmony", "a vocal ensemble singing a hymn"),
    _c("magic_spell", r"magic|spell|\bmage\b|\bheal", "a wizard casting a shimmering enchantment",
       "a sparkling sorcery effect"),
    _c("scifi_zap", r"laser|plasma|\bzap|blaster|teleport|force ?field|power-up",
       "a raygun firing a beam of energy", "a futuristic energy weapon discharging"),
    _c("keyboard_typing", r"keyboard|typewriter|typing", "fingers typing quickly on a computer keyboard",
       "keys clacking on an old typing machine"),
    _c("ticking_clicks", r"rhythmic clicking|ticking", "a clock ticking steadily", "a metronome clicking in time"),
    _c("ui_click", r"\bclick", "a mouse button click", "a short interface tap sound",
       exclude=r"drum|claves|\brim\b"),
    _c("beep", r"beep|\bblip|alarm", "an electronic bleep from a device", "a short piercing tone signal"),
    _c("chime", r"chime|notification|jingle|\bbells?\b|cowbell|ringing",
       "a gentle bell tone announcing a message", "a tinkling ding sound"),
    _c("whoosh", r"whoosh|swish|swoosh|whizz", "something swinging fast through the air", "a swift swooshing pass-by"),
    _c("kick_drum", r"kick drum|bass drum", "a punchy bass drum thump", "a single low kick from a drum kit"),
    _c("snare_drum", r"snare", "a crisp snare hit", "a tight snare drum crack"),
    _c("cymbal", r"cymbal|hi-hat|\bhat\b", "a crash cymbal ringing out", "a hi hat being tapped"),
    _c("hand_drum", r"bongo|djembe|tabla|cajon|conga|tom drum|african drum|tambourine",
       "a hand slapping a skin drum", "a deep tom being struck"),
    _c("hammer_metal", r"hammer|anvil|blacksmith", "a smith pounding hot iron", "a mallet banging on metal"),
    _c("chopping_wood", r"chopping|\baxe\b|lumber", "a woodcutter splitting logs", "a hatchet cutting into a trunk"),
    _c("digging", r"pickaxe|mining|digging|shovel", "a shovel scraping into dirt", "a miner hacking at rock"),
    _c("low_hum", r"\bhum\b|humming", "a steady electrical buzz", "the drone of a transformer"),
    _c("synth_drone", r"drone|\bpad\b", "a sustained ambient synthesizer chord", "a soft evolving electronic tone"),
    _c("noise_burst", r"white noise|static|\bhiss", "bursts of radio static", "a hiss of broadband noise"),
    _c("rising_sweep", r"rising sweep|upward", "a tone gliding up in pitch", "an ascending siren-like glide"),
    _c("falling_sweep", r"falling sweep|downward", "a tone gliding down in pitch", "a descending pitch slide"),
)

CATEGORY_NAMES: tuple[str, ...] = tuple(c.name for c in CATEGORIES)


def label_caption(caption: str) -> str | None:
    """The category of a clip from its first caption, or None when no rule matches."""
    for category in CATEGORIES:
        if category.matches(caption):
            return category.name
    return None


def get_categories(names: list[str] | None = None) -> tuple[Category, ...]:
    if not names:
        return CATEGORIES
    by_name = {c.name: c for c in CATEGORIES}
    unknown = [n for n in names if n not in by_name]
    if unknown:
        raise ValueError(f"unknown categories {unknown}; known: {', '.join(CATEGORY_NAMES)}")
    return tuple(by_name[n] for n in names)
