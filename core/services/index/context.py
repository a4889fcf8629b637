"""Context from the index: ranked search, related objects, possible duplicates.

Every function here answers from the active targets, the primary first; when
the primary cannot answer, the next one does and the result says so. What a
user may not see is never asked for: the organisations they may see are a
filter of the index query (`core.policy`).

Hybrid search fuses the keyword (BM25) and the vector ranking by reciprocal
rank fusion: an object's score is the sum over both lists of 1 / (k + rank),
k = 60. The same fusion runs for every target, so results rank alike whether
Weaviate, the embedded index or Qdrant answers (Qdrant's keyword match is
unranked; its order there is the index's).
"""

import logging
import re
import threading
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import TypeVar

from core.models import Item, Project
from core.policy import EVERYTHING, visibility

from .documents import document_for, embedding_text, is_object_id, normalise
from .engine import index_targets
from .status import resolve
from .targets.base import SearchHit, SearchPage, Target, TargetUnavailable

logger = logging.getLogger("agira.index")
T = TypeVar("T")

SEARCH_MODES = ("hybrid", "keyword", "semantic")
SEARCH_PAGE_SIZE = 20
# Deeper pages are refused: a page far down costs the index as much as every
# page before it, and nobody reads result 1,001.
MAX_SEARCH_PAGE = 50
MAX_SEARCH_LIMIT = 100
MAX_QUERY_CHARS = 1000
RRF_K = 60
# Hybrid search fuses the vector ranking's objects at least this similar to
# the query (cosine): without a floor every object would be a "match" and a
# search for a word no object holds would list the whole index.
HYBRID_MIN_COSINE = 0.3

RELATED_LIMIT = 10
MAX_RELATED_LIMIT = 50
RELATED_SCOPES = ("all", "project")
# The related list is the object's nearest vectors, reordered by reciprocal
# rank fusion with a keyword search for the object's title: a neighbour that
# shares the title's rarer words (a class name, an error) moves up. Measured on
# real duplicate bug reports (bench_related.py, bench_quality.py); a smaller
# k than search's lets the first few keyword ranks count.
RELATED_RRF_K = 10

DUPLICATES_LIMIT = 5
DUPLICATES_MIN_CHARS = 3
MAX_DUPLICATES_QUERY_CHARS = 4000
# A draft is compared by its title and the start of its description: about
# 150 tokens, so the query's embedding stays a few tens of milliseconds while
# someone types (a full 256-token text costs the CPU model about 0.1 s).
DUPLICATES_EMBED_CHARS = 600

# States after which an object needs no more work: left out by "open only".
CLOSED_STATUSES = frozenset({"Closed", "closed", "Done", "Released", "Cancelled", "Archived"})
# Children shown as their parent item in related lists.
CHILD_TYPES = frozenset({"comment", "attachment"})


# Runs the vector half of a hybrid search beside the keyword half, for targets
# whose reads may run in parallel (`parallel_reads`).
_READERS = ThreadPoolExecutor(max_workers=2, thread_name_prefix="agira-search")


FALLBACK_NOTE = "The main index cannot answer now; these results come from a backup index."


class ObjectNotFound(LookupError):
    """No object of that type and id, or one the user may not see."""


# -- the query's vector ------------------------------------------------------------
_QUERY_VECTORS: OrderedDict[tuple[str, str], object] = OrderedDict()
_QUERY_VECTORS_MAX = 256
_query_lock = threading.Lock()


def embed_query(text: str):
    """The vector of a search query, or None when no embedder is configured.
    Raises TargetUnavailable if it cannot be made.

    The last few hundred queries' vectors are kept in the process: the next
    page of a search, or the same words typed again, costs no model call.
    """
    from .embeddings import EmbedderUnavailable, current_embedder

    try:
        embedder = current_embedder()
        if embedder is None:
            return None
        key = (embedder.info.key, text)
        with _query_lock:
            if key in _QUERY_VECTORS:
                _QUERY_VECTORS.move_to_end(key)
                return _QUERY_VECTORS[key]
        vector = embedder.embed([text])[0]
    except EmbedderUnavailable as exc:
        raise TargetUnavailable(
            f"Semantic search is unavailable: {exc}", reason="misconfigured"
        ) from exc
    with _query_lock:
        _QUERY_VECTORS[key] = vector
        while len(_QUERY_VECTORS) > _QUERY_VECTORS_MAX:
            _QUERY_VECTORS.popitem(last=False)
    return vector


