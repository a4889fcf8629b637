import re

import pytest
from django.urls import reverse

from core.markdown import MAX_MARKDOWN_CHARS
from core.tests import factories

pytestmark = pytest.mark.django_db

PREVIEW_URL = "/markdown/preview/"

DESCRIPTION = """\
# Release plan

- build the wheel
- tag the release

```
make test && make release
```

| step | owner |
| --- | --- |
| build | Ana |

Read [the spec](https://example.com/spec) first.
"""

HOSTILE = """\
<script>alert(1)</script>

<img src=x onerror=alert(2)>

[click](javascript:alert(3)) [shout](JAVASCRIPT:alert(4)) <javascript:alert(5)>

<a href="javascript:alert(6)">raw</a>
"""


def _section(html: str, css_class: str) -> str:
    """The inside of the first <div class="css_class ..."> (Markdown emits no divs)."""
    match = re.search(rf'<div class="{css_class}[^"]*">(.*?)</div>', html, re.DOTALL)
    assert match, f"no {css_class} on the page"
    return match.group(1)


def _description(auth_client, **fields) -> str:
    item = factories.make_item(**fields)
    response = auth_client.get(item.get_absolute_url())
    assert response.status_code == 200
    return _section(response.content.decode(), "item-description")


def test_a_markdown_description_shows_heading_list_code_table_and_link(auth_client):
    html = _description(auth_client, description=DESCRIPTION)
    assert "<h1>Release plan</h1>" in html
    assert "<li>build the wheel</li>" in html
    assert "<pre><code>make test &amp;&amp; make release\n</code></pre>" in html
    assert '<table class="table table-sm table-bordered w-auto">' in html
    assert "<td>Ana</td>" in html
    assert '<a href="https://example.com/spec" rel="noopener nofollow">the spec</a>' in html


def test_html_and_javascript_links_in_the_source_never_become_active(auth_client):
    html = _description(auth_client, description=HOSTILE)
    assert "<script" not in html
    assert "<img" not in html
    assert not re.search(r"<a [^>]*javascript:", html, re.IGNORECASE)
    # The author still sees what they wrote, as text.
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "&lt;img src=x onerror=alert(2)&gt;" in html


def test_every_link_carries_rel_noopener_nofollow(auth_client):
    html = _description(
        auth_client,
        description="[docs](https://x.test/docs), <https://x.test> and [us](mailto:a@x.test)",
    )
    links = re.findall(r"<a [^>]*>", html)
    assert len(links) == 3
    assert all('rel="noopener nofollow"' in link for link in links)


def test_comments_render_markdown_safely(auth_client, item, user):
    factories.make_comment(
        item=item, author=user, body="**Reproduced**\n\n- on staging\n\n<script>alert(1)</script>"
    )
    html = _section(auth_client.get(item.get_absolute_url()).content.decode(), "comment-body")
    assert "<strong>Reproduced</strong>" in html
    assert "<li>on staging</li>" in html
    assert "<script" not in html


def test_a_comment_posted_with_htmx_comes_back_rendered(auth_client, item):
    response = auth_client.post(
        reverse("core:comment-create", args=[item.pk]),
        {"body": "Fixed in `v2`"},
        HTTP_HX_REQUEST="true",
    )
    assert "<code>v2</code>" in _section(response.content.decode(), "comment-body")


def test_a_huge_description_is_shown_as_plain_text(auth_client):
    huge = "# not a heading\n<script>x</script>\n" + "word " * 200_000  # about 1 MB
    html = _description(auth_client, description=huge)
    assert "<h1>" not in html
    assert "<script" not in html
    assert "shown as plain text" in html


def test_the_item_and_comment_forms_have_write_and_preview_tabs(auth_client, item, user):
    for url, field in [
        (reverse("core:item-edit", args=[item.pk]), "description"),
        (reverse("core:item-create"), "description"),
        (item.get_absolute_url(), "body"),
        (
            reverse("core:comment-edit", args=[factories.make_comment(item=item, author=user).pk]),
            "body",
        ),
    ]:
        html = auth_client.get(url).content.decode()
        assert f'hx-post="{PREVIEW_URL}" hx-include="#id_{field}"' in html, url
        assert ">Write</button>" in html
        assert ">Preview</button>" in html
    # Projects have a description too, but it is not Markdown.
    project_edit = reverse("core:project-edit", args=[item.project.pk])
    assert PREVIEW_URL not in auth_client.get(project_edit).content.decode()


# -- the preview endpoint --------------------------------------------------------
def test_preview_needs_a_login(client):
    response = client.post(PREVIEW_URL, {"text": "# Hi"})
    assert response.status_code == 302
    assert response.url.startswith(reverse("login"))


def test_preview_needs_post(auth_client):
    assert reverse("core:markdown-preview") == PREVIEW_URL
    assert auth_client.get(PREVIEW_URL).status_code == 405


def test_preview_needs_the_csrf_token(csrf_client):
    assert csrf_client.post(PREVIEW_URL, {"text": "# Hi"}).status_code == 403


def test_preview_answers_the_rendered_fragment(auth_client):
    response = auth_client.post(PREVIEW_URL, {"text": "# Hi\n\n<script>alert(1)</script>"})
    html = response.content.decode()
    assert response.status_code == 200
    assert "<h1>Hi</h1>" in html
    assert "<script" not in html
    assert "<!doctype html>" not in html


def test_preview_reads_the_field_the_form_names(auth_client):
    response = auth_client.post(PREVIEW_URL, {"field": "body", "body": "*soon*"})
    assert "<em>soon</em>" in response.content.decode()


def test_preview_of_nothing_says_so(auth_client):
    response = auth_client.post(PREVIEW_URL, {"text": "  \n"})
    assert response.status_code == 200
    assert "Nothing to preview." in response.content.decode()


def test_preview_of_an_over_long_text_is_a_400_with_the_reason(auth_client):
    response = auth_client.post(PREVIEW_URL, {"text": "x" * (MAX_MARKDOWN_CHARS + 1)})
    html = response.content.decode()
    assert response.status_code == 400
    assert f"Too long to preview: {MAX_MARKDOWN_CHARS + 1:,} characters" in html
