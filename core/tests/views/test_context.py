"""Context that helps: hybrid search, related objects, possible duplicates.

Against each target (the `sync` fixture), with the real local model."""

import pytest
from django.urls import reverse

from core.models import ItemStatus
from core.tests import factories

SEARCH = reverse("core:search")
DUPLICATES = reverse("core:possible-duplicates")


def related_url(object_type: str, object_id) -> str:
    return reverse("core:related", args=[object_type, object_id])


def _ids(rows) -> list[tuple[str, str]]:
    return [(row["doc"]["type"], row["doc"]["object_id"]) for row in rows]


# -- search ---------------------------------------------------------------------
def test_hybrid_is_the_default_and_ranks_a_title_match_first(sync, auth_client):
    project = factories.make_project()
    filler = " ".join(["The nightly job renamed files and moved folders around."] * 60)
    deep = factories.make_item(
        project=project, title="Nightly job", description=f"{filler} Once it said refund."
    )
    titled = factories.make_item(project=project, title="Refund fails", description="Hmm.")
    response = auth_client.get(SEARCH, {"q": "refund"})
    assert response.context["results"].mode == "hybrid"
    ids = _ids(response.context["rows"])
    assert ids[0] == ("item", str(titled.pk))
    assert ("item", str(deep.pk)) in ids
    assert "hybrid search, best first" in response.content.decode()


def test_hybrid_finds_a_meaning_with_no_word_in_common_and_keeps_word_matches(sync, auth_client):
    project = factories.make_project()
    wanted = factories.make_item(
        project=project, title="Cannot sign in once the password was reset"
    )
    worded = factories.make_item(project=project, title="Change the fonts of the page")
    for title in ("Invoice PDF has the wrong logo", "Dark mode for the settings page"):
        factories.make_item(project=project, title=title)
    rows = auth_client.get(
        SEARCH, {"q": "login fails after a password change", "type": "item"}
    ).context["rows"]
    ids = _ids(rows)
    assert ids[0] == ("item", str(wanted.pk))
    # "change" is a word of the query: the keyword half keeps it (Qdrant's
    # full-text match needs every word of the query, so it has none here).
    assert (("item", str(worded.pk)) in ids) is (sync.name != "qdrant")


def test_filters_are_inside_the_query_so_a_page_is_full(sync, auth_client, monkeypatch):
    """Many comments match better than the items; filtered by type, a page
    still holds a full page of items."""
    from core.services.index import context

    monkeypatch.setattr("core.views.search.search_objects", _paged(context.search_objects, 5))
    project = factories.make_project()
    host = factories.make_item(project=project, title="Host")
    for n in range(8):
        factories.make_comment(item=host, body=f"Printer jams on page {n}. Printer printer.")
    items = [factories.make_item(project=project, title=f"Printer {n}") for n in range(7)]
    for mode in ("keyword", "semantic", "hybrid"):
        rows = auth_client.get(SEARCH, {"q": "printer", "type": "item", "mode": mode}).context[
            "rows"
        ]
        assert len(rows) == 5, mode
        assert {row["doc"]["type"] for row in rows} == {"item"}
    assert len(items) == 7


def _paged(search, per_page):
    def call(**kwargs):
        return search(**{**kwargs, "per_page": per_page})

    return call


def test_results_show_number_project_status_and_an_escaped_highlighted_snippet(sync, auth_client):
    project = factories.make_project(name="Shop")
    item = factories.make_item(
        project=project,
        title="Widget breaks",
        status=ItemStatus.BACKLOG,
        description='The <script>alert("x")</script> widget renders twice.',
    )
    comment = factories.make_comment(item=item, body="The widget also flickers.")
    response = auth_client.get(SEARCH, {"q": "widget", "mode": "keyword"})
    html = response.content.decode()
    assert '<script>alert("x")</script>' not in html
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in html
    assert "<mark>widget</mark>" in html
    assert f'<span class="text-body-secondary me-1 result-number">#{item.pk}</span>' in html
    # A comment shows the number of its item.
    rows = {(r["doc"]["type"], r["doc"]["object_id"]): r for r in response.context["rows"]}
    assert rows[("comment", str(comment.pk))]["number"] == f"#{item.pk}"
    assert "in Shop" in html
    assert ">Backlog</span>" in html