def object_vector(instance):
    """The vector an object is stored with: its embedding text's, from the
    embedding cache (the sync put it there; a miss embeds it once). None when
    no embedder is configured."""
    from .embeddings import EmbedderUnavailable, current_embedder
    from .embeddings.cache import embed_texts

    try:
        embedder = current_embedder()
        if embedder is None:
            return None
        return embed_texts(embedder, [embedding_text(normalise(document_for(instance)))])[0]
    except EmbedderUnavailable as exc:
        raise TargetUnavailable(
            f"Related objects are unavailable: {exc}", reason="misconfigured"
        ) from exc


# -- answering from the first target that can ----------------------------------------
def _answer(ask: Callable[[Target], T]) -> tuple[T, Target, str]:
    """`ask` of the primary target, or of the next active one when it cannot
    answer; with a note saying so. Raises the primary's TargetUnavailable when
    none can."""
    targets = index_targets()
    if not targets:
        raise TargetUnavailable("No index is enabled: sync is switched off.", reason="disabled")
    first_error: TargetUnavailable | None = None
    for target in targets:
        try:
            with target.session():
                answer = ask(target)
        except TargetUnavailable as exc:
            logger.warning("%s cannot answer a query: %s", target.label, exc)
            first_error = first_error or exc
            continue
        note = ""
        if first_error is not None:
            note = (
                f"The {targets[0].label} cannot answer ({first_error}); "
                f"these results come from the {target.label}."
            )
        return answer, target, note
    assert first_error is not None
    raise first_error


# -- search --------------------------------------------------------------------------
@dataclass(frozen=True)
class SearchResults:
    hits: list[SearchHit]
    page: int
    has_next: bool
    total: int | None
    target_label: str
    mode: str = "hybrid"
    note: str = ""  # the primary could not answer, or hybrid ran as keyword only
    fell_back: bool = False  # answered by another target than the primary
    keyword_only: bool = False  # hybrid without an embedder

    @property
    def has_previous(self) -> bool:
        return self.page > 1

    @property
    def plain_note(self) -> str:
        """The note without target names or errors, for people who do not
        run Agira."""
        parts = []
        if self.fell_back:
            parts.append(FALLBACK_NOTE)
        if self.keyword_only:
            parts.append("Search by meaning is not set up: these are word matches only.")
        return " ".join(parts)


def _key(document: dict) -> tuple[str, str]:
    return (str(document.get("type")), str(document.get("object_id")))


def fuse(rankings: list[list[SearchHit]], *, k: int | None = None) -> list[SearchHit]:
    """Reciprocal rank fusion: each object scores the sum of 1 / (k + rank)
    over the rankings it appears in (rank from 1; k = RRF_K unless given);
    best first, ties in the order first seen."""
    k = RRF_K if k is None else k
    scores: dict[tuple[str, str], float] = {}
    documents: dict[tuple[str, str], dict] = {}
    for ranking in rankings:
        for rank, hit in enumerate(ranking, start=1):
            key = _key(hit.document)
            scores[key] = scores.get(key, 0.0) + 1.0 / (k + rank)
            documents.setdefault(key, hit.document)
    order = sorted(scores, key=lambda key: -scores[key])
    return [SearchHit(document=documents[key], score=scores[key]) for key in order]


def _both_halves(
    target: Target, query: str, vector, *, vector_query: str, filters: dict, limit: int
) -> tuple[SearchPage, SearchPage]:
    """The keyword search for `query` and the vector search for `vector` (with
    `vector_query`, which some targets match as words too), the first `limit`
    of each; at once where the target's reads may run in parallel (each
    thread reads through its own connection)."""
    if getattr(target, "parallel_reads", False):
        pending = _READERS.submit(
            target.search, vector_query, filters=filters, limit=limit, offset=0, vector=vector
        )
        keyword = target.search(query, filters=filters, limit=limit, offset=0)
        return keyword, pending.result()
    keyword = target.search(query, filters=filters, limit=limit, offset=0)
    semantic = target.search(vector_query, filters=filters, limit=limit, offset=0, vector=vector)
    return keyword, semantic


