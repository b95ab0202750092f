"""`{{ user|who }}`: who any user is (a note's author, say), as accounts.roles.who answers it."""

from django import template

from accounts import roles

register = template.Library()


@register.filter
def who(user) -> roles.Who:
    """Return who the user is; `{% with author=note.author|who %}{{ author.name }}{% endwith %}`."""
    return roles.who(user)
