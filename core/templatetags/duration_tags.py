from django import template

register = template.Library()


@register.filter
def duration(seconds: float | None) -> str:
    """A span of seconds as people say it: "0.4 s", "12 s", "5 min", "3 h", "2 days"."""
    if seconds is None:
        return ""
    if seconds < 10:
        return f"{seconds:.1f} s"
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 2 * 3600:
        return f"{seconds / 60:.0f} min"
    if seconds < 2 * 86400:
        return f"{seconds / 3600:.0f} h"
    return f"{seconds / 86400:.0f} days"
