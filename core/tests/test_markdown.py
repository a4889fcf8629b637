import re

from django.template import Context, Template
from django.utils.safestring import SafeString
from markdown_it import MarkdownIt

from core import markdown
from core.markdown import MAX_MARKDOWN_CHARS, render_markdown


def test_empty_text_gives_nothing():
    assert render_markdown("") == ""
    assert render_markdown(" \n\t") == ""
    assert isinstance(render_markdown(""), SafeString)


def test_the_filter_takes_none_and_marks_its_output_safe():
    template = Template("{% load markdown_tags %}[{{ none|markdown }}]{{ text|markdown }}")
    html = template.render(Context({"none": None, "text": "*a* & <b>"}))
    assert html == "[]<p><em>a</em> &amp; &lt;b&gt;</p>\n"


def test_invalid_characters_do_not_break_rendering():
    html = render_markdown("a\x00b \ud800 c\x0b")
    assert html.startswith("<p>a\ufffdb ? c")
    html.encode("utf-8")  # what the response does with it


def test_images_become_links_to_the_image():
    html = render_markdown('![the chart](https://example.com/c.png "Q3") [![CI](b.svg)](/ci/)')
    assert "<img" not in html
    assert '<a href="https://example.com/c.png" rel="noopener nofollow">the chart</a>' in html
    # Inside a link an image keeps only its text: links cannot nest.
    assert '<a href="/ci/" rel="noopener nofollow">CI</a>' in html


def test_only_web_mail_and_relative_urls_are_kept():
    html = render_markdown(
        "[a](https://x.test) [b](mailto:a@x.test) [c](/items/1/) [d](#top) [e](ftp://x.test)"
    )
    hrefs = re.findall(r'href="([^"]*)"', html)
    assert hrefs == ["https://x.test", "mailto:a@x.test", "/items/1/", "#top"]
    assert '<a rel="noopener nofollow">e</a>' in html


def test_table_alignment_and_list_start_survive():
    html = render_markdown("| a | b |\n|:-|-:|\n| 1 | 2 |\n\n3. three\n4. four\n")
    assert '<th style="text-align:left">a</th>' in html
    assert '<td style="text-align:right">2</td>' in html
    assert '<ol start="3">' in html


def test_the_sanitiser_alone_stops_active_html(monkeypatch):
    # Were markdown-it ever to pass raw HTML through, nh3 still stops it.
    monkeypatch.setattr(markdown, "_parser", MarkdownIt("commonmark", {"html": True}))
    html = render_markdown(
        '<script>alert(1)</script><iframe src="https://x.test"></iframe>'
        '<p onclick="alert(2)" style="position:fixed">p</p><img src=x onerror="alert(3)">'
        '<a href="javascript:alert(4)" target="_blank">a</a><form><input></form>'
    )
    assert html == '<p>p</p><a rel="noopener nofollow">a</a>'


def test_text_over_the_limit_is_escaped_plain_text():
    text = "# title\n<script>x</script>" + "x" * MAX_MARKDOWN_CHARS
    html = render_markdown(text)
    assert "<h1>" not in html
    assert "&lt;script&gt;x&lt;/script&gt;" in html
    assert '<div class="markdown-source"># title' in html
