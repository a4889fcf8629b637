"""Markdown in item descriptions and comments, rendered to HTML safe to show.

Two layers, so a slip in one cannot put active HTML on a page: markdown-it-py
escapes any HTML in the source (``html=False``) and refuses ``javascript:``
links; nh3 then keeps only the tags and attributes this renderer emits, and
only http, https, mailto and relative URLs. The stored text stays the
Markdown source, which is also what the index holds.

Images are not shown: a remote image is fetched by every reader's browser as
soon as the page opens (a tracking pixel, or a way to learn who read what and
when), and files belong in attachments. ``![alt](url)`` becomes a link to the
image instead, so nothing the author wrote is lost.
"""

import nh3
from django.utils.html import format_html
from django.utils.safestring import SafeString, mark_safe
from markdown_it import MarkdownIt
from markdown_it.common.utils import escapeHtml

# Parsing is linear but slow in pure Python: about a second for 100,000
# characters of adversarial input on a busy 2-core machine. Longer text is
# shown as plain text, so a huge description cannot stall its page.
MAX_MARKDOWN_CHARS = 100_000

ALLOWED_TAGS = {
    "p", "br", "hr", "h1", "h2", "h3", "h4", "h5", "h6",
    "strong", "em", "s", "code", "pre", "blockquote",
    "ul", "ol", "li", "a",
    "table", "thead", "tbody", "tr", "th", "td",
}  # fmt: skip
ALLOWED_ATTRIBUTES = {
    "a": {"href", "title"},
    "ol": {"start"},
    # Column alignment: markdown-it writes it as style, filtered below.
    "th": {"style"},
    "td": {"style"},
}


def _image_as_link(renderer, tokens, idx, options, env) -> str:
    token = tokens[idx]
    src = token.attrGet("src") or ""
    alt = renderer.renderInlineAsText(token.children or [], options, env)
    # An image inside a link (a badge) keeps only its text: links do not nest.
    depth = sum((t.type == "link_open") - (t.type == "link_close") for t in tokens[:idx])
    if depth > 0:
        return escapeHtml(alt)
    return f'<a href="{escapeHtml(src)}">{escapeHtml(alt or src)}</a>'


_parser = MarkdownIt("commonmark", {"html": False}).enable(["table", "strikethrough"])
_parser.add_render_rule("image", _image_as_link)

_cleaner = nh3.Cleaner(
    tags=ALLOWED_TAGS,
    attributes=ALLOWED_ATTRIBUTES,
    url_schemes={"http", "https", "mailto"},
    link_rel="noopener nofollow",
    filter_style_properties={"text-align"},
    # Bootstrap's table look, which the sanitiser adds rather than trusts.
    set_tag_attribute_values={"table": {"class": "table table-sm table-bordered w-auto"}},
)


def render_markdown(text: str) -> SafeString:
    """The HTML for ``text``; empty text gives an empty string."""
    # A lone surrogate cannot be encoded as UTF-8: nh3 and the response would
    # both fail on it. Django never decodes one from a request, but be safe.
    text = text.encode("utf-8", errors="replace").decode("utf-8")
    if not text.strip():
        return SafeString()
    if len(text) > MAX_MARKDOWN_CHARS:
        return format_html(
            '<p class="form-text">Longer than {} characters, so shown as plain text.</p>'
            '<div class="markdown-source">{}</div>',
            f"{MAX_MARKDOWN_CHARS:,}",
            text,
        )
    return mark_safe(_cleaner.clean(_parser.render(text)))  # noqa: S308
