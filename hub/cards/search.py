"""``hub.search`` / ``yolohub search``: find models by what their cards say, in every source.

Every word of the query must occur (case-insensitively, as a substring) in one of a model's
name, architecture, tags, dataset, metric names, summary or title; models rank by where the words
matched (the name counts most).  Remote registries are searched through their index, so nothing
but the index is fetched and no MindSpore or NumPy is imported.
"""

from __future__ import annotations

from dataclasses import dataclass

from hub.cards.catalog import CardsArg, open_catalog
from hub.errors import InputDataError

# field -> weight of a match there
_WEIGHTS = {
    "name": 8,
    "architecture": 4,
    "tags": 4,
    "dataset": 3,
    "metric": 2,
    "title": 2,
    "summary": 1,
}


@dataclass(frozen=True)
class SearchHit:
    """One model that matched: its default release, why it matched and how well."""

    id: str
    name: str
    version: str
    versions: tuple[str, ...]
    score: int
    matched: tuple[str, ...]  # the fields that matched, best first
    summary: str | None
    dataset: str | None
    metric: str | None
    claimed: float | None
    architecture: str | None
    tags: tuple[str, ...]
    source: str
    origin: str | None


def _fields(rel) -> dict[str, str]:
    card = rel.card
    metrics = list(card.stated_metrics)
    if card.eval_protocol:
        metrics.insert(0, card.eval_protocol.metric)
    return {
        "name": card.name,
        "architecture": card.architecture.name if card.architecture else "",
        "tags": " ".join(card.tags),
        "dataset": card.dataset or "",
        "metric": " ".join(metrics),
        "title": card.title.strip().lstrip("#").strip(),
        "summary": str(card.summary or ""),
    }


def search(text: str, *, cards_dirs: CardsArg = ()) -> list[SearchHit]:
    """Models whose cards match every word of ``text``, best first."""
    words = [w for w in str(text).lower().split() if w]
    if not words:
        raise InputDataError("expected something to search for, found an empty query")
    reg = open_catalog(cards_dirs)
    hits = []
    for name in reg.names():
        rel = reg.representative(name)
        raw = _fields(rel)
        fields = {k: v.lower() for k, v in raw.items()}
        score = 0
        matched: dict[str, int] = {}
        for w in words:
            where = [f for f, v in fields.items() if w in v]
            if not where:
                break
            for f in where:
                bonus = 2 if f == "name" and fields["name"] == w else 1
                matched[f] = matched.get(f, 0) + _WEIGHTS[f] * bonus
            score += max(_WEIGHTS[f] for f in where)
        else:
            card, asset = rel.card, rel.asset
            hits.append(
                SearchHit(
                    id=rel.id,
                    name=name,
                    version=asset.version,
                    versions=tuple(r.asset.version for r in reg.versions(name)),
                    score=score + sum(matched.values()),
                    matched=tuple(sorted(matched, key=lambda f: -matched[f])),
                    summary=card.summary,
                    dataset=card.dataset,
                    metric=card.metric,
                    claimed=asset.claimed,
                    architecture=card.architecture.name if card.architecture else None,
                    tags=card.tags,
                    source=card.source,
                    origin=reg.origin(card),
                )
            )
    hits.sort(key=lambda h: (-h.score, h.name))
    return hits