def test_when_the_primary_is_down_the_next_target_answers_and_says_so(
    weaviate_sync, settings, auth_client, user
):
    from core.services.index.context import FALLBACK_NOTE
    from core.tests.harness import WeaviateHarness

    settings.AGIRA_EMBEDDED_ENABLED = True
    item = factories.make_item(title="Quarterly report export")
    weaviate = WeaviateHarness(weaviate_sync)
    weaviate.down()
    try:
        plain = auth_client.get(SEARCH, {"q": "quarterly", "mode": "keyword"})
        user.is_staff = True
        user.save(update_fields=["is_staff"])
        staff = auth_client.get(SEARCH, {"q": "quarterly", "mode": "keyword"})
    finally:
        weaviate.up()
    for response in (plain, staff):
        assert ("item", str(item.pk)) in _ids(response.context["rows"])
    html = plain.content.decode()
    assert FALLBACK_NOTE in html
    assert "Weaviate" not in html
    html = staff.content.decode()
    assert "answered by the embedded index" in html
    assert "The Weaviate cannot answer" in html


# -- related ----------------------------------------------------------------------
@pytest.fixture
def related_world(sync, auth_client):
    shop = factories.make_project(name="Shop")
    other = factories.make_project(name="Other")
    subject = factories.make_item(
        project=shop,
        title="Checkout fails when the card is declined",
        description="Payment with a declined credit card shows a blank page.",
    )
    own = factories.make_comment(item=subject, body="A declined card payment fails at checkout.")
    twin = factories.make_item(
        project=other,
        title="Blank page after a declined card payment",
        description="The checkout breaks when the bank declines the card.",
    )
    closed = factories.make_item(
        project=shop,
        title="Declined credit card crashes the checkout",
        status=ItemStatus.CLOSED,
    )
    host = factories.make_item(project=shop, title="Notes")
    via = factories.make_comment(
        item=host, body="When a card is declined the checkout page stays blank."
    )
    unrelated = factories.make_item(project=shop, title="Dark mode for settings")
    return {
        "client": auth_client,
        "subject": subject,
        "own": own,
        "twin": twin,
        "closed": closed,
        "host": host,
        "via": via,
        "unrelated": unrelated,
    }


def _related(client, object_type, object_id, **params):
    response = client.get(related_url(object_type, object_id), params, HTTP_HX_REQUEST="true")
    assert response.status_code == 200
    return response, [(h.type, h.object_id, h.via) for h in response.context["results"].hits]


def test_related_excludes_itself_and_its_own_comments_and_shows_comments_as_their_item(
    related_world,
):
    w = related_world
    response, hits = _related(w["client"], "item", w["subject"].pk)
    keys = [(t, i) for t, i, _via in hits]
    assert ("item", str(w["subject"].pk)) not in keys
    assert ("comment", str(w["own"].pk)) not in keys
    assert all(t != "comment" for t, _i, _v in hits)
    assert keys[0] in {("item", str(w["twin"].pk)), ("item", str(w["closed"].pk))}
    assert ("item", str(w["host"].pk), "comment") in hits
    assert len(keys) == len(set(keys))
    html = response.content.decode()
    assert f'href="/items/{w["twin"].pk}/"' in html
    assert "Other" in html  # the project's name


def test_related_scope_and_open_only(related_world):
    w = related_world
    _response, hits = _related(w["client"], "item", w["subject"].pk, scope="project")
    assert ("item", str(w["twin"].pk)) not in [(t, i) for t, i, _v in hits]
    _response, hits = _related(w["client"], "item", w["subject"].pk, open="1")
    keys = [(t, i) for t, i, _v in hits]
    assert ("item", str(w["closed"].pk)) not in keys
    assert ("item", str(w["twin"].pk)) in keys


def test_related_tab_is_loaded_lazily_and_has_a_page_without_javascript(related_world):
    w = related_world
    page = w["client"].get(w["subject"].get_absolute_url()).content.decode()
    assert f'hx-get="{related_url("item", w["subject"].pk)}" hx-trigger="intersect once"' in page
    full = w["client"].get(related_url("item", w["subject"].pk))
    assert full.status_code == 200
    assert "<html" in full.content.decode()
    assert "Related to" in full.content.decode()


def test_related_of_an_unknown_or_oversized_id_is_404(sync, auth_client):
    for object_type, object_id in (("item", "999999"), ("bogus", "1"), ("item", "9" * 5000)):
        response = auth_client.get(related_url(object_type, object_id))
        assert response.status_code == 404


def test_related_needs_a_login(client, db):
    response = client.get(related_url("item", 1))
    assert response.status_code == 302