def rerank(
    nearest: list[SearchHit], keyword: list[SearchHit], *, k: int | None = None
) -> list[SearchHit]:
    """The nearest hits (and only they), reordered by reciprocal rank fusion
    with a keyword ranking (k = RELATED_RRF_K unless given); each keeps its
    own score, the cosine. Ties keep the nearest order."""
    k = RELATED_RRF_K if k is None else k
    keyword_rank = {}
    for rank, hit in enumerate(keyword, start=1):
        keyword_rank.setdefault(_key(hit.document), rank)

    def fused(item: tuple[int, SearchHit]) -> float:
        rank, hit = item
        score = 1.0 / (k + rank)
        if _key(hit.document) in keyword_rank:
            score += 1.0 / (k + keyword_rank[_key(hit.document)])
        return -score

    return [hit for _rank, hit in sorted(enumerate(nearest, start=1), key=fused)]


def _filters(user, **filters: str) -> dict | None:
    """The index filters of a query: the given ones that are set, and the
    organisations `user` may see (None for a user who may see nothing; no
    user: everything, for commands and benches)."""
    scope = visibility(user) if user is not None else EVERYTHING
    if scope.nothing:
        return None
    return {**{name: value for name, value in filters.items() if value}, **scope.index_filter()}


def search_objects(
    *,
    query: str,
    object_type: str = "",
    project_id: str = "",
    status: str = "",
    page: int = 1,
    per_page: int = SEARCH_PAGE_SIZE,
    mode: str = "hybrid",
    user=None,
) -> SearchResults:
    """Search the index, filtered exactly (inside the index query) by type,
    project and status, best first: `keyword` ranks by BM25 over title and
    text, `semantic` by the cosine of the query's vector and the objects',
    `hybrid` fuses both (RRF). Without an embedder, hybrid is keyword alone
    and says so.

    `page` is capped at MAX_SEARCH_PAGE, `per_page` at MAX_SEARCH_LIMIT. With
    a `user`, only what they may see is returned (None: no restriction, for
    commands and benches).
    """
    if mode not in SEARCH_MODES:
        raise ValueError(f"mode must be one of {', '.join(SEARCH_MODES)}")
    query = query.strip()
    if len(query) > MAX_QUERY_CHARS:
        raise ValueError(f"The query is too long: at most {MAX_QUERY_CHARS} characters.")
    page = min(max(1, page), MAX_SEARCH_PAGE)
    per_page = min(max(1, per_page), MAX_SEARCH_LIMIT)
    filters = _filters(user, type=object_type, project_id=str(project_id or ""), status=status)
    offset = (page - 1) * per_page
    if filters is None or not query:
        return SearchResults([], page, False, 0, "", mode)
    vector = None
    notes = []
    if mode in ("semantic", "hybrid"):
        vector = embed_query(query)
        if vector is None and mode == "semantic":
            raise TargetUnavailable(
                "Semantic search needs an embedder: none is configured (Admin → Embedder "
                "configuration).",
                reason="misconfigured",
            )
        if vector is None:
            notes.append("No embedder is configured: hybrid search ran as keyword search.")

    def ask(target: Target) -> SearchPage:
        if mode == "keyword" or vector is None:
            return target.search(query, filters=filters, limit=per_page, offset=offset)
        if mode == "semantic":
            return target.search(
                query, filters=filters, limit=per_page, offset=offset, vector=vector
            )
        keyword, semantic = _both_halves(
            target, query, vector, vector_query=query, filters=filters, limit=offset + per_page + 1
        )
        close = [hit for hit in semantic.hits if (hit.score or 0.0) >= HYBRID_MIN_COSINE]
        fused = fuse([keyword.hits, close])
        more = (
            keyword.has_next
            or (semantic.has_next and len(close) == len(semantic.hits))
            or len(fused) > offset + per_page
        )
        return SearchPage(hits=fused[offset:], total=None, has_next=more)

    result, target, note = _answer(ask)
    if note:
        notes.insert(0, note)
    hits = result.hits
    has_next = result.has_next or len(hits) > per_page
    return SearchResults(
        hits=hits[:per_page],
        page=page,
        has_next=has_next and page < MAX_SEARCH_PAGE,
        total=result.total,
        target_label=target.label,
        mode=mode,
        note=" ".join(notes),
        fell_back=bool(note),
        keyword_only=mode == "hybrid" and vector is None,
    )


# -- related objects -----------------------------------------------------------------
@dataclass(frozen=True)
class RelatedHit:
    """One related object as people see it: a comment or attachment appears
    as its item (`via` says through which)."""

    type: str
    object_id: str
    title: str
    project_id: str
    status: str
    url: str
    score: float
    via: str = ""  # "comment" or "attachment" when found through one
    project: str = ""  # the project's name

    @property
    def number(self) -> str:
        return f"#{self.object_id}" if self.type == "item" else ""


