from django import template
from django.utils.safestring import SafeString

from core.markdown import render_markdown

register = template.Library()


@register.filter
def markdown(text: str | None) -> SafeString:
    """``{{ item.description|markdown }}``: the text rendered as sanitised HTML."""
    return render_markdown("" if text is None else str(text))