def test_related_moves_up_a_neighbour_that_shares_a_rare_word_of_the_title(sync, auth_client):
    """The nearest by meaning is a report in other words; one that names the
    same class is a little further in meaning. The related list puts the one
    naming the class first, and still shows each object's cosine."""
    project = factories.make_project()
    subject, same_class, other_words = (
        factories.make_item(project=project, title=title, description=description)
        for title, description in (
            (
                "OrcSplitReader drops rows after a schema change",
                "Reading a table after ALTER TABLE ADD COLUMN returns fewer rows than were "
                "written.",
            ),
            (
                "OrcSplitReader logs too much",
                "The reader writes a line for every stripe at INFO level.",
            ),
            # Not one word of the subject's title.
            (
                "Records vanish from queries once ALTER TABLE ADD COLUMN ran",
                "Since one column was added, queries return fewer records than were written.",
            ),
        )
    )
    factories.make_item(project=project, title="Table rename leaves old files behind")
    factories.make_item(project=project, title="Dark mode for the settings page")
    response, hits = _related(auth_client, "item", subject.pk)
    keys = [(t, i) for t, i, _via in hits]
    scores = {(h.type, h.object_id): h.score for h in response.context["results"].hits}
    # By meaning alone the report in other words is nearer.
    assert scores[("item", str(other_words.pk))] > scores[("item", str(same_class.pk))]
    # Qdrant's full-text match needs every word of the title, so there the
    # keyword ranking holds only the subject and the order is the cosine's.
    first = other_words if sync.name == "qdrant" else same_class
    assert keys[0] == ("item", str(first.pk))


def test_rerank_keeps_to_the_nearest_and_their_cosines():
    from core.services.index.context import rerank
    from core.services.index.targets.base import SearchHit

    def hit(object_id, score=None):
        return SearchHit(document={"type": "item", "object_id": object_id}, score=score)

    nearest = [hit("1", 0.9), hit("2", 0.8), hit("3", 0.7)]
    out = rerank(nearest, [hit("3", 7.5), hit("9", 6.0)])
    # "3", third by meaning and first by words, leads; "9", found by words
    # alone, does not get in; each keeps its cosine.
    assert [(h.document["object_id"], h.score) for h in out] == [
        ("3", 0.7),
        ("1", 0.9),
        ("2", 0.8),
    ]
    assert rerank(nearest, []) == nearest


def test_related_on_a_github_link(related_world):
    w = related_world
    mapping = factories.make_mapping(
        item=w["host"], repository="acme/shop", number=7, title="Declined cards blank the page"
    )
    _response, hits = _related(w["client"], "github_issue", mapping.pk)
    assert ("github_issue", str(mapping.pk)) not in [(t, i) for t, i, _v in hits]
    assert hits
    page = w["client"].get(w["host"].get_absolute_url()).content.decode()
    assert related_url("github_issue", mapping.pk) in page


# -- possible duplicates --------------------------------------------------------------
def test_possible_duplicates_lists_similar_open_items(related_world):
    w = related_world
    response = w["client"].post(
        DUPLICATES,
        {"title": "Checkout page is blank when a card is declined", "description": ""},
        HTTP_HX_REQUEST="true",
    )
    assert response.status_code == 200
    hits = response.context["results"].hits
    ids = [h.object_id for h in hits]
    assert str(w["closed"].pk) not in ids  # open items only
    assert str(w["subject"].pk) in ids[:2]
    assert len(hits) <= 5
    assert {h.type for h in hits} == {"item"}
    assert f'href="/items/{w["subject"].pk}/"' in response.content.decode()


def test_possible_duplicates_leaves_out_the_item_being_edited(related_world):
    w = related_world
    url = f"{DUPLICATES}?item={w['subject'].pk}"
    response = w["client"].post(url, {"title": w["subject"].title})
    assert str(w["subject"].pk) not in [h.object_id for h in response.context["results"].hits]


def test_possible_duplicates_is_bounded(sync, auth_client):
    short = auth_client.post(DUPLICATES, {"title": "ab"})
    assert short.status_code == 200
    assert short.context["results"].hits == []
    long = auth_client.post(DUPLICATES, {"title": "x" * 256})
    assert long.status_code == 400
    assert "too long" in long.content.decode()
    huge = auth_client.post(DUPLICATES, {"title": "ok", "description": "y" * 100_001})
    assert huge.status_code == 400
    assert auth_client.get(DUPLICATES).status_code == 405


def test_the_item_form_asks_for_duplicates_while_typing(auth_client, db):
    factories.make_project()
    html = auth_client.get(reverse("core:item-create")).content.decode()
    assert f'hx-post="{DUPLICATES}"' in html
    assert "delay:700ms from:#id_title" in html