@dataclass(frozen=True)
class RelatedResults:
    hits: list[RelatedHit]
    target_label: str
    note: str = ""
    project_names: dict[str, str] = field(default_factory=dict)

    @property
    def fell_back(self) -> bool:
        return bool(self.note) and bool(self.target_label)


def _subject(object_type: str, object_id: str, user):
    instance = resolve(object_type, str(object_id)) if is_object_id(str(object_id)) else None
    if instance is None:
        raise ObjectNotFound(f"No {object_type} with id {object_id}.")
    document = document_for(instance)
    if user is not None and not visibility(user).allows(document):
        raise ObjectNotFound(f"No {object_type} with id {object_id}.")
    return instance, document


def related_objects(
    object_type: str,
    object_id: str | int,
    *,
    limit: int = RELATED_LIMIT,
    scope: str = "all",
    open_only: bool = False,
    user=None,
) -> RelatedResults:
    """The objects nearest to one object's vector, across types, those that
    share the words of its title moved up (`rerank`): the object itself and its
    own comments and attachments left out, comments and attachments shown as
    their item (once, at its best rank).

    `scope` "project" keeps to the object's project; `open_only` leaves out
    what is closed, done, released or cancelled. Raises ObjectNotFound for an
    unknown object (or one `user` may not see), ValueError for bad arguments,
    TargetUnavailable when no index or no embedder can answer.
    """
    if scope not in RELATED_SCOPES:
        raise ValueError(f"scope must be one of {', '.join(RELATED_SCOPES)}")
    limit = min(max(1, limit), MAX_RELATED_LIMIT)
    instance, document = _subject(object_type, str(object_id), user)
    vector = object_vector(instance)
    if vector is None:
        raise TargetUnavailable(
            "Related objects need an embedder: none is configured (Admin → Embedder "
            "configuration).",
            reason="misconfigured",
        )
    project = str(document.get("project_id") or "") if scope == "project" else ""
    filters = _filters(user, project_id=project) or {}
    subject_key = (object_type, str(instance.pk))
    # The item whose comments and attachments are the subject's own.
    own_item = str(instance.pk) if object_type == "item" else None
    wanted = limit * 4 + 10

    # A comment's title is made up ("Comment by ... on #12"): its words say nothing.
    words = "" if object_type == "comment" else str(document.get("title") or "")

    def ask(target: Target) -> SearchPage:
        if not query_words(words):
            return target.search("", filters=filters, limit=wanted, offset=0, vector=vector)
        # The nearest are not narrowed by the title's words (Qdrant would match them).
        keyword, nearest = _both_halves(
            target, words, vector, vector_query="", filters=filters, limit=wanted
        )
        return SearchPage(
            hits=rerank(nearest.hits, keyword.hits), total=None, has_next=nearest.has_next
        )

    result, target, note = _answer(ask)
    hits = _as_items(
        [
            hit
            for hit in result.hits
            if _key(hit.document) != subject_key
            and not (
                hit.document.get("type") in CHILD_TYPES
                and own_item is not None
                and str(hit.document.get("parent_object_id")) == own_item
            )
        ],
        exclude={subject_key},
    )
    if open_only:
        hits = [hit for hit in hits if hit.status not in CLOSED_STATUSES]
    return _results(hits[:limit], target, note)


def _as_items(hits: list[SearchHit], *, exclude: set[tuple[str, str]]) -> list[RelatedHit]:
    """Search hits as related objects, comments and attachments replaced by
    their items (read in one query), each object once."""
    parents = {
        str(hit.document.get("parent_object_id"))
        for hit in hits
        if hit.document.get("type") in CHILD_TYPES and hit.document.get("parent_object_id")
    }
    items = {
        str(item.pk): item
        for item in Item.objects.filter(pk__in=[int(p) for p in parents if p.isdigit()])
    }
    seen = set(exclude)
    out: list[RelatedHit] = []
    for hit in hits:
        doc = hit.document
        score = float(hit.score or 0.0)
        if doc.get("type") in CHILD_TYPES:
            item = items.get(str(doc.get("parent_object_id")))
            if item is None:
                continue
            key = ("item", str(item.pk))
            entry = RelatedHit(
                type="item",
                object_id=str(item.pk),
                title=item.title,
                project_id=str(item.project_id),
                status=item.status,
                url=item.get_absolute_url(),
                score=score,
                via=str(doc.get("type")),
            )
        else:
            key = _key(doc)
            entry = RelatedHit(
                type=str(doc.get("type")),
                object_id=str(doc.get("object_id")),
                title=str(doc.get("title") or ""),
                project_id=str(doc.get("project_id") or ""),
                status=str(doc.get("status") or ""),
                url=str(doc.get("url") or ""),
                score=score,
            )
        if key in seen:
            continue
        seen.add(key)
        out.append(entry)
    return out


