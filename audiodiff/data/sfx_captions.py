"""Captions for sound effects from their path and file name.

``actor/fauna/animal/elephant_select2.ogg`` is split into words (``elephant``; ``select`` is
noise here and the trailing number a variant), the words are matched against the hand-written
vocabulary of :mod:`audiodiff.data.sfx_vocabulary`, and the matched terms are put together into a
sentence ("an elephant trumpeting"). Every clip gets several variants, so text conditioning sees
paraphrases: the sentence, a rephrasing of it, short labels, and the raw words of the name.

How terms combine (see :class:`Term`): a *noun* names what makes the sound ("a wolf"), an *act*
says what it does ("{who} dying" -> "a wolf dying"), a *material* fills a surface slot
("footsteps[ on {mat}]" -> "footsteps on gravel"), an *event* is a whole sound on its own
("rain falling"). Optional parts in brackets are dropped when their slot has no filler.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Sequence

from .sfx_vocabulary import ADJECTIVES, STOPWORDS, SYNONYMS, VOCABULARY_TEXT


# Nouns that only name a family: a more specific noun of the same group wins over them.
GENERIC_NOUNS = frozenset({("animal",), ("human",), ("drum",), ("machine",), ("gun",), ("bird",)})


@dataclasses.dataclass(frozen=True)
class Term:
    words: tuple[str, ...]  # all must appear among the clip's words
    kind: str               # "noun", "mat", "act" or "event"
    phrase: str             # may hold {who}, {mat} and [optional parts]
    alone: str              # used when a required slot is empty (or a noun is not in an act)
    label: str              # a short class name for the data card
    group: str = ""         # noun groups ("animal", "person", "machine", ...)


def parse_vocabulary(text: str) -> list[Term]:
    """Lines ``kind[/group] words = phrase | alone ; label`` (``| alone`` and ``; label`` optional)."""
    terms = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        head, sep, rest = line.partition("=")
        if not sep:
            raise ValueError(f"vocabulary line {number}: no '=' in {raw!r}")
        kind, _, words = head.strip().partition(" ")
        kind, _, group = kind.partition("/")
        if kind not in ("noun", "mat", "act", "event"):
            raise ValueError(f"vocabulary line {number}: unknown kind {kind!r}")
        rest, _, label = rest.partition(";")
        phrase, _, alone = rest.partition("|")
        phrase, alone = phrase.strip(), alone.strip()
        key = tuple(normalize_word(w) for w in words.split())
        if not key or not phrase:
            raise ValueError(f"vocabulary line {number}: empty words or phrase in {raw!r}")
        terms.append(Term(key, kind, phrase, alone or _default_alone(kind, phrase),
                          label.strip() or " ".join(words.split()), group))
    return terms


def _default_alone(kind: str, phrase: str) -> str:
    if kind == "noun":
        return f"the sound of {phrase}"
    if kind == "mat":
        return f"a {phrase} sound" if not phrase.startswith(("a ", "an ")) else phrase
    return _fill(phrase, None, None) or re.sub(r"\{\w+\}", "something", phrase)


# -- words ------------------------------------------------------------------------------------

def split_words(text: str) -> list[str]:
    """Raw lower-case words of a path or name: camelCase, digits and punctuation split off,
    numbers and one-letter pieces dropped (``DogBark_02`` -> ["dog", "bark"])."""
    text = re.sub(r"([a-z])([A-Z])", r"\1 \2", text)
    text = re.sub(r"([A-Z]+)([A-Z][a-z])", r"\1 \2", text)
    text = re.sub(r"(\d)([A-Za-z])|([A-Za-z])(\d)", r"\1\3 \2\4", text)
    words = [w.lower() for w in re.split(r"[^A-Za-z0-9]+", text)]
    return [w for w in words if w and not w.isdigit() and len(w) > 1]


def normalize_word(word: str) -> str:
    """Synonyms and plural forms onto one key (``footsteps`` -> ``footstep``). A synonym is
    final; other words lose a plural ``s``. Clip words and vocabulary words both go through
    this, so the two always agree."""
    word = word.lower()
    if word in SYNONYMS:
        return SYNONYMS[word]
    if len(word) > 4 and word.endswith("s") and not word.endswith(("ss", "us", "is")):
        word = SYNONYMS.get(word[:-1], word[:-1])
    return word


def caption_words(path: str) -> list[str]:
    """The words of a package-relative path that can describe the sound (stopwords removed)."""
    stem = re.sub(r"\.[A-Za-z0-9]{2,4}$", "", path)
    seen: list[str] = []
    for word in split_words(stem):
        if word not in STOPWORDS and word not in seen:
            seen.append(word)
    return seen


# -- composing ------------------------------------------------------------------------------------

def _article(word: str) -> str:
    return "an" if word[:1] in "aeiou" and not word.startswith(("uni", "one", "eu")) else "a"


def _fill(template: str, who: str | None, mat: str | None) -> str | None:
    """Fill {who}/{mat}; optional [parts] with an empty slot vanish; None if a required slot is empty."""
    def optional(m: re.Match) -> str:
        part = m.group(1)
        if ("{who}" in part and who is None) or ("{mat}" in part and mat is None):
            return ""
        return part
    text = re.sub(r"\[([^\]]*)\]", optional, template)
    if ("{who}" in text and who is None) or ("{mat}" in text and mat is None):
        return None
    return text.replace("{who}", who or "").replace("{mat}", mat or "").strip()


def _with_adjective(phrase: str, adjective: str) -> str:
    m = re.match(r"^(a|an) (.*)$", phrase)
    if m:
        return f"{_article(adjective)} {adjective} {m.group(2)}"
    return phrase  # "fast chopping wood" reads worse than no adjective


@dataclasses.dataclass(frozen=True)
class Caption:
    """The description of one sound: ``sentence`` (None when no vocabulary term matched),
    ``labels`` of the matched terms, the raw ``words`` and the noun ``groups`` (for filters)."""

    sentence: str | None
    labels: tuple[str, ...]
    words: tuple[str, ...]
    groups: tuple[str, ...]

    def variants(self, extra: Sequence[str] = ()) -> list[str]:
        """Paraphrases: the sentence, "the sound of ...", the labels, the raw words."""
        out: list[str] = []
        raw = " ".join(self.words)
        if self.sentence:
            out.append(self.sentence)
            if not self.sentence.startswith("the sound"):
                out.append(f"the sound of {self.sentence}")
            if self.labels:
                out.append(", ".join(dict.fromkeys(self.labels)))
        out.extend(e for e in extra if e)
        if raw:
            out.append(raw if self.sentence else f"the sound of {raw}")
        return list(dict.fromkeys(c.strip() for c in out if c and c.strip()))


class Captioner:
    """Words -> :class:`Caption` with a vocabulary (the default one unless given)."""

    def __init__(self, terms: Sequence[Term] | None = None):
        terms = list(terms if terms is not None else parse_vocabulary(VOCABULARY_TEXT))
        # "act/GROUP" lines are not matched themselves: they replace the plain act for a noun
        # of that group ("{who} screaming as they die" for a person, "{who} dying" otherwise).
        self.overrides = {(t.words, t.group): t for t in terms if t.kind == "act" and t.group}
        self.terms = sorted((t for t in terms if not (t.kind == "act" and t.group)),
                            key=lambda t: -len(t.words))

    def describe(self, words: Sequence[str], max_clauses: int = 2) -> Caption:
        norm = [normalize_word(w) for w in words]
        free = list(range(len(norm)))
        matched: list[tuple[int, Term]] = []
        for term in self.terms:
            positions = []
            for w in term.words:
                pos = next((i for i in free if norm[i] == w and i not in positions), None)
                if pos is None:
                    break
                positions.append(pos)
            else:
                matched.append((min(positions), term))
                # a repeated word ("doors/door_open") is used up with its first occurrence
                free = [i for i in free if i not in positions and norm[i] not in term.words]
        matched.sort(key=lambda x: x[0])
        adjectives = [ADJECTIVES[norm[i]] for i in free if norm[i] in ADJECTIVES]
        # Later words are more specific (folder words come first): an act takes the last noun.
        nouns = [(p, t) for p, t in matched if t.kind == "noun"]
        mats = [t for _, t in matched if t.kind == "mat"]
        clauses: list[str] = []
        deferred: list[str] = []  # acts with nobody to do them, used only if nothing else matched
        used_nouns: set[int] = set()
        used_mats: set[int] = set()
        for _, term in matched:
            if term.kind in ("noun", "mat"):
                continue
            who = next(((i, n) for i, (_, n) in reversed(list(enumerate(nouns)))
                        if i not in used_nouns), None) if "{who}" in term.phrase else None
            mat = next(((i, m) for i, m in enumerate(mats) if i not in used_mats), None) \
                if "{mat}" in term.phrase else None
            if who is not None and (term.words, who[1].group) in self.overrides:
                term = self.overrides[(term.words, who[1].group)]
            text = _fill(term.phrase, who[1].phrase if who else None, mat[1].phrase if mat else None)
            if text is None:
                (deferred if term.kind == "act" else clauses).append(term.alone)
                continue
            if who is not None:
                used_nouns.add(who[0])
            if mat is not None and mat[1].phrase in text:
                used_mats.add(mat[0])
            clauses.append(text)
        groups_done = {nouns[i][1].group for i in used_nouns}
        leftovers = [n for i, (_, n) in enumerate(nouns) if i not in used_nouns]
        for j, noun in enumerate(leftovers):
            # one noun per group: a generic one ("animal", "drum") gives way to a specific one,
            # otherwise the later (file-name) word wins over the folder word
            rivals = [m for k, m in enumerate(leftovers) if k != j and m.group == noun.group]
            if clauses or noun.group in groups_done or any(
                    (noun.words in GENERIC_NOUNS and m.words not in GENERIC_NOUNS)
                    or (k > j and (m.words in GENERIC_NOUNS) == (noun.words in GENERIC_NOUNS))
                    for k, m in ((leftovers.index(m), m) for m in rivals)):
                continue
            clauses.append(noun.alone)
        if not clauses:
            clauses = deferred[:1] or [m.alone for i, m in enumerate(mats) if i not in used_mats][:1]
        clauses = list(dict.fromkeys(c for c in clauses if c))[:max_clauses]
        sentence = None
        if clauses:
            if adjectives:
                clauses[0] = _with_adjective(clauses[0], adjectives[0])
            sentence = clauses[0] if len(clauses) == 1 else f"{clauses[0]}, {clauses[1]}"
        labels = tuple(dict.fromkeys(t.label for _, t in matched if t.label))
        groups = tuple(dict.fromkeys(t.group for _, t in matched if t.group))
        return Caption(sentence, labels, tuple(words), groups)

    def caption_path(self, path: str, label: str = "", prefix: Sequence[str] = ()) -> Caption:
        """Describe a package-relative path; ``label`` (e.g. a drum kit's instrument name) comes
        first when given, since metadata names the sound better than a file name; ``prefix``
        words say where the sound is (a package's context)."""
        words = caption_words(label) + [w for w in caption_words(path) if w not in caption_words(label)] \
            if label else caption_words(path)
        return self.describe(list(prefix) + [w for w in words if w not in prefix])