def _results(hits: list[RelatedHit], target: Target, note: str) -> RelatedResults:
    """The hits with their projects' names (read in one query)."""
    ids = {int(hit.project_id) for hit in hits if hit.project_id.isdigit()}
    names = {
        str(pk): name for pk, name in Project.objects.filter(pk__in=ids).values_list("pk", "name")
    }
    hits = [replace(hit, project=names.get(hit.project_id, "")) for hit in hits]
    return RelatedResults(hits=hits, target_label=target.label, note=note, project_names=names)


# -- possible duplicates --------------------------------------------------------------
def possible_duplicates(
    text: str,
    *,
    project_id: str = "",
    exclude_item: str = "",
    limit: int = DUPLICATES_LIMIT,
    user=None,
) -> RelatedResults:
    """Open items whose vectors are nearest to a draft's title and
    description. Fewer than DUPLICATES_MIN_CHARS characters: none. Raises
    ValueError for a text over MAX_DUPLICATES_QUERY_CHARS."""
    text = text.strip()
    if len(text) > MAX_DUPLICATES_QUERY_CHARS:
        raise ValueError(
            f"The text is too long to compare: at most {MAX_DUPLICATES_QUERY_CHARS} characters."
        )
    limit = min(max(1, limit), MAX_RELATED_LIMIT)
    if len(text) < DUPLICATES_MIN_CHARS:
        return RelatedResults(hits=[], target_label="")
    filters = _filters(user, type="item", project_id=str(project_id or ""))
    if filters is None:
        return RelatedResults(hits=[], target_label="")
    vector = embed_query(text[:DUPLICATES_EMBED_CHARS])
    if vector is None:
        return RelatedResults(hits=[], target_label="", note="No embedder is configured.")
    wanted = limit * 4 + 10

    def ask(target: Target) -> SearchPage:
        return target.search("", filters=filters, limit=wanted, offset=0, vector=vector)

    result, target, note = _answer(ask)
    exclude = {("item", str(exclude_item))} if exclude_item else set()
    hits = [
        hit for hit in _as_items(result.hits, exclude=exclude) if hit.status not in CLOSED_STATUSES
    ][:limit]
    return _results(hits, target, note)


# -- snippets ----------------------------------------------------------------------------
_WORD = re.compile(r"\w+", re.UNICODE)


def query_words(query: str) -> list[str]:
    return [w.lower() for w in _WORD.findall(query) if len(w) > 1 or w.isdigit()]


def snippet(text: str, query: str, *, width: int = 240) -> list[tuple[str, bool]]:
    """A window of `text` around the first of the query's words it contains,
    as (part, is_match) pairs for a template to render (escaped) with the
    matches marked. Words match whole and without regard to case."""
    text = " ".join((text or "").split())
    words = set(query_words(query))
    if not text:
        return []
    matches = [m for m in _WORD.finditer(text) if m.group().lower() in words]
    start = 0
    if matches and matches[0].start() > width // 3:
        start = matches[0].start() - width // 3
        space = text.rfind(" ", 0, start)
        start = space + 1 if space > start - 20 else start
    end = min(len(text), start + width)
    if end < len(text):
        space = text.rfind(" ", start, end)
        end = space if space > end - 20 else end
    parts: list[tuple[str, bool]] = []
    if start > 0:
        parts.append(("… ", False))
    cursor = start
    for match in matches:
        if match.start() < start:
            continue
        if match.end() > end:
            break
        if match.start() > cursor:
            parts.append((text[cursor : match.start()], False))
        parts.append((match.group(), True))
        cursor = match.end()
    if cursor < end:
        parts.append((text[cursor:end], False))
    if end < len(text):
        parts.append((" …", False))
    return parts


def item_number(document: dict) -> str:
    """The item number a result belongs to: its own for an item, its item's
    for a comment, attachment or GitHub link."""
    if document.get("type") == "item":
        return f"#{document.get('object_id')}"
    if document.get("type") in {*CHILD_TYPES, "github_issue", "github_pr"}:
        parent = document.get("parent_object_id")
        return f"#{parent}" if parent else ""
    return ""
